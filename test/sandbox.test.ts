import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, CLI, runProcess, type Finished } from "./fixtures/cli.js";
import { INSPECTOR_DIR } from "./fixtures/inspector.js";
import { readStateDir } from "../src/state/store.js";

/**
 * Issue 15, item 5: `eoa-mcp sandbox` (the built CLI) serves a night that a real third-party
 * client, the MCP Inspector CLI, drives through eoa-mcp servers started with the environment it
 * prints; Ctrl-C removes everything it made. Also: an interrupted `simulate` and a crash leave no
 * temporary directory behind. `npm test` builds first; run `npm run build` before this file alone.
 */

const SLOW = 180_000;

let scratch: string;
let home: string;
beforeAll(async () => {
  assertBuilt();
  scratch = await mkdtemp(join(tmpdir(), "eoa-sandbox-test-"));
  home = await mkdtemp(join(tmpdir(), "eoa-sandbox-home-"));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
  await rm(home, { recursive: true, force: true });
});

/** A long-running CLI command in its own TMPDIR, with its output collected as it comes. */
async function start(args: string[]) {
  const tmp = await mkdtemp(join(scratch, "run-"));
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: tmp,
    env: { PATH: process.env.PATH ?? "", HOME: tmp, TMPDIR: tmp },
  }) as ChildProcessWithoutNullStreams;
  const seen = { stdout: "", stderr: "" };
  child.stdout.on("data", (c: Buffer) => (seen.stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (seen.stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  /** Resolves once stdout holds `text`; fails if the process ends first. */
  const printed = (text: string) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (seen.stdout.includes(text)) resolve();
      };
      child.stdout.on("data", check);
      check();
      void exited.then((code) =>
        reject(new Error(`exited ${code} before printing ${text}\n${seen.stdout}\n${seen.stderr}`)),
      );
    });
  return { child, tmp, seen, exited, printed };
}

