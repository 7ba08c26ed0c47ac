/**
 * Thin typed client for the AI Maestro messaging hub (see AI-MAESTRO.md for the wire format and its
 * odd parts). Every call has a timeout; connection errors, timeouts and 5xx are retried with
 * exponential backoff, 4xx never. Failures surface as EoaError with a stable code, a message naming
 * the hub URL and a next step. The bearer token never appears in an error or a log line.
 */
import type { Agent } from "undici";
import { z } from "zod";
import { BoundedJsonError, readBoundedJson, type BoundedJsonLimits } from "./bounded-json.js";
import { EoaError } from "../errors.js";
import { silentLogger, type Logger } from "../log.js";
import { redactValue } from "../response.js";

export const PRIORITIES = ["low", "normal", "high", "urgent"] as const;
export type Priority = (typeof PRIORITIES)[number];

export interface AiMaestroClientOptions {
  url: string;
  token?: string;
  timeoutMs?: number;
  retries?: number;
  retryBaseMs?: number;
  logger?: Logger;
  /** Applied to every text read from or sent to the hub: known secrets never enter or leave. */
  redact?: (text: string) => string;
}

export interface MessageContent {
  type: string;
  message: string;
  context?: Record<string, unknown>;
}

export interface OutgoingMessage {
  from: string;
  to: string;
  subject: string;
  priority: Priority;
  inReplyTo?: string;
  content: MessageContent;
}

export interface InboxEntry {
  id: string;
  from: string;
  fromAlias?: string;
  to?: string;
  timestamp: string;
  subject: string;
  priority: string;
  status: string;
  type?: string;
  /** First 100 characters of the text only; read the message by id for all of it. */
  preview: string;
}

export interface FullMessage {
  id: string;
  from: string;
  to: string;
  timestamp: string;
  subject: string;
  priority: string;
  status: string;
  content: MessageContent;
  inReplyTo?: string;
  /**
   * false when the hub could not vouch for the sender: it then stores the text wrapped as
   * `<external-content ...>` (upstream's single read never carries the hub's own
   * `fromVerified`, so the wrapping is what tells). Otherwise the hub's field, when it sends one.
   */
  fromVerified?: boolean;
}

/** An agent as the hub resolves a name: `alias` is the name of the agent it reached. */
export interface ResolvedAgent {
  agentId: string;
  alias?: string;
}

/** A name the hub resolves to an agent of another name (it matches partial names). */
export interface MisroutedName {
  name: string;
  resolvesTo: string;
}

export interface AgentPresence {
  id: string;
  name: string;
  online: boolean;
  raw: unknown;
}

/** The same message can be listed as `msg_<ms>_<x>` (AMP route) and `msg-<ms>-<x>`: compare after this. */
export function normalizeMessageId(id: string): string {
  return id.replace(/_/g, "-");
}

const MAX_BODY_BYTES = 5 * 1024 * 1024;

/**
 * An inbox listing may be larger (see bounded-json): its size is set by what agents send, and one
 * message with a huge subject must not make the whole inbox unreadable. Past MAX_BODY_BYTES it is
 * read field by field, keeping 4,096 characters of each.
 */
const LISTING_LIMITS: BoundedJsonLimits = {
  wholeBytes: MAX_BODY_BYTES,
  maxBytes: 256 * 1024 * 1024,
  maxString: 4096,
  maxKept: 32 * 1024 * 1024,
  maxDepth: 16,
};

/** Transport failures worth another attempt: the hub may be restarting or a keep-alive socket went stale. */
const TRANSIENT_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "EAI_AGAIN",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "TIMEOUT",
]);

// Upstream returns fields as null where absent; the client's types use undefined.
const optString = z
  .string()
  .nullish()
  .transform((v) => v ?? undefined);

/**
 * Fields the hub stores as the sender gave them (it does not check `priority` or `content.type`, and
 * keeps whatever `content.message` and `content.context` were): a value of the wrong type reads as
 * empty, so one malformed message cannot make the whole inbox unreadable.
 */
const looseText = z.unknown().transform((v) => (typeof v === "string" ? v : ""));
const looseOptString = z
  .unknown()
  .transform((v) => (typeof v === "string" ? v : undefined))
  .optional();

const contentSchema = z
  .unknown()
  .transform((v) => (v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {}))
  .pipe(
    z.object({
      type: looseText,
      message: looseText,
      context: z
        .unknown()
        .transform((v) =>
          v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined,
        )
        .optional(),
    }),
  );

