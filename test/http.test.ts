import { spawn } from "node:child_process";
import { request as httpRequest } from "node:http";
import { connect, createServer as createNetServer, type AddressInfo } from "node:net";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { LATEST_PROTOCOL_VERSION } from "@modelcontextprotocol/sdk/types.js";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { isEoaError } from "../src/errors.js";
import { serveHttp, type HttpHandle } from "../src/http.js";
import { createEnvironment, type NightEnvironment } from "../src/sim/environment.js";
import { readStateDir } from "../src/state/store.js";
import { tools } from "../src/tools/index.js";
import { assertBuilt, CLI, runCli } from "./fixtures/cli.js";

/**
 * Issue 5, part 4: the Streamable HTTP transport. The server runs in-process on a runtime from
 * createEnvironment (stand-ins on loopback); the clients are the SDK's own, or raw HTTP requests for
 * what an SDK client would never send. The last tests spawn the built CLI: `npm test` builds first.
 */

const TOKEN = "0123456789abcdef0123456789abcdef";

beforeAll(assertBuilt);

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function served(
  token: string | null = TOKEN,
  more: Record<string, unknown> = {},
): Promise<{ env: NightEnvironment; http: HttpHandle }> {
  const env = await createEnvironment(token ? { config: { http: { token, ...more } } } : {});
  cleanups.push(() => env.close());
  const http = await serveHttp(env.rt, { port: 0 });
  cleanups.push(() => http.close());
  return { env, http };
}

async function httpClient(url: string, token = TOKEN): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  });
  const client = new Client({ name: "eoa-http-test", version: "1.0.0" });
  await client.connect(transport);
  cleanups.push(() => client.close());
  return client;
}

const INITIALIZE = JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: {
    protocolVersion: LATEST_PROTOCOL_VERSION,
    capabilities: {},
    clientInfo: { name: "raw", version: "1" },
  },
});

const LIST_TOOLS = JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list", params: {} });