function json<T>(r: Finished): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`the Inspector did not print JSON.\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
}

const inspectorEnv = () => ({
  PATH: process.env.PATH ?? "",
  HOME: home,
  NO_UPDATE_NOTIFIER: "1",
  npm_config_update_notifier: "false",
});

interface ToolCallResult {
  isError?: boolean;
  structuredContent: Record<string, unknown>;
}

describe("eoa-mcp sandbox", () => {
  it(
    "prints the environment and the client lines, serves a night the Inspector drives, and cleans up on Ctrl-C",
    async () => {
      const sandbox = await start(["sandbox", "--speed", "60"]);
      try {
        await sandbox.printed("Ctrl-C stops the sandbox");
        const out = sandbox.seen.stdout;
        const env = Object.fromEntries(
          [...out.matchAll(/^export (\w+)=(\S+)$/gm)].map((m) => [m[1]!, m[2]!]),
        );
        expect(Object.keys(env)).toEqual(["EOA_CONFIG", "EOA_FAKE_CLOCK_FILE"]);
        for (const path of Object.values(env)) expect(existsSync(path), path).toBe(true);
        const server = `${process.execPath} ${CLI}`;
        expect(out).toContain(
          `claude mcp add --transport stdio --env EOA_CONFIG=${env.EOA_CONFIG} --env EOA_FAKE_CLOCK_FILE=${env.EOA_FAKE_CLOCK_FILE} eoa-sandbox -- ${server}`,
        );

        // The printed Inspector line, run as printed (offline: npx must not look for a newer one),
        // where the tests' Inspector is installed.
        const line = /^ {2}(npx @modelcontextprotocol\/inspector --cli .*)$/m.exec(out)?.[1];
        expect(line).toBeDefined();
        const pre = await runProcess("sh", ["-c", line!.replace(/^npx /, "npx --no-install ")], {
          cwd: INSPECTOR_DIR,
          env: inspectorEnv(),
        });
        expect(pre.code, pre.stderr).toBe(0);
        const items = json<ToolCallResult>(pre).structuredContent.items as Array<{
          id: string;
          status: string;
        }>;
        for (const id of ["aimaestro_running", "agents_online", "roster_up_to_date", "roster_names_exact"])
          expect(items.find((i) => i.id === id)?.status, id).toBe("pass");

        /** `tools/call` through the Inspector, against a server started with the printed environment. */
        const call = async (tool: string, args: Record<string, unknown>) => {
          const r = await runProcess(
            "npx",
            [
              "--no-install",
              "@modelcontextprotocol/inspector",
              "--cli",
              ...Object.entries(env).flatMap(([k, v]) => ["-e", `${k}=${v}`]),
              "--connect-timeout",
              "50000",
              "--method",
              "tools/call",
              "--tool-name",
              tool,
              "--tool-args-json",
              JSON.stringify(args),
              "--",
              process.execPath,
              CLI,
            ],
            { cwd: INSPECTOR_DIR, env: inspectorEnv() },
          );
          expect(r.code, `${tool}: ${r.stdout}\n${r.stderr}`).toBe(0);
          return json<ToolCallResult>(r).structuredContent;
        };

        const confirm = await call("start_session", { tasks: ["GH-101", "GH-102", "GH-103"] });
        expect(confirm).toMatchObject({ status: "awaiting_approval" });
        const started = await call("start_session", {
          session_id: confirm.session_id,
          approve: true,
          directive: "Escalate only for security issues",
        });
        expect(started).toMatchObject({ status: "running" });
        const assigned = await call("assign_task", { task_id: "GH-101", agent: "dev-agent-1" });
        expect(assigned).toMatchObject({ status: "dispatched", agent: "dev-agent-1" });

        // The scripted agent acknowledges on the sandbox's clock; each poll cycle reads what has come.
        type Read = { from: string; kind: string; task_id: string | null; outcome: string };
        let acked: Read | undefined;
        for (let polls = 0; polls < 20 && !acked; polls++) {
          const cycle = await call("check_messages", {});
          acked = (cycle.read as Read[]).find((m) => m.kind === "ack" && m.task_id === "GH-101");
        }
        // Every Inspector call starts a server, whose own first poll cycle may read the ack before
        // the call does: then the call reports it as processed before. Either way it is applied once.
        expect(acked).toEqual({
          id: expect.any(String),
          from: "dev-agent-1",
          subject: expect.any(String),
          kind: "ack",
          task_id: "GH-101",
          outcome: expect.stringMatching(/^(applied|already-processed)$/),
          note: expect.any(String),
        });
        const stateDir = /^ {2}state directory +(\S+)$/m.exec(out)?.[1];
        const state = await readStateDir(stateDir!);
        expect(state.tasks["GH-101"]).toMatchObject({ assignee: "dev-agent-1" });
        expect(state.tasks["GH-101"]!.acked_at).toEqual(expect.any(String));
      } finally {
        sandbox.child.kill("SIGINT");
      }
      expect(await sandbox.exited, sandbox.seen.stderr).toBe(0);
      expect(sandbox.seen.stderr).toContain("SIGINT: stopped");
      // Its feed shows the night's messages as the hub carried them.
      expect(sandbox.seen.stderr).toMatch(
        /eoa-orchestrator → dev-agent-1: AUTONOMOUS: User Authentication GH-101/,
      );
      expect(sandbox.seen.stderr).toMatch(/dev-agent-1 → eoa-orchestrator: \[ACK\] GH-101 - RECEIVED/);
      expect(await readdir(sandbox.tmp)).toEqual([]);
    },
    SLOW,
  );

  it(
    "SIGTERM stops it the same way",
    async () => {
      const sandbox = await start(["sandbox"]);
      await sandbox.printed("Ctrl-C stops the sandbox");
      expect(await readdir(sandbox.tmp)).toHaveLength(1);
      sandbox.child.kill("SIGTERM");
      expect(await sandbox.exited, sandbox.seen.stderr).toBe(0);
      expect(sandbox.seen.stderr).toContain("SIGTERM: stopped");
      expect(await readdir(sandbox.tmp)).toEqual([]);
    },
    SLOW,
  );

  it("refuses a speed out of range, and prints its usage on --help", async () => {
    const bad = await runProcess(process.execPath, [CLI, "sandbox", "--speed", "fast"], {
      cwd: scratch,
      env: { PATH: process.env.PATH ?? "", HOME: scratch },
    });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--speed must be a number");
    expect(bad.stdout).toBe("");
    const help = await runProcess(process.execPath, [CLI, "sandbox", "--help"], {
      cwd: scratch,
      env: { PATH: process.env.PATH ?? "", HOME: scratch },
    });
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: eoa-mcp sandbox [--speed N]");
  });
});

describe("temporary directories of an interrupted or crashed rehearsal", () => {
  it(
    "an interrupted simulate removes its directory",
    async () => {
      const sim = await start(["simulate"]);
      await sim.printed("preflight:");
      sim.child.kill("SIGINT");
      expect(await sim.exited, sim.seen.stderr).toBe(130);
      expect(await readdir(sim.tmp)).toEqual([]);
    },
    SLOW,
  );

  it(
    "a crash of the sandbox (an uncaught error) removes its directory and exits 1",
    async () => {
      const sandbox = await start(["sandbox"]);
      await sandbox.printed("Ctrl-C stops the sandbox");
      const clockFile = /^export EOA_FAKE_CLOCK_FILE=(\S+)$/m.exec(sandbox.seen.stdout)![1]!;
      // The clock is written to `<file>.tmp` and renamed: a directory in its way makes the next write throw.
      await mkdir(`${clockFile}.tmp`);
      expect(await sandbox.exited).toBe(1);
      expect(sandbox.seen.stderr).toMatch(/crashed: Error: EISDIR/);
      expect(await readdir(sandbox.tmp)).toEqual([]);
    },
    SLOW,
  );
});
