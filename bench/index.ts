/**
 * `npm run bench`: figures, not verdicts. Prints a table of
 *  - tool-call latency (p50, p95) for assign_task, check_messages and a resource read with 100,
 *    1,000 and 10,000 tasks and 50 agents in state (AI Maestro stand-in on loopback);
 *  - start-up time to the first `initialize` answer, against a bare SDK server;
 *  - review set-up from the cached mirror against a fresh `git clone` of a 5,000-commit repository;
 *  - peak memory at 10,000 tasks.
 * Targets are printed beside the figures; nothing fails.
 */
import { execFile, spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { GitMirror } from "../src/clients/git.js";
import { createEnvironment, type NightEnvironment } from "../src/sim/environment.js";
import type { TaskRecord } from "../src/state/schema.js";

const run = promisify(execFile);
const rows: Array<[string, string, string]> = [];
const report = (what: string, figure: string, target = "") => {
  rows.push([what, figure, target]);
  console.error(`  ${what}: ${figure}${target ? `  (target ${target})` : ""}`);
};

function pct(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}
const ms = (v: number) => `${v.toFixed(2)} ms`;

async function timeIt(n: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    out.push(performance.now() - t);
  }
  return out;
}

/** A running session with `tasks` tasks (the bench's own ones queued for dispatch) and 50 agents. */
async function seeded(tasks: number): Promise<NightEnvironment> {
  const agents = Array.from({ length: 50 }, (_, i) => ({
    id: `agent-${i}`,
    capabilities: ["python"],
    max_concurrent_tasks: 50,
    backup: [`agent-${(i + 1) % 50}`],
  }));
  const env = await createEnvironment({ agents, config: { limits: { max_concurrent_tasks: 50 } } });
  const now = env.clock.now().toISOString();
  await env.rt.store.transact((draft) => {
    const ids: string[] = [];
    for (let i = 0; i < tasks; i++) {
      const id = `T-${i}`;
      ids.push(id);
      draft.tasks[id] = task(
        id,
        now,
        i < 200 ? "in-progress" : "todo",
        i < 200 ? agents[i % 50]!.id : undefined,
      );
    }
    draft.sessions.push({
      id: "2025-12-30-session-01",
      status: "running",
      escalation_policy: { immediate: ["security"], source: "bench" },
      task_ids: ids,
      created_at: now,
      started_at: now,
    });
    draft.current_session_id = "2025-12-30-session-01";
  });
  // As a state that grew over a night would be: folded into the document, not one huge journal line.
  await env.rt.store.compact();
  return env;
}

function task(id: string, now: string, status: TaskRecord["status"], assignee?: string): TaskRecord {
  return {
    task_id: id,
    session_id: "2025-12-30-session-01",
    title: `Task ${id}`,
    priority: "normal",
    required_capabilities: ["python"],
    depends_on: [],
    instructions: "Implement the thing described in the issue, with tests.",
    completion_criteria: ["it works", "it is tested"],
    test_requirements: ["unit tests"],
    files_in_scope: ["src/**"],
    escalation_rules: {
      on_blocked: "report",
      on_security_concern: "stop",
      on_architecture_question: "decide",
    },
    status,
    ...(assignee ? { assignee, assigned_at: now, acked_at: now } : {}),
    assignment_epoch: assignee ? 1 : 0,
    previous_assignees: [],
    fix_rounds: 0,
    ci_polls: 0,
    ci_failures: 0,
    created_at: now,
    updated_at: now,
    history: [{ at: now, event: "created" }],
  };
}

