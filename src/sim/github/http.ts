import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
  STATUS_CODES,
} from "node:http";
import type { AddressInfo } from "node:net";
import type { Clock } from "../../clock.js";
import type { Fault, RecordedCall } from "./types.js";

/** The stand-in's HTTP side: routing, error bodies, pagination, scripted faults, auth, headers. */

export interface Ctx {
  method: string;
  url: URL;
  query: URLSearchParams;
  body: unknown;
  /** This server's own base URL, as the client reached it: every URL in an answer is built on it. */
  base: string;
}

export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export type Handler = (m: string[], ctx: Ctx) => Reply | Promise<Reply>;

export interface Route {
  method: string;
  repoScoped: boolean;
  re: RegExp;
  handler: Handler;
}

export const DOCS = "https://docs.github.com/rest";

/** A route; a pattern starting with `{repo}` is under `/repos/{owner}/{repo}` (groups 1 and 2). */
export const route = (method: string, pattern: string, handler: Handler): Route => ({
  method,
  repoScoped: pattern.startsWith("{repo}"),
  re: new RegExp(`^${pattern.replace("{repo}", "/repos/([^/]+)/([^/]+)")}$`),
  handler,
});

export const error = (
  status: number,
  message: string,
  extra: Record<string, unknown> = {},
  headers?: Record<string, string>,
): Reply => ({
  status,
  body: { message, ...extra, documentation_url: DOCS, status: String(status) },
  ...(headers ? { headers } : {}),
});
export const notFound = () => error(404, "Not Found");
export const validation = (errors: unknown[], message = "Validation Failed") =>
  error(422, message, { errors });
export const noPush = (needs: string) =>
  error(
    403,
    "Resource not accessible by personal access token",
    {},
    { "x-accepted-github-permissions": needs },
  );

export const obj = (v: unknown): Record<string, unknown> =>
  v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
export const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

function paginate(items: unknown[], ctx: Ctx): { page: unknown[]; headers: Record<string, string> } {
  const perPage = Math.min(100, Math.max(1, Number(ctx.query.get("per_page")) || 30));
  const pageNo = Math.max(1, Number(ctx.query.get("page")) || 1);
  const last = Math.max(1, Math.ceil(items.length / perPage));
  const page = items.slice((pageNo - 1) * perPage, pageNo * perPage);
  if (last <= 1) return { page, headers: {} };
  const link = (n: number, rel: string) => {
    const u = new URL(ctx.url.pathname + ctx.url.search, ctx.base);
    u.searchParams.set("per_page", String(perPage));
    u.searchParams.set("page", String(n));
    return `<${u.toString()}>; rel="${rel}"`;
  };
  const rels: string[] = [];
  if (pageNo > 1) rels.push(link(pageNo - 1, "prev"));
  if (pageNo < last) rels.push(link(pageNo + 1, "next"), link(last, "last"));
  if (pageNo > 1) rels.push(link(1, "first"));
  return { page, headers: { link: rels.join(", ") } };
}

/** A page of `items` with GitHub's `Link` header; `key` wraps it as `{ total_count, [key]: page }`. */
export const list = (items: unknown[], ctx: Ctx, key?: string): Reply => {
  const { page, headers } = paginate(items, ctx);
  return { status: 200, body: key ? { total_count: items.length, [key]: page } : page, headers };
};

export interface ServeOptions {
  port?: number;
  token?: string;
  scopes?: string[];
  clock: Clock;
  /** The authenticated user's numeric id, named in the rate-limit message. */
  userId: number;
  routes: Route[];
  inRepo(m: string[]): boolean;
  calls: RecordedCall[];
}

export interface Served {
  url: string;
  failNext(fault: Fault): void;
  beforeReply(method: string, path: string, hook: () => Promise<void>): void;
  close(): Promise<void>;
}