const inboxEntrySchema = z.object({
  id: z.string(),
  from: z.string(),
  fromAlias: looseOptString,
  to: looseOptString,
  timestamp: z.string(),
  subject: looseText,
  priority: looseText,
  status: z.string(),
  type: looseOptString,
  preview: looseText,
});

const fullMessageSchema = z.object({
  id: z.string(),
  from: z.string(),
  to: z.string(),
  timestamp: z.string(),
  subject: looseText,
  priority: looseText,
  status: z.string(),
  content: contentSchema,
  inReplyTo: looseOptString,
  fromVerified: z
    .boolean()
    .nullish()
    .transform((v) => v ?? undefined),
});

const healthSchema = z.object({ status: z.string(), version: optString });
const registerSchema = z.object({ agent: z.object({ id: z.string(), name: z.string() }) });
const resolveSchema = z.object({ resolved: z.object({ agentId: z.string(), alias: optString }) });
const agentsSchema = z.object({
  agents: z.array(
    z.object({
      id: z.string(),
      name: z.string(),
      session: z.object({ status: optString }).nullish(),
    }),
  ),
});
// Upstream wraps the stored message; the fork answers with the bare id.
const sendSchema = z.union([
  z.object({ message: z.object({ id: z.string() }) }).transform((r) => r.message.id),
  z.object({ id: z.string() }).transform((r) => r.id),
]);
const inboxSchema = z.object({ messages: z.array(inboxEntrySchema) });

type Method = "GET" | "POST" | "PATCH" | "DELETE";

interface HttpResult {
  status: number;
  /** Parsed JSON body, or undefined when the body was empty or not JSON. */
  json: unknown;
  text: string;
  /** Why a body read with limits gave no JSON, when it was not for want of JSON. */
  unreadable?: string;
}

interface CallOptions {
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  /** A health probe reports what the hub says now; other calls ride out a 5xx. */
  retryServerErrors?: boolean;
  /**
   * A send is not idempotent: after a timeout or a reset the hub may already have stored it, so
   * only failures that prove the request never arrived are retried here. The outbox reconciles the rest.
   */
  notIdempotent?: boolean;
  /** Read a 2xx body with these limits on what is kept, however large it is (an inbox listing). */
  bounded?: BoundedJsonLimits;
}

/** Transport failures that happen before a request reaches the hub. */
const NEVER_ARRIVED = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "EAI_AGAIN",
  "UND_ERR_CONNECT_TIMEOUT",
]);

export class AiMaestroClient {
  /** The hub URL as shown to users: no credentials, no trailing slash. */
  readonly url: string;
  private readonly base: string;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly retryBaseMs: number;
  private readonly log: Logger;

  constructor(opts: AiMaestroClientOptions) {
    let parsed: URL;
    try {
      parsed = new URL(opts.url);
    } catch {
      parsed = new URL("invalid:");
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      throw new EoaError(
        "AIMAESTRO_BAD_URL",
        `AI Maestro URL is not an http(s) URL: ${JSON.stringify(opts.url)}`,
        "set AIMAESTRO_API to the hub's address, e.g. http://localhost:23000",
      );
    }
    parsed.username = "";
    parsed.password = "";
    this.base = `${parsed.origin}${parsed.pathname.replace(/\/+$/, "")}`;
    this.url = this.base;
    this.token = opts.token || undefined;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.retries = opts.retries ?? 3;
    this.retryBaseMs = opts.retryBaseMs ?? 200;
    this.log = opts.logger ?? silentLogger;
    const redact = opts.redact;
    this.scrub = redact ? <T>(v: T) => redactValue(v, redact) as T : <T>(v: T) => v;
  }

  private readonly scrub: <T>(value: T) => T;

  /** undici is loaded on the first request: a server answers `initialize` without paying for it. */
  private http: Promise<{ agent: Agent; request: typeof import("undici").request }> | undefined;

  private undici() {
    // Through `default`: undici is CommonJS, and in the bundle (scripts/build.ts) that is all a
    // dynamic import of it gives.
    this.http ??= import("undici").then(({ default: { Agent, request } }) => ({
      agent: new Agent({
        keepAliveTimeout: 10_000,
        connections: 8,
        connectTimeout: this.timeoutMs,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      }),
      request,
    }));
    return this.http;
  }

  async close(): Promise<void> {
    if (this.http) await (await this.http).agent.close();
  }

  async health(): Promise<{ status: string; version?: string }> {
    const path = "/api/v1/health";
    const res = await this.call("GET", path, { retryServerErrors: false });
    if (res.status === 503) {
      throw new EoaError(
        "AIMAESTRO_UNHEALTHY",
        `AI Maestro at ${this.url} reports itself unhealthy (503${this.detail(res)})`,
        "check the AI Maestro service and its logs, then retry",
        { url: this.url, status: 503 },
      );
    }
    return this.parse(healthSchema, this.ok(res, "GET", path), path);
  }

