import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createEnvironment, type NightEnvironment } from "../src/sim/environment.js";
import { emptyState } from "../src/state/schema.js";
import { tools } from "../src/tools/index.js";
import { assertBuilt, CLI, runCli } from "./fixtures/cli.js";

/**
 * The built CLI (`dist/cli.js`, what `eoa-mcp` runs) over real stdio, against the loopback
 * stand-ins. `npm test` builds first (pretest); run `npm run build` before running this file alone.
 */

beforeAll(assertBuilt);

let env: NightEnvironment;
beforeEach(async () => {
  env = await createEnvironment();
});
afterEach(async () => {
  await env.close();
});

/** Runs the CLI to completion with stdin closed. */
const run = (args: string[], extraEnv: Record<string, string> = {}) => runCli(args, env.root, extraEnv);

/** The built CLI serving stdio on the environment's config, with its stderr collected. */
function spawnServer() {
  const child = spawn(process.execPath, [CLI, "--config", env.configFile], {
    cwd: env.root,
    env: { PATH: process.env.PATH ?? "", HOME: env.root },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stderr = "";
  const serving = new Promise<void>((resolve) =>
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
      if (stderr.includes("serving MCP on stdio")) resolve();
    }),
  );
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  return { child, serving, exited, stderr: () => stderr };
}