async function latency(): Promise<void> {
  console.error("tool-call latency (in-memory MCP client, stand-ins on loopback)");
  const sizes = process.argv[3] ? [Number(process.argv[3])] : [100, 1_000, 10_000];
  for (const n of sizes) {
    const env = await seeded(n);
    const { client } = await env.connect();
    const iterations = n >= 10_000 ? 20 : 60;
    const assign = await timeIt(iterations, (i) =>
      client.callTool({
        name: "assign_task",
        arguments: { task_id: `T-${n - 1 - i}`, agent: `agent-${i % 50}` },
      }),
    );
    const cycle = await timeIt(iterations, async (i) => {
      env.aimaestro.inject({
        from: "agent-1",
        to: "eoa-orchestrator",
        subject: `[PROGRESS] T-1`,
        content: { type: "progress", message: `[PROGRESS] T-1 ${i % 100}%` },
      });
      await client.callTool({ name: "check_messages", arguments: {} });
    });
    const read = await timeIt(iterations * 3, () => client.readResource({ uri: "eoa://tasks" }));
    report(
      `assign_task @ ${n} tasks`,
      `p50 ${ms(pct(assign, 50))}, p95 ${ms(pct(assign, 95))}`,
      n === 1_000 ? "p50 ≤ 20 ms" : "",
    );
    report(`check_messages @ ${n} tasks`, `p50 ${ms(pct(cycle, 50))}, p95 ${ms(pct(cycle, 95))}`);
    report(
      `read eoa://tasks @ ${n} tasks`,
      `p50 ${ms(pct(read, 50))}, p95 ${ms(pct(read, 95))}`,
      n === 1_000 ? "p50 ≤ 5 ms" : "",
    );
    if (n === 10_000) await memory(env);
    await env.close();
  }
}

/** Peak resident memory of a real server process (spawned over stdio) working a 10,000-task state. */
async function memory(env: NightEnvironment): Promise<void> {
  const cli = new URL("../dist/cli.js", import.meta.url).pathname;
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [cli, "--config", env.configFile],
    env: { PATH: process.env.PATH ?? "", HOME: env.root, EOA_LOG_LEVEL: "error" },
    stderr: "ignore",
  });
  const client = new Client({ name: "bench", version: "1" });
  await client.connect(transport);
  for (let i = 0; i < 10; i++) {
    await client.callTool({
      name: "assign_task",
      arguments: { task_id: `T-${5000 + i}`, agent: `agent-${i}` },
    });
    await client.callTool({ name: "check_messages", arguments: {} });
    await client.readResource({ uri: "eoa://tasks" });
  }
  const pid = transport.pid;
  const status = pid ? await readFile(`/proc/${pid}/status`, "utf8").catch(() => "") : "";
  const peak = /VmHWM:\s+(\d+) kB/.exec(status)?.[1];
  await client.close();
  report(
    "server peak memory @ 10,000 tasks (VmHWM of the spawned server)",
    peak ? `${(Number(peak) / 1024).toFixed(0)} MB` : "not measurable here",
    "< 150 MB",
  );
}

async function startup(): Promise<void> {
  console.error("start-up to the first initialize answer (spawned over stdio)");
  const dir = await mkdtemp(join(tmpdir(), "eoa-bench-start-"));
  const bare = join(dir, "bare.mjs");
  await writeFile(
    bare,
    `import { McpServer } from "${new URL("../node_modules/@modelcontextprotocol/sdk/dist/esm/server/mcp.js", import.meta.url).href}";
import { StdioServerTransport } from "${new URL("../node_modules/@modelcontextprotocol/sdk/dist/esm/server/stdio.js", import.meta.url).href}";
const s = new McpServer({ name: "bare", version: "1.0.0" });
await s.connect(new StdioServerTransport());
process.stdin.on("end", () => process.exit(0));`,
  );
  const cli = new URL("../dist/cli.js", import.meta.url).pathname;
  const measure = async (args: string[]) =>
    timeIt(10, async (i) => {
      const transport = new StdioClientTransport({
        command: process.execPath,
        args,
        env: {
          PATH: process.env.PATH ?? "",
          HOME: dir,
          EOA_STATE_DIR: join(dir, `state-${i}`),
          EOA_LOG_LEVEL: "error",
        },
        stderr: "ignore",
      });
      const client = new Client({ name: "bench", version: "1" });
      await client.connect(transport);
      await client.close();
    });
  const baseline = pct(await measure([bare]), 50);
  const ours = pct(await measure([cli]), 50);
  report("start-up, bare SDK server", `p50 ${ms(baseline)}`);
  report("start-up, eoa-mcp", `p50 ${ms(ours)} (${(ours / baseline).toFixed(2)}x)`, "≤ 1.5x");
  await rm(dir, { recursive: true, force: true });
}