  async registerAgent(
    name: string,
    program?: string,
    taskDescription?: string,
  ): Promise<{ id: string; name: string }> {
    const path = "/api/agents";
    const res = await this.call("POST", path, { body: { name, program, taskDescription } });
    // Registering twice is not a failure for us: the agent we wanted exists.
    if (
      res.status === 409 ||
      (res.status >= 400 && res.status < 500 && /already exists/i.test(this.errorText(res)))
    ) {
      const existing = await this.resolveExactly(name);
      if (existing) return { id: existing.agentId, name: name.toLowerCase() };
    }
    return this.parse(registerSchema, this.ok(res, "POST", path), path).agent;
  }

  /** The agent the hub reaches under `name`, which may be another agent's partial name (see resolveExactly). */
  async resolveAgent(name: string): Promise<ResolvedAgent | null> {
    const path = "/api/messages";
    const res = await this.call("GET", path, { query: { action: "resolve", agent: name } });
    if (res.status === 404) return null;
    return this.parse(resolveSchema, this.ok(res, "GET", path), path).resolved;
  }

  /** The agent registered under exactly `name` (or with that UUID); null when the hub reaches another or none. */
  async resolveExactly(name: string): Promise<ResolvedAgent | null> {
    const r = await this.resolveAgent(name);
    return r && reachesNamed(r, name) ? r : null;
  }

  /**
   * The names among `names` that the hub delivers to an agent of another name: it resolves a last
   * `-` segment (`3f9a2c` reaches `dev-agent-1-3f9a2c` when no `3f9a2c` exists) and a tmux-style
   * `name_1`, so mail meant for one agent could reach another. Unregistered names are not listed.
   */
  async misroutedNames(names: readonly string[]): Promise<MisroutedName[]> {
    const out: MisroutedName[] = [];
    for (const name of names) {
      const r = await this.resolveAgent(name);
      if (r && !reachesNamed(r, name)) out.push({ name, resolvesTo: r.alias ?? r.agentId });
    }
    return out;
  }

  async ensureRegistered(name: string): Promise<{ id: string; name: string }> {
    const existing = await this.resolveExactly(name);
    if (existing) return { id: existing.agentId, name: name.toLowerCase() };
    return this.registerAgent(name);
  }

  async listAgents(): Promise<AgentPresence[]> {
    const path = "/api/agents";
    const res = this.ok(await this.call("GET", path), "GET", path);
    const parsed = this.parse(agentsSchema, res, path);
    const raw = (res.json as { agents: unknown[] }).agents;
    return parsed.agents.map((a, i) => ({
      id: a.id,
      name: a.name,
      online: a.session?.status === "online",
      raw: raw[i],
    }));
  }

  async heartbeat(name: string, status = "active"): Promise<void> {
    const path = `/api/agents/${encodeURIComponent(name)}/heartbeat`;
    this.ok(await this.call("POST", path, { body: { status } }), "POST", path);
  }

  async send(msg: OutgoingMessage): Promise<{ id: string }> {
    // The hub stores any priority; an unknown one would silently sort wrong for the recipient.
    if (!(PRIORITIES as readonly string[]).includes(msg.priority)) {
      throw new EoaError(
        "AIMAESTRO_INVALID_PRIORITY",
        `message priority ${JSON.stringify(msg.priority)} is not one of ${PRIORITIES.join(", ")}`,
        `use one of ${PRIORITIES.join(", ")}`,
      );
    }
    const path = "/api/messages";
    const body = {
      from: msg.from,
      to: msg.to,
      subject: this.scrub(msg.subject),
      priority: msg.priority,
      inReplyTo: msg.inReplyTo,
      content: this.scrub(msg.content),
    };
    const res = await this.call("POST", path, { body, notIdempotent: true });
    return { id: this.parse(sendSchema, this.ok(res, "POST", path, msg.to), path) };
  }

  async listUnread(agent: string, limit = 0): Promise<InboxEntry[]> {
    return this.listInbox(agent, { status: "unread", limit });
  }

  /** Newest first. `limit` 0 (the default here) means all; without `status` archived ones are included. */
  async listInbox(
    agent: string,
    opts: { status?: "unread" | "read" | "archived"; limit?: number } = {},
  ): Promise<InboxEntry[]> {
    const path = "/api/messages";
    const query = { agent, box: "inbox", status: opts.status, limit: opts.limit ?? 0 };
    const res = await this.call("GET", path, { query, bounded: LISTING_LIMITS });
    return this.scrub(this.parse(inboxSchema, this.ok(res, "GET", path), path).messages);
  }