describe("eoa-mcp over stdio", () => {
  it("serves tools and resources to an SDK client and exits cleanly when stdin closes", async () => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [CLI, "--config", env.configFile],
      cwd: env.root,
      stderr: "pipe",
    });
    let stderr = "";
    transport.stderr?.on("data", (c: Buffer) => (stderr += c.toString()));
    const client = new Client({ name: "eoa-e2e", version: "1.0.0" });
    // A line on stdout that is not a JSON-RPC message would surface here.
    const protocolErrors: Error[] = [];
    client.onerror = (err) => protocolErrors.push(err);
    await client.connect(transport);
    // The transport keeps the child private; the test needs it to see how the process ended.
    const child = (transport as unknown as { _process: ChildProcess })._process;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once("exit", (code, signal) => resolve({ code, signal })),
    );

    try {
      expect(client.getServerVersion()?.name).toBe("eoa-mcp");
      const listed = (await client.listTools()).tools;
      expect(listed.map((t) => t.name)).toEqual(tools.map((t) => t.name));
      expect(listed.every((t) => t.annotations && t.title)).toBe(true);

      const resources = (await client.listResources()).resources.map((r) => r.uri);
      expect(resources).toEqual(expect.arrayContaining(["eoa://session", "eoa://roster", "eoa://config"]));
      const templates = (await client.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate);
      expect(templates).toContain("eoa://tasks/{task_id}");

      const session = await client.readResource({ uri: "eoa://session" });
      expect(JSON.parse((session.contents[0] as { text: string }).text)).toMatchObject({ session: null });

      const preflight = (await client.callTool({ name: "preflight", arguments: {} })) as unknown as {
        isError?: boolean;
        structuredContent: { items: Array<{ id: string; status: string }> };
      };
      expect(preflight.isError).toBeFalsy();
      const items = Object.fromEntries(preflight.structuredContent.items.map((i) => [i.id, i.status]));
      expect(items).toMatchObject({ aimaestro_running: "pass", agents_online: "pass", ci_workflows: "pass" });

      // A change made by this process is visible to the in-process runtime sharing the state dir.
      const started = (await client.callTool({
        name: "start_session",
        arguments: { tasks: ["GH-101"] },
      })) as {
        isError?: boolean;
      };
      expect(started.isError).toBeFalsy();
      expect((await env.rt.store.read()).sessions).toHaveLength(1);
    } finally {
      await client.close();
    }
    // Closing the client ends stdin; the server must exit by itself, not by the transport's SIGTERM.
    expect(await exited).toEqual({ code: 0, signal: null });
    expect(protocolErrors).toEqual([]);
    expect(stderr).toContain("serving MCP on stdio");
    expect(stderr).toContain("stdin closed");
    expect(stderr).not.toContain("SIGTERM");
  });

  it("one tool call is one transaction: assign_task, check_messages and escalate each take the state's lock once (issue 10)", async () => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [CLI, "--config", env.configFile],
      cwd: env.root,
      env: { PATH: process.env.PATH ?? "", HOME: env.root, EOA_LOG_LEVEL: "debug" },
      stderr: "pipe",
    });
    let stderr = "";
    transport.stderr?.on("data", (c: Buffer) => (stderr += c.toString()));
    const client = new Client({ name: "eoa-e2e", version: "1.0.0" });
    await client.connect(transport);
    const call = async (name: string, args: Record<string, unknown>) => {
      const r = await client.callTool({ name, arguments: args });
      expect(r.isError, JSON.stringify(r.content)).toBeFalsy();
      return r.structuredContent as Record<string, unknown>;
    };
    // The log line of each call, counted by the call itself (the night's own cycles are not calls).
    const costs = (tool: string) =>
      [...stderr.matchAll(new RegExp(`tool ${tool}: (\\d+) transaction`, "g"))].map((m) => Number(m[1]));
    try {
      const proposed = await call("start_session", { tasks: ["GH-101", "GH-102"] });
      await call("start_session", { session_id: proposed.session_id, approve: true });
      await call("assign_task", { task_id: "GH-101", agent: "dev-agent-1" });
      const keyed = await call("assign_task", {
        task_id: "GH-102",
        agent: "dev-agent-2",
        idempotency_key: "k-1",
      });
      // The replay answers from the record, with no transaction of its own.
      expect(
        await call("assign_task", { task_id: "GH-102", agent: "dev-agent-2", idempotency_key: "k-1" }),
      ).toEqual(keyed);
      env.aimaestro.inject({
        from: "dev-agent-1",
        to: "eoa-orchestrator",
        subject: "[ACK] GH-101 - RECEIVED",
        content: { type: "ack", message: "[ACK] GH-101 - RECEIVED", context: { task_id: "GH-101" } },
      });
      const cycle = await call("check_messages", {});
      expect((cycle.read as unknown[]).length).toBe(1);
      await call("escalate", { category: "security", task_id: "GH-101", issue: "a key in the logs" });
      await expect.poll(() => costs("escalate").length).toBe(1);
      expect(costs("assign_task")).toEqual([1, 1]);
      expect(costs("check_messages")).toEqual([1]);
      expect(costs("escalate")).toEqual([1]);
      // And what the calls made is on record when the process has gone: every effect done.
      const child = (transport as unknown as { _process: ChildProcess })._process;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      await client.close();
      await exited;
      const { readStateDir } = await import("../src/state/store.js");
      const state = await readStateDir(env.stateDir);
      expect(state.outbox.filter((x) => x.status !== "done")).toEqual([]);
      expect(state.idempotency["assign_task:k-1"]).toMatchObject({ status: "done" });
    } finally {
      await client.close().catch(() => undefined);
    }
  });

  it("a tool's internal failure is logged with a stack that names the TypeScript sources, not the bundle's chunks", async () => {
    // A damaged state: an outbox entry that is not an object makes check_messages fail inside.
    const stateDir = join(env.root, "damaged-state");
    await mkdir(stateDir);
    await writeFile(join(stateDir, "state.json"), JSON.stringify({ ...emptyState(), outbox: [null] }));
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [CLI, "--config", env.configFile, "--state-dir", stateDir],
      cwd: env.root,
      env: { PATH: process.env.PATH ?? "", HOME: env.root },
      stderr: "pipe",
    });
    let stderr = "";
    transport.stderr?.on("data", (c: Buffer) => (stderr += c.toString()));
    const client = new Client({ name: "eoa-e2e", version: "1.0.0" });
    await client.connect(transport);
    try {
      const r = await client.callTool({ name: "check_messages", arguments: {} });
      expect(r.isError).toBe(true);
      expect(JSON.stringify(r.content)).toContain("INTERNAL");
      await expect.poll(() => stderr).toContain("tool failed");
      const logged = stderr.split("\n").find((l) => l.includes("tool failed"))!;
      expect(logged).toMatch(/ \(\/\S+\/src\/\S+\.ts:\d+:\d+\)/);
      expect(logged).not.toMatch(/dist\/\S+\.js/);
    } finally {
      await client.close();
    }
  });

  it("exits cleanly on SIGTERM while serving", async () => {
    const server = spawnServer();
    let stdout = "";
    server.child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    try {
      await server.serving;
      server.child.kill("SIGTERM");
      expect(await server.exited).toEqual({ code: 0, signal: null });
    } finally {
      server.child.kill("SIGKILL");
    }
    expect(server.stderr()).toContain('shutting down {"why":"SIGTERM"}');
    expect(stdout).toBe("");
  });

  it("a client that closes its end of stdout ends the session quietly, not with a crash", async () => {
    const { child, exited, stderr } = spawnServer();
    try {
      child.stdout.destroy(); // the reading end is gone: the answer below cannot be delivered
      child.stdin.write(
        `${JSON.stringify({
          jsonrpc: "2.0",
          id: 1,
          method: "initialize",
          params: {
            protocolVersion: "2025-06-18",
            capabilities: {},
            clientInfo: { name: "gone", version: "1" },
          },
        })}\n`,
      );
      expect(await exited).toEqual({ code: 0, signal: null });
    } finally {
      child.kill("SIGKILL");
    }
    expect(stderr()).toContain('shutting down {"why":"stdout: EPIPE"}');
    expect(stderr()).not.toMatch(/Unhandled 'error' event|at \S+ \(/);
  });

  it("--help prints the usage on stdout and exits 0", async () => {
    const r = await run(["--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Usage:");
    expect(r.stdout).toContain("eoa-mcp preflight");
    expect(r.stdout).toContain("--config FILE");
  });

  it("an unknown command or flag exits 2 with the usage on stderr and nothing on stdout", async () => {
    const [command, flag] = await Promise.all([run(["launch-rockets"]), run(["--no-such-flag"])]);
    expect(command.code).toBe(2);
    expect(command.stderr).toContain("unknown command: launch-rockets");
    expect(command.stderr).toContain("Usage:");
    expect(command.stdout).toBe("");
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/^unknown option: --no-such-flag\n\neoa-mcp /);
    expect(flag.stderr).toContain("Usage:");
    // Not Node's hint to pass it as `-- "--no-such-flag` (with its quote left open).
    expect(flag.stderr).not.toContain("positional argument");
    expect(flag.stdout).toBe("");
  });

  it("preflight prints the checklist and writes nothing, not even a state directory", async () => {
    const stateDir = join(env.root, "fresh-state");
    const r = await run(["preflight", "--config", env.configFile, "--state-dir", stateDir]);
    expect(r.stdout).toMatch(/^Prerequisites Checklist: \d+ pass/);
    expect(r.stdout).toContain("latest run on main: CI success");
    expect(existsSync(stateDir)).toBe(false);
  });

  it("preflight names a GitHub host that does not resolve as such, not as a 500", async () => {
    const r = await run(["preflight", "--config", env.configFile, "--github-api-url", "http://gh.invalid"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(
      "GitHub could not be reached at http://gh.invalid while trying to read the authenticated user: " +
        "getaddrinfo ENOTFOUND gh.invalid (the host name does not resolve)",
    );
    expect(r.stdout).not.toMatch(/\(500/);
  });

  it("report with no session says what to do on the command line, and creates nothing", async () => {
    const stateDir = join(env.root, "no-night-yet");
    const r = await run(["report", "--config", env.configFile, "--state-dir", stateDir]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(`SESSION_NOT_FOUND: there is no session to report on in ${stateDir}`);
    expect(r.stderr).toContain("--state-dir DIR (EOA_STATE_DIR)");
    expect(r.stderr).not.toContain("start_session");
    expect(existsSync(stateDir)).toBe(false);

    // A state directory with no session yet (the server ran, nobody handed over): the same answer.
    const served = await run(["report", "--config", env.configFile]);
    expect(served.code).toBe(2);
    expect(served.stderr).toContain(`there is no session to report on in ${env.stateDir}`);
    expect(served.stderr).not.toContain("start_session");
  });

  it("a bad configuration exits 2 naming the key, writing nothing to stdout or the state dir", async () => {
    const stateDir = join(env.root, "never-created");
    const bad = join(env.root, "bad.config.json");
    await writeFile(bad, JSON.stringify({ stateDir, limits: { max_fix_rounds: 0 } }));
    const [fromFile, fromEnv, missing] = await Promise.all([
      run(["--config", bad]),
      run([], { EOA_PROJECT: "abc", EOA_STATE_DIR: stateDir }),
      run(["--config", join(env.root, "absent.json")]),
    ]);
    for (const r of [fromFile, fromEnv, missing]) {
      expect(r.code).toBe(2);
      expect(r.stdout).toBe("");
    }
    expect(fromFile.stderr).toContain("limits.max_fix_rounds");
    expect(fromFile.stderr).toContain(bad);
    expect(fromEnv.stderr).toContain("github.project");
    expect(fromEnv.stderr).toContain("(from environment variable EOA_PROJECT)");
    expect(missing.stderr).toContain("cannot read config file");
    expect(existsSync(stateDir)).toBe(false);
    expect(existsSync(join(env.root, ".eoa"))).toBe(false);
  });
});