/** A raw POST (initialize unless told), with exactly the headers given (Host included). */
function rawPost(
  url: string,
  headers: Record<string, string>,
  payload = INITIALIZE,
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          "content-length": Buffer.byteLength(payload),
          ...headers,
        },
      },
      (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

function textOf(r: unknown): string {
  return (r as { contents: Array<{ text: string }> }).contents[0]!.text;
}

describe("serveHttp", () => {
  it("binds 127.0.0.1 and serves a full SDK client with the bearer token", async () => {
    const { http } = await served();
    expect(http.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
    expect(http.port).toBeGreaterThan(0);
    const client = await httpClient(http.url);
    expect(client.getServerVersion()?.name).toBe("eoa-mcp");
    expect(client.getInstructions()).toContain("check_messages");
    const listed = await client.listTools();
    expect(listed.tools.map((t) => t.name)).toEqual(tools.map((t) => t.name));
    const pre = (await client.callTool({ name: "preflight", arguments: {} })) as unknown as {
      isError?: boolean;
      structuredContent: { items: Array<{ item: string; status: string }> };
    };
    expect(pre.isError).toBeFalsy();
    expect(pre.structuredContent.items.length).toBeGreaterThan(5);
    expect(pre.structuredContent.items.find((i) => /AI Maestro/i.test(i.item))?.status).toBe("pass");
  });

  it("gives each MCP session its own server: two clients at once, closing one leaves the other", async () => {
    const { http } = await served();
    const a = await httpClient(http.url);
    const b = await httpClient(http.url);
    const sidA = (a.transport as StreamableHTTPClientTransport).sessionId;
    const sidB = (b.transport as StreamableHTTPClientTransport).sessionId;
    expect(sidA).toBeTruthy();
    expect(sidB).toBeTruthy();
    expect(sidA).not.toBe(sidB);
    await (a.transport as StreamableHTTPClientTransport).terminateSession();
    await a.close();
    expect((await b.listTools()).tools.length).toBe(tools.length);
    // A terminated (or never issued) session id is 404, so that the client knows to initialize again.
    for (const sid of [sidA!, "00000000-0000-0000-0000-000000000000"]) {
      const stale = await rawPost(
        http.url,
        { authorization: `Bearer ${TOKEN}`, "mcp-session-id": sid },
        LIST_TOOLS,
      );
      expect(stale.status, sid).toBe(404);
    }
    const gone = await fetch(http.url, {
      method: "DELETE",
      headers: { authorization: `Bearer ${TOKEN}`, "mcp-session-id": sidA! },
    });
    expect(gone.status).toBe(404);
    // No session id on a request that is not initialize: 400.
    const missing = await rawPost(http.url, { authorization: `Bearer ${TOKEN}` }, LIST_TOOLS);
    expect(missing.status).toBe(400);
    const noSid = await fetch(http.url, { method: "GET", headers: { authorization: `Bearer ${TOKEN}` } });
    expect(noSid.status).toBe(400);
  });

  it("closes promptly with a client still connected", async () => {
    const env = await createEnvironment({ config: { http: { token: TOKEN } } });
    cleanups.push(() => env.close());
    const http = await serveHttp(env.rt, { port: 0 });
    const client = await httpClient(http.url);
    expect((await client.listTools()).tools.length).toBe(tools.length);
    await http.close();
    await expect(client.listTools()).rejects.toThrow();
  });

  it("closes even while a client is stuck half-way through a request", async () => {
    const env = await createEnvironment({ config: { http: { token: TOKEN } } });
    cleanups.push(() => env.close());
    const http = await serveHttp(env.rt, { port: 0 });
    const socket = connect(http.port, "127.0.0.1");
    cleanups.push(async () => socket.destroy());
    const socketClosed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    socket.on("error", () => undefined);
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    // Headers sent, body promised but never finished: the request stays in flight.
    socket.write(
      `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${http.port}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{`,
    );
    await new Promise((r) => setTimeout(r, 50));
    await http.close();
    await socketClosed;
  });

  it("closes a session left idle (no request, no open event stream); a listening client keeps its own", async () => {
    const env = await createEnvironment({ config: { http: { token: TOKEN } } });
    cleanups.push(() => env.close());
    // Long enough for the SDK client's event stream, opened in the background, to reach the server.
    const http = await serveHttp(env.rt, { port: 0, sessionIdleMs: 1_000 });
    cleanups.push(() => http.close());
    // A client that initialized and vanished without DELETE.
    const init = await rawPost(http.url, { authorization: `Bearer ${TOKEN}` });
    const sid = String(init.headers["mcp-session-id"]);
    expect(sid).toMatch(/^[0-9a-f-]{36}$/);
    // The SDK client holds an event stream (GET) open: quiet, but not gone.
    const listening = await httpClient(http.url);
    await new Promise((r) => setTimeout(r, 3_000)); // past the idle time and the sweep after it
    const stale = await rawPost(
      http.url,
      { authorization: `Bearer ${TOKEN}`, "mcp-session-id": sid },
      LIST_TOOLS,
    );
    expect(stale.status).toBe(404);
    expect((await listening.listTools()).tools.length).toBe(tools.length);
  });

  it("an initialize refused before its session began leaves no server behind", async () => {
    const { env, http } = await served();
    const before = env.rt.extraUpdates.size;
    const refused = await rawPost(http.url, { authorization: `Bearer ${TOKEN}`, accept: "text/plain" });
    expect(refused.status).toBe(406);
    expect(env.rt.extraUpdates.size).toBe(before);
    // A good one still gets its session (and its server) after that.
    const client = await httpClient(http.url);
    expect(env.rt.extraUpdates.size).toBe(before + 1);
    expect((await client.listTools()).tools.length).toBe(tools.length);
  });

  it("answers 401 without the token and with a wrong one", async () => {
    const { http } = await served();
    const none = await rawPost(http.url, {});
    expect(none.status).toBe(401);
    expect(String(none.headers["www-authenticate"])).toMatch(/^Bearer/);
    const wrong = await rawPost(http.url, { authorization: `Bearer ${"x".repeat(TOKEN.length)}` });
    expect(wrong.status).toBe(401);
    const shorter = await rawPost(http.url, { authorization: "Bearer abc" });
    expect(shorter.status).toBe(401);
    expect(none.body + wrong.body).not.toContain(TOKEN);
    // An SDK client with a wrong token cannot connect either.
    const transport = new StreamableHTTPClientTransport(new URL(http.url), {
      requestInit: { headers: { Authorization: "Bearer not-the-token-at-all-000000000" } },
    });
    const client = new Client({ name: "intruder", version: "1" });
    await expect(client.connect(transport)).rejects.toThrow();
    // The right token, raw: 200.
    const right = await rawPost(http.url, { authorization: `Bearer ${TOKEN}` });
    expect(right.status).toBe(200);
  });

  it("answers 403 to a foreign Host header, token or not (DNS rebinding)", async () => {
    const { http } = await served();
    const foreign = await rawPost(http.url, { host: "evil.example", authorization: `Bearer ${TOKEN}` });
    expect(foreign.status).toBe(403);
    const foreignWithPort = await rawPost(http.url, { host: `evil.example:${http.port}` });
    expect(foreignWithPort.status).toBe(403);
    const local = await rawPost(http.url, {
      host: `localhost:${http.port}`,
      authorization: `Bearer ${TOKEN}`,
    });
    expect(local.status).toBe(200);
  });

  it("answers 403 to a foreign or null Origin, token or not; an allowed Origin and none at all pass", async () => {
    const { http } = await served(TOKEN, { allowed_origins: ["http://localhost:6274"] });
    const auth = { authorization: `Bearer ${TOKEN}` };
    for (const origin of ["http://evil.example.com", "null", "http://localhost:6275"]) {
      const r = await rawPost(http.url, { ...auth, origin });
      expect(r.status, origin).toBe(403);
      expect(r.body).toContain("http.allowed_origins");
      expect((await rawPost(http.url, { origin })).status, `${origin} without a token`).toBe(403);
    }
    expect((await rawPost(http.url, { ...auth, origin: "http://localhost:6274" })).status).toBe(200);
    expect((await rawPost(http.url, auth)).status).toBe(200);
  });

  it("takes the allowed origins from EOA_HTTP_ALLOWED_ORIGINS", () => {
    const config = loadConfig({
      argv: [],
      env: { EOA_HTTP_ALLOWED_ORIGINS: "http://localhost:6274, https://app.example" },
      cwd: tmpdir(),
    });
    expect(config.http.allowed_origins).toEqual(["http://localhost:6274", "https://app.example"]);
  });

  it("refuses to start without a token: HTTP_TOKEN_REQUIRED", async () => {
    const env = await createEnvironment();
    cleanups.push(() => env.close());
    expect(env.config.http.token).toBeUndefined();
    const err = await serveHttp(env.rt, { port: 0 }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isEoaError(err)).toBe(true);
    expect((err as { code: string }).code).toBe("HTTP_TOKEN_REQUIRED");
    expect((err as { nextStep: string }).nextStep).toContain("EOA_HTTP_TOKEN");
  });
});

describe("eoa-mcp --http (the built CLI)", () => {
  it("exits non-zero naming EOA_HTTP_TOKEN when no token is set", async () => {
    const env = await createEnvironment();
    cleanups.push(() => env.close());
    const r = await runCli(["--http", "--port", "0", "--config", env.configFile], env.root);
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    expect(r.stderr).toContain("EOA_HTTP_TOKEN");
    expect(r.stderr).toContain("HTTP_TOKEN_REQUIRED");
    expect(r.stdout).toBe("");
  });

  it("serves with EOA_HTTP_TOKEN on the port it prints, and exits 0 on SIGTERM", async () => {
    const env = await createEnvironment();
    cleanups.push(() => env.close());
    const child = spawn(process.execPath, [CLI, "--http", "--port", "0", "--config", env.configFile], {
      cwd: env.root,
      env: { PATH: process.env.PATH ?? "", HOME: env.root, EOA_HTTP_TOKEN: TOKEN },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
      child.once("exit", (code, signal) => resolve({ code, signal })),
    );
    cleanups.push(async () => {
      if (child.exitCode === null) child.kill("SIGKILL");
    });
    let stdout = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    const url = await new Promise<string>((resolve, reject) => {
      let stderr = "";
      child.stderr.on("data", (c: Buffer) => {
        stderr += c.toString();
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)/.exec(stderr);
        if (m) resolve(m[1]!);
      });
      child.once("exit", () => reject(new Error(`exited before listening: ${stderr}`)));
    });
    const client = await httpClient(url);
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual(tools.map((t) => t.name));
    expect((await rawPost(url, {})).status).toBe(401);
    await client.close();
    child.kill("SIGTERM");
    expect(await exited).toEqual({ code: 0, signal: null });
    expect(stdout).toBe("");
  });

  it("serve on a port already in use fails with HTTP_PORT_IN_USE and a non-zero exit", async () => {
    const env = await createEnvironment();
    cleanups.push(() => env.close());
    const taken = createNetServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => new Promise((resolve) => taken.close(resolve)));
    const port = String((taken.address() as AddressInfo).port);
    for (const args of [["serve"], ["--http"]]) {
      const r = await runCli([...args, "--port", port, "--config", env.configFile], env.root, {
        EOA_HTTP_TOKEN: TOKEN,
      });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`HTTP_PORT_IN_USE: port ${port} is in use on 127.0.0.1`);
      expect(r.stderr).not.toContain("listening");
      expect(r.stdout).toBe("");
    }
  });

  it("serve keeps the night going with no client attached", async () => {
    const env = await createEnvironment();
    cleanups.push(() => env.close());
    const clockFile = join(env.root, "clock.txt");
    await writeFile(clockFile, env.clock.now().toISOString());
    const child = spawn(process.execPath, [CLI, "serve", "--port", "0", "--config", env.configFile], {
      cwd: env.root,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: env.root,
        EOA_HTTP_TOKEN: TOKEN,
        EOA_FAKE_CLOCK_FILE: clockFile,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    cleanups.push(async () => {
      if (child.exitCode === null) child.kill("SIGKILL");
    });
    const url = await new Promise<string>((resolve, reject) => {
      let stderr = "";
      child.stderr.on("data", (c: Buffer) => {
        stderr += c.toString();
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)/.exec(stderr);
        if (m) resolve(m[1]!);
      });
      child.once("exit", () => reject(new Error(`exited before listening: ${stderr}`)));
    });
    const client = await httpClient(url);
    const call = async (name: string, args: Record<string, unknown>) => {
      const r = (await client.callTool({ name, arguments: args })) as {
        isError?: boolean;
        structuredContent: Record<string, unknown>;
      };
      expect(r.isError, JSON.stringify(r)).toBeFalsy();
      return r.structuredContent;
    };
    const confirm = await call("start_session", { tasks: ["GH-101"] });
    await call("start_session", { session_id: confirm.session_id, approve: true });
    await call("assign_task", { task_id: "GH-101", agent: "dev-agent-1" });
    await client.close(); // the chat window closes; the night goes on

    env.aimaestro.inject({
      from: "dev-agent-1",
      to: "eoa-orchestrator",
      subject: "[ACK] GH-101 - RECEIVED",
      content: { type: "message", message: "[ACK] GH-101 - RECEIVED" },
    });
    env.clock.advance(env.config.limits.poll_interval_seconds / 60);
    await writeFile(clockFile, env.clock.now().toISOString());
    const deadline = Date.now() + 30_000;
    for (;;) {
      const s = await readStateDir(env.stateDir);
      const read = env.aimaestro.messagesFor("eoa-orchestrator").every((m) => m.status === "read");
      if (s.tasks["GH-101"]?.acked_at && read) break;
      if (Date.now() > deadline) throw new Error("the daemon's cycle never applied the ack");
      await new Promise((r) => setTimeout(r, 25));
    }
    child.kill("SIGTERM");
  });

  it("shares one state directory with a stdio server process: each sees the other's changes", async () => {
    const { env, http } = await served();
    const web = await httpClient(http.url);
    const stdio = new StdioClientTransport({
      command: process.execPath,
      args: [CLI, "--config", env.configFile],
      cwd: env.root,
      env: { PATH: process.env.PATH ?? "", HOME: env.root },
      stderr: "pipe",
    });
    const local = new Client({ name: "eoa-stdio", version: "1.0.0" });
    await local.connect(stdio);
    cleanups.push(() => local.close());

    expect(JSON.parse(textOf(await local.readResource({ uri: "eoa://session" })))).toMatchObject({
      session: null,
    });

    // HTTP → stdio.
    const started = (await web.callTool({
      name: "start_session",
      arguments: { tasks: ["GH-101"] },
    })) as unknown as {
      isError?: boolean;
      structuredContent: { session_id: string; status: string };
    };
    expect(started.isError).toBeFalsy();
    const sid = started.structuredContent.session_id;
    const seen = JSON.parse(textOf(await local.readResource({ uri: "eoa://session" })));
    expect(seen.session).toMatchObject({ id: sid, status: "awaiting_approval" });

    // stdio → HTTP.
    const approved = (await local.callTool({
      name: "start_session",
      arguments: { session_id: sid, approve: true },
    })) as unknown as { isError?: boolean; structuredContent: { status: string } };
    expect(approved.isError).toBeFalsy();
    expect(approved.structuredContent.status).toBe("running");
    const back = JSON.parse(textOf(await web.readResource({ uri: "eoa://session" })));
    expect(back.session).toMatchObject({ id: sid, status: "running" });
    expect((await env.rt.store.read()).sessions).toHaveLength(1);
  });
});