export async function serve(opts: ServeOptions): Promise<Served> {
  const { clock, routes, calls } = opts;
  const faults: (Fault & { left: number })[] = [];
  const hooks: Array<{ method: string; path: string; hook: () => Promise<void> }> = [];
  let apiCalls = 0;

  function defaultFault(f: Fault): { body: unknown; headers: Record<string, string> } {
    const resetAt = String(Math.floor(clock.now().getTime() / 1000) + 3600);
    switch (f.status) {
      case 401:
        return { body: { message: "Bad credentials", documentation_url: DOCS, status: "401" }, headers: {} };
      case 403:
        // A 403 with a body of its own is a plain refusal; without one it is the primary rate limit.
        if (f.body !== undefined) return { body: f.body, headers: {} };
        return {
          body: {
            message: `API rate limit exceeded for user ID ${opts.userId}.`,
            documentation_url: `${DOCS}/overview/rate-limits-for-the-rest-api`,
            status: "403",
          },
          headers: {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-used": "5000",
            "x-ratelimit-reset": resetAt,
          },
        };
      case 429:
        return {
          body: {
            message:
              "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            documentation_url: DOCS,
            status: "429",
          },
          headers: { "retry-after": "60" },
        };
      case 422:
        return {
          body: {
            message: "Validation Failed",
            errors: [
              { resource: "Issue", code: "custom", field: "body", message: "body is too long (simulated)" },
            ],
            documentation_url: DOCS,
            status: "422",
          },
          headers: {},
        };
      default:
        return {
          body: {
            message: f.status >= 500 ? "Server Error" : (STATUS_CODES[f.status] ?? "Error"),
            documentation_url: DOCS,
            status: String(f.status),
          },
          headers: {},
        };
    }
  }

  function takeFault(method: string, path: string): Fault | undefined {
    const idx = faults.findIndex(
      (f) =>
        (!f.method || f.method.toUpperCase() === method) &&
        (!f.path || (typeof f.path === "string" ? f.path === path : f.path.test(path))),
    );
    if (idx < 0) return undefined;
    const f = faults[idx]!;
    if (--f.left <= 0) faults.splice(idx, 1);
    return f;
  }

  function authorized(req: IncomingMessage): Reply | null {
    if (!opts.token) return null;
    const header = req.headers.authorization;
    if (!header) return error(401, "Requires authentication");
    const m = /^(?:token|bearer)\s+(.+)$/i.exec(header);
    return m && m[1] === opts.token ? null : error(401, "Bad credentials");
  }

  async function dispatch(method: string, ctx: Ctx): Promise<Reply> {
    const path = ctx.url.pathname.replace(/\/+$/, "") || "/";
    for (const r of routes) {
      if (r.method !== method) continue;
      const m = r.re.exec(path);
      if (!m) continue;
      if (r.repoScoped && !opts.inRepo(m)) return notFound();
      return r.handler(m, ctx);
    }
    return notFound();
  }

  async function readBody(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  }

  function send(res: ServerResponse, reply: Reply, authed: boolean) {
    apiCalls++;
    const headers: Record<string, string> = {
      "content-type": "application/json; charset=utf-8",
      "x-github-request-id": `SIM:${apiCalls}`,
      "x-github-api-version-selected": "2022-11-28",
      "x-ratelimit-limit": "5000",
      "x-ratelimit-remaining": String(Math.max(0, 5000 - apiCalls)),
      "x-ratelimit-used": String(apiCalls),
      "x-ratelimit-reset": String(Math.floor(clock.now().getTime() / 1000) + 3600),
      "x-ratelimit-resource": "core",
      ...(authed && opts.scopes ? { "x-oauth-scopes": opts.scopes.join(", ") } : {}),
      ...reply.headers,
    };
    const body = reply.status === 204 || reply.body === undefined ? "" : JSON.stringify(reply.body);
    res.writeHead(reply.status, headers);
    res.end(body);
  }

  const server: Server = createServer((req, res) => {
    void (async () => {
      const method = (req.method ?? "GET").toUpperCase();
      const base = `http://${req.headers.host ?? "127.0.0.1"}`;
      const url = new URL(req.url ?? "/", base);
      const raw = await readBody(req);
      let body: unknown;
      let parseFailed = false;
      if (raw) {
        try {
          body = JSON.parse(raw);
        } catch {
          parseFailed = true;
          body = raw;
        }
      }
      const call: RecordedCall = {
        method,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        body,
        status: 0,
      };
      calls.push(call);
      const denied = authorized(req);
      let reply: Reply;
      if (denied) reply = denied;
      else {
        const fault = takeFault(method, url.pathname);
        if (fault) {
          const d = defaultFault(fault);
          const headers = Object.fromEntries(
            Object.entries({ ...d.headers, ...fault.headers }).map(([k, v]) => [k.toLowerCase(), String(v)]),
          );
          reply = { status: fault.status, body: fault.body ?? d.body, headers };
        } else if (parseFailed) reply = error(400, "Problems parsing JSON");
        else reply = await dispatch(method, { method, url, query: url.searchParams, body, base });
      }
      call.status = reply.status;
      const h = hooks.findIndex((x) => x.method === method && x.path === url.pathname);
      // Done, not answered yet: what a client killed at this moment leaves behind.
      if (h >= 0) await hooks.splice(h, 1)[0]!.hook();
      send(res, reply, !denied);
    })().catch((err: unknown) => {
      // A bug in the stand-in must show up as a 500, not a hung request.
      if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
      res.end(
        JSON.stringify({ message: `stand-in error: ${err instanceof Error ? err.message : String(err)}` }),
      );
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    failNext: (fault) => void faults.push({ ...fault, left: fault.count ?? 1 }),
    beforeReply: (method, path, hook) => void hooks.push({ method, path, hook }),
    // Idempotent, so a test may close it early and its teardown close it again.
    close: () =>
      new Promise<void>((resolve, reject) => {
        if (!server.listening) return resolve();
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