async function reviewSetup(): Promise<void> {
  console.error("review set-up: cached mirror vs fresh clone (5,000 commits)");
  const dir = await mkdtemp(join(tmpdir(), "eoa-bench-git-"));
  const bare = join(dir, "remote.git");
  const env = { ...process.env, GIT_TERMINAL_PROMPT: "0" };
  await run("git", ["init", "-q", "--bare", "--initial-branch=main", bare], { env });
  // fast-import writes 5,000 commits in well under a second.
  const lines: string[] = [];
  const commit = (ref: string, n: number, files: string[], from?: string) => {
    lines.push(ref, `mark :${n}`, `committer bench <bench@example.invalid> ${1_700_000_000 + n} +0000`);
    lines.push(`data ${`c${n}`.length}`, `c${n}`);
    if (from) lines.push(`from ${from}`);
    for (const file of files) {
      const content = `${file} at ${n}\n`;
      lines.push(`M 644 inline ${file}`, `data ${Buffer.byteLength(content)}`, content);
    }
  };
  for (let i = 1; i <= 5000; i++) commit("commit refs/heads/main", i, [`src/file${i % 200}.txt`]);
  // Five PRs, each a commit on main changing three files and adding one, as a small PR would.
  const PRS = 5;
  for (let k = 1; k <= PRS; k++) {
    const files = [0, 1, 2].map((j) => `src/file${(k * 3 + j) % 200}.txt`).concat(`src/new-${k}.txt`);
    commit(`commit refs/pull/${k}/head`, 5000 + k, files, ":5000");
  }
  lines.push("");
  const r = spawnSync("git", ["fast-import", "--quiet"], { cwd: bare, input: lines.join("\n"), env });
  if (r.status !== 0) throw new Error(`fast-import failed: ${r.stderr.toString()}`);

  const clones = await timeIt(5, async (i) => {
    // --no-local: a real transport, as a clone from GitHub would be, not hard links to the objects.
    await run("git", ["clone", "-q", "--no-local", bare, join(dir, `clone-${i}`)], { env });
  });
  /** Review set-up as review_pr sees it: fetch the PR head, then a worktree of it ready for commands. */
  const setUp = async (mirror: GitMirror, pr: number) => {
    const started = performance.now();
    let ready = 0;
    const sha = await mirror.fetchPullHead(pr);
    await mirror.withWorktree(pr, sha, async () => {
      ready = performance.now() - started;
    });
    return ready;
  };
  const cold = new GitMirror({ remote: bare, stateDir: join(dir, "state-cold") });
  const warm = new GitMirror({ remote: bare, stateDir: join(dir, "state-warm"), spareWorktree: true });
  const setUps = async (mirror: GitMirror): Promise<number[]> => {
    await mirror.ensureMirror();
    await setUp(mirror, PRS); // a process's first review has no spare yet
    const out: number[] = [];
    for (let i = 0; i < 2 * PRS; i++) out.push(await setUp(mirror, (i % PRS) + 1));
    return out;
  };
  const coldSetups = await setUps(cold);
  const warmSetups = await setUps(warm);
  await warm.close();
  const c = pct(clones, 50);
  const sc = pct(coldSetups, 50);
  const sw = pct(warmSetups, 50);
  report("fresh git clone (5,000 commits)", `p50 ${ms(c)}`);
  report(
    "review set-up, checkout afresh (incremental fetch + worktree add)",
    `p50 ${ms(sc)} (${(sc / c).toFixed(2)} of a clone)`,
  );
  report(
    "review set-up, spare checkout (incremental fetch + worktree move + checkout of the PR's files)",
    `p50 ${ms(sw)} (${(sw / c).toFixed(2)} of a clone)`,
    "≤ 0.25 of a clone",
  );
  await rm(dir, { recursive: true, force: true });
}

async function main(): Promise<void> {
  const only = process.argv[2];
  if (!only || only === "latency") await latency();
  if (!only || only === "startup") await startup();
  if (!only || only === "git") await reviewSetup();
  const w = [Math.max(...rows.map((r) => r[0].length)), Math.max(...rows.map((r) => r[1].length))];
  const line = (a: string, b: string, c: string) => `| ${a.padEnd(w[0]!)} | ${b.padEnd(w[1]!)} | ${c} |`;
  // stdout: the table, for the README's performance section.
  console.log(line("measure", "figure", "target"));
  console.log(`|${"-".repeat(w[0]! + 2)}|${"-".repeat(w[1]! + 2)}|---|`);
  for (const [a, b, c] of rows) console.log(line(a, b, c));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