  /** Reading a message by id does not mark it read. */
  async getMessage(agent: string, id: string): Promise<FullMessage | null> {
    const path = "/api/messages";
    const res = await this.call("GET", path, { query: { agent, id } });
    if (res.status === 404) return null;
    const m = this.scrub(this.parse(fullMessageSchema, this.ok(res, "GET", path), path));
    return EXTERNAL_CONTENT.test(m.content.message) ? { ...m, fromVerified: false } : m;
  }

  async markRead(agent: string, id: string): Promise<void> {
    await this.patch(agent, id, "read");
  }

  private async patch(agent: string, id: string, action: "read"): Promise<void> {
    const path = "/api/messages";
    this.ok(await this.call("PATCH", path, { query: { agent, id, action } }), "PATCH", path);
  }

  /** One logical call: attempts with backoff; returns any HTTP answer it does not retry. */
  private async call(method: Method, path: string, opts: CallOptions = {}): Promise<HttpResult> {
    const target = new URL(this.base + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) {
      if (v !== undefined) target.searchParams.set(k, String(v));
    }
    const retryServerErrors = opts.retryServerErrors ?? true;
    for (let attempt = 0; ; attempt++) {
      let reason: string;
      try {
        const res = await this.attempt(method, target, opts.body, opts.bounded);
        if (
          res.status < 500 ||
          !retryServerErrors ||
          isPermanentServerError(res) ||
          attempt >= this.retries
        ) {
          return res;
        }
        reason = `HTTP ${res.status}`;
      } catch (err) {
        if (err instanceof EoaError) throw err;
        const code = transportCode(err);
        if (code === undefined) throw err;
        const retryable = opts.notIdempotent ? NEVER_ARRIVED.has(code) : TRANSIENT_CODES.has(code);
        if (!retryable || attempt >= this.retries) {
          throw this.unreachable(code, method, path, attempt + 1);
        }
        reason = code;
      }
      const delay = this.retryBaseMs * 2 ** attempt;
      this.log.debug("AI Maestro call failed, retrying", {
        method,
        path,
        reason,
        attempt: attempt + 1,
        delay,
      });
      await sleep(delay);
    }
  }

