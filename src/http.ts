import { randomUUID, timingSafeEqual } from "node:crypto";
import type { Server } from "node:http";
import type { Request, Response } from "express";
import { createMcpExpressApp } from "@modelcontextprotocol/sdk/server/express.js";
import { requireBearerAuth } from "@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js";
import { InvalidTokenError } from "@modelcontextprotocol/sdk/server/auth/errors.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import type { Runtime } from "./engine/runtime.js";
import { EoaError } from "./errors.js";
import type { LogSink } from "./log.js";
import { createServer, type EoaServer } from "./server.js";

/**
 * Streamable HTTP on 127.0.0.1 only, behind a bearer token (EOA_HTTP_TOKEN), Host-header
 * (DNS rebinding) protection and an Origin check (http.allowed_origins). One McpServer per MCP session, all sharing the runtime, so HTTP and
 * stdio servers can work the same state directory at once (the store's lock keeps them honest).
 */

export interface HttpHandle {
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * A session with no request and no open event stream for this long is closed: a client that
 * vanished without DELETE (killed, laptop closed) would otherwise keep its server forever. A client
 * that comes back gets 404 and initializes again, as the MCP spec has it.
 */
const SESSION_IDLE_MS = 60 * 60_000;

interface Session {
  transport: StreamableHTTPServerTransport;
  server: EoaServer;
  lastSeen: number;
  /** Open GET (event stream) requests: a client listening is not idle, however quiet. */
  streams: number;
}

export async function serveHttp(
  rt: Runtime,
  opts: { port: number; logSinks?: Set<LogSink>; sessionIdleMs?: number },
): Promise<HttpHandle> {
  const token = rt.config.http.token;
  if (!token) {
    throw new EoaError(
      "HTTP_TOKEN_REQUIRED",
      "the HTTP transport refuses to start without a bearer token",
      "set EOA_HTTP_TOKEN (16+ random characters, e.g. `openssl rand -hex 32`) or http.token in the config file",
    );
  }
  const expected = Buffer.from(token);
  const app = createMcpExpressApp({ host: "127.0.0.1" });
  const auth = requireBearerAuth({
    verifier: {
      verifyAccessToken: async (presented: string) => {
        const got = Buffer.from(presented);
        if (got.length !== expected.length || !timingSafeEqual(got, expected))
          throw new InvalidTokenError("invalid token");
        // requireBearerAuth insists on an expiry; the static token never expires by itself.
        return {
          token: presented,
          clientId: "eoa-http",
          scopes: [],
          expiresAt: Math.floor(Date.now() / 1000) + 3600,
        };
      },
    },
  });

  // Streamable HTTP's security rules: a browser page from another origin (or a sandboxed one, whose
  // Origin is "null") must not reach the server; clients that send no Origin are not browsers.
  const allowed = new Set(rt.config.http.allowed_origins.map((o) => new URL(o).origin));
  app.use("/mcp", (req, res, next) => {
    const origin = req.headers.origin;
    if (origin === undefined || allowed.has(origin)) {
      next();
      return;
    }
    res.status(403).json({
      jsonrpc: "2.0",
      error: {
        code: -32000,
        message: `Origin ${JSON.stringify(origin)} is not allowed: add it to http.allowed_origins (EOA_HTTP_ALLOWED_ORIGINS)`,
      },
      id: null,
    });
  });

  const sessions = new Map<string, Session>();
  const idleMs = opts.sessionIdleMs ?? SESSION_IDLE_MS;
  const sweep = setInterval(
    () => {
      const now = Date.now();
      for (const [id, s] of sessions) {
        if (s.streams > 0 || now - s.lastSeen < idleMs) continue;
        sessions.delete(id);
        rt.logger.info("closed an idle HTTP session", {
          idle_minutes: Math.round((now - s.lastSeen) / 60_000),
        });
        void s.transport.close().catch(() => undefined);
        void s.server.close().catch(() => undefined);
      }
    },
    Math.min(idleMs, 60_000),
  );
  sweep.unref();

  app.post("/mcp", auth, async (req, res) => {
    const sid = req.headers["mcp-session-id"];
    const existing = typeof sid === "string" ? sessions.get(sid) : undefined;
    if (existing) {
      existing.lastSeen = Date.now();
      await existing.transport.handleRequest(req, res, req.body);
      return;
    }
    if (sid !== undefined) {
      unknownSession(res);
      return;
    }
    if (!isInitializeRequest(req.body)) {
      res.status(400).json({
        jsonrpc: "2.0",
        error: { code: -32000, message: "no mcp-session-id: send initialize first" },
        id: null,
      });
      return;
    }
    const server = createServer(rt, opts.logSinks ? { logSinks: opts.logSinks } : {});
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        sessions.set(id, { transport, server, lastSeen: Date.now(), streams: 0 });
      },
    });
    transport.onclose = () => {
      if (transport.sessionId) sessions.delete(transport.sessionId);
      void server.close();
    };
    await server.server.connect(transport);
    await transport.handleRequest(req, res, req.body);
    // Refused before a session began (bad Accept, content type or JSON): nothing will close it later.
    if (!transport.sessionId || !sessions.has(transport.sessionId)) await server.close();
  });

  const sessionRequest = async (req: Request, res: Response) => {
    const sid = req.headers["mcp-session-id"];
    if (typeof sid !== "string") {
      res.status(400).send("missing mcp-session-id");
      return;
    }
    const s = sessions.get(sid);
    if (!s) {
      unknownSession(res);
      return;
    }
    s.lastSeen = Date.now();
    if (req.method === "GET") {
      s.streams++;
      res.on("close", () => {
        s.streams--;
        s.lastSeen = Date.now();
      });
    }
    await s.transport.handleRequest(req, res);
  };
  app.get("/mcp", auth, sessionRequest);
  app.delete("/mcp", auth, sessionRequest);

  // Express 5 hands a listen error to the callback (a port in use must not read as "listening").
  const listener: Server = await new Promise((resolve, reject) => {
    const s = app.listen(opts.port, "127.0.0.1", (err?: Error) =>
      err ? reject(listenError(err, opts.port)) : resolve(s),
    );
  });
  const address = listener.address();
  const port = typeof address === "object" && address ? address.port : opts.port;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    port,
    async close() {
      clearInterval(sweep);
      for (const { transport, server } of sessions.values()) {
        await transport.close().catch(() => undefined);
        await server.close().catch(() => undefined);
      }
      sessions.clear();
      // Keep-alive sockets of finished requests would otherwise hold close() for the keep-alive timeout.
      const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
      listener.closeAllConnections();
      await closed;
    },
  };
}

/**
 * MCP (Streamable HTTP, session management): a request carrying a session id the server does not
 * know (terminated, expired, or from before a restart) gets 404, which tells the client to send a
 * new initialize; 400 is kept for requests that carry no session id at all.
 */
function unknownSession(res: Response): void {
  res.status(404).json({
    jsonrpc: "2.0",
    error: { code: -32001, message: "unknown or terminated MCP session: send initialize again" },
    id: null,
  });
}

function listenError(err: NodeJS.ErrnoException, port: number): Error {
  if (err.code === "EADDRINUSE")
    return new EoaError(
      "HTTP_PORT_IN_USE",
      `port ${port} is in use on 127.0.0.1`,
      "stop the other server on that port (another eoa-mcp serve?), or set http.port in the config file or --port",
    );
  if (err.code === "EACCES")
    return new EoaError(
      "HTTP_PORT_DENIED",
      `port ${port} on 127.0.0.1 may not be opened by this user`,
      "use a port above 1023 (http.port or --port)",
    );
  return err;
}