  private async attempt(
    method: Method,
    target: URL,
    body: unknown,
    bounded?: BoundedJsonLimits,
  ): Promise<HttpResult> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const { agent, request } = await this.undici();
    const res = await request(target, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      dispatcher: agent,
      // headers/body timeouts are per phase; this bounds the whole attempt.
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    if (bounded && res.statusCode >= 200 && res.statusCode < 300) {
      try {
        return { status: res.statusCode, json: await readBoundedJson(res.body, bounded), text: "" };
      } catch (err) {
        if (!(err instanceof BoundedJsonError)) throw err;
        if (err.reason === "too-large") throw this.tooLarge(method, target.pathname, err.message);
        return {
          status: res.statusCode,
          json: undefined,
          text: "",
          ...(err.reason === "too-deep" ? { unreadable: err.message } : {}),
        };
      }
    }
    const declared = Number(res.headers["content-length"] ?? 0);
    if (declared > MAX_BODY_BYTES) {
      res.body.destroy();
      throw this.tooLarge(method, target.pathname);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY_BYTES) {
        res.body.destroy();
        throw this.tooLarge(method, target.pathname);
      }
      chunks.push(chunk as Buffer);
    }
    const text = Buffer.concat(chunks).toString("utf8");
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: res.statusCode, json, text };
  }

  /** Returns a 2xx result; maps anything else to the error a user can act on. */
  private ok(res: HttpResult, method: Method, path: string, recipient?: string): HttpResult {
    if (res.status >= 200 && res.status < 300) return res;
    const where = `AI Maestro at ${this.url} answered ${method} ${path} with ${res.status}${this.detail(res)}`;
    const details = { url: this.url, status: res.status, method, path };
    if (res.status === 401 || res.status === 403) {
      throw new EoaError(
        "AIMAESTRO_AUTH",
        where,
        this.token
          ? "the hub rejected the token: check AIMAESTRO_TOKEN"
          : "set AIMAESTRO_TOKEN to the hub's bearer token",
        details,
      );
    }
    if (isPermanentServerError(res)) {
      const who = recipient ? `recipient ${JSON.stringify(recipient)}` : "the recipient";
      throw new EoaError(
        "AIMAESTRO_UNKNOWN_RECIPIENT",
        `AI Maestro at ${this.url} does not know ${who} (${this.errorText(res)})`,
        "register the agent in AI Maestro or fix the roster session name",
        { ...details, recipient },
      );
    }
    throw new EoaError(
      "AIMAESTRO_HTTP_ERROR",
      where,
      "check the request and the AI Maestro logs, then retry",
      details,
    );
  }

  private parse<T>(schema: z.ZodType<T>, res: HttpResult, path: string): T {
    const result = schema.safeParse(res.json);
    if (result.success) return result.data;
    const why =
      res.json === undefined
        ? res.unreadable
          ? `a body it cannot read (${res.unreadable})`
          : "a body that is not JSON"
        : `an unexpected body (${result.error.issues[0]?.message})`;
    throw new EoaError(
      "AIMAESTRO_BAD_RESPONSE",
      `AI Maestro at ${this.url} answered ${path} with ${why}`,
      "check that AIMAESTRO_API points at AI Maestro and that its version is supported",
      { url: this.url, status: res.status, path },
    );
  }

  private unreachable(code: string, method: Method, path: string, attempts: number): EoaError {
    const timedOut = /TIMEOUT/.test(code);
    const message = timedOut
      ? `AI Maestro at ${this.url} did not answer within ${this.timeoutMs} ms (${code})`
      : `AI Maestro is not reachable at ${this.url} (${code})`;
    const nextStep = timedOut
      ? "check that AI Maestro is running and responsive, or set AIMAESTRO_API to the right hub"
      : "start AI Maestro or set AIMAESTRO_API";
    return new EoaError("AIMAESTRO_UNREACHABLE", this.redact(message), nextStep, {
      url: this.url,
      cause: code,
      method,
      path,
      attempts,
      // A timeout or a reset may come after the hub stored the request; a refused connection cannot.
      may_have_arrived: !NEVER_ARRIVED.has(code),
    });
  }

  private tooLarge(method: Method, path: string, listing?: string): EoaError {
    return new EoaError(
      "AIMAESTRO_BAD_RESPONSE",
      listing
        ? `AI Maestro at ${this.url} answered ${method} ${path} with a listing too large to read (${listing})`
        : `AI Maestro at ${this.url} answered ${method} ${path} with a body over ${MAX_BODY_BYTES} bytes`,
      listing
        ? "delete old messages of that inbox in AI Maestro (archived ones are listed too)"
        : "check that AIMAESTRO_API points at AI Maestro and that its version is supported",
      { url: this.url, method, path, too_large: true },
    );
  }

  /** Both error shapes: `{"error":"<code>","message":"<text>"}` and `{"error":"<text>"}`. */
  private errorText(res: HttpResult): string {
    const b = res.json;
    if (b && typeof b === "object") {
      const { error, message } = b as { error?: unknown; message?: unknown };
      const parts = [message, error].filter((p): p is string => typeof p === "string" && p !== "");
      if (parts.length > 0) return this.redact(parts.join(": "));
    }
    return this.redact(res.text.slice(0, 200));
  }

  private detail(res: HttpResult): string {
    const text = this.errorText(res);
    return text ? `: ${text}` : "";
  }

  /** Defence in depth: a hub (or proxy) echoing the token must not carry it into our errors. */
  private redact(text: string): string {
    return this.token ? text.split(this.token).join("[redacted]") : text;
  }
}

/** How the hub (its backstop, or a gateway) marks the text of a sender it cannot vouch for. */
const EXTERNAL_CONTENT = /^\s*<external-content\s/;

/** Whether a resolution reached the agent called `name` (names are case-insensitive; a UUID is exact). */
function reachesNamed(r: ResolvedAgent, name: string): boolean {
  // A hub that does not say whom it reached (the fork) gets the benefit of the doubt.
  return r.alias === undefined || r.alias.toLowerCase() === name.toLowerCase() || r.agentId === name;
}

/** The hub answers 500 for an unknown recipient: a permanent failure, not worth a retry. */
function isPermanentServerError(res: HttpResult): boolean {
  return res.status === 500 && /No recipient agent UUID/i.test(res.text);
}

/** The code of a transport failure, or undefined for an error that is not one (a bug: rethrown). */
function transportCode(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  if (err.name === "TimeoutError") return "TIMEOUT";
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string") return code;
  // Happy-eyeballs connects fail with an AggregateError of per-address errors.
  if (err instanceof AggregateError) return transportCode(err.errors[0]);
  return transportCode(err.cause);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
