import { existsSync } from "node:fs";
import { mkdir, readFile, rename, rm, rmdir, writeFile } from "node:fs/promises";
import { createServer as createHttpServer, request as httpRequest } from "node:http";
import { createServer as createNetServer } from "node:net";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Config } from "../src/config.js";
import { buildRuntime, closeRuntime } from "../src/deps.js";
import type { ReviewOutcome } from "../src/engine/review.js";
import type { Runtime } from "../src/engine/runtime.js";
import { createServer, type EoaServer } from "../src/server.js";
import type { RecordedCall } from "../src/sim/aimaestro-server.js";
import type { EnvironmentOptions, NightEnvironment } from "../src/sim/environment.js";
import type { State, TaskRecord } from "../src/state/schema.js";
import { ASSESS_OK, GREEN, LOGIN, pullFiles } from "./fixtures/pull-requests.js";
import { gitWorktrees, mergeCalls, statusLabels, worktreeEntries } from "./fixtures/review-traces.js";
import { stateBytes } from "./fixtures/state-files.js";
import { callTool, connectedNight, failure, okResult, type ToolError } from "./fixtures/tool-calls.js";

/**
 * Issue 6, part 3: faults of the real parts. Each scenario drives the real tools over an in-memory
 * MCP client against the loopback stand-ins (their fault controls), a real git remote and a real
 * state file, and checks four things: a clear error (stable code, a next step) or a clear warning
 * in the result; retries where retrying is right, counted on the stand-in; state left consistent;
 * and the work picked up again once the part is back. No assertion depends on wall-clock time.
 *
 * Retry budgets are those of `buildRuntime(..., { fast: true })`, which the environment uses:
 * AI Maestro 2 retries (3 attempts), GitHub 1 retry (2 attempts).
 */

const ORCH = "eoa-orchestrator";
const USER = "user-notification-channel";
const AIM_ATTEMPTS = 3;
const GH_ATTEMPTS = 2;
/** The stand-in's primary rate limit resets an hour after its (fake) clock's now, 2025-12-30T22:00Z. */
const RESET_AT = "2025-12-30T23:00:00.000Z";
const REPO_PATH = "/repos/acme/webapp";

interface AssignOut {
  status: "dispatched" | "queued";
  task_id: string;
  agent: string | null;
  message_id: string | null;
  reason: string | null;
  warnings: string[];
}

interface CycleOut {
  cycle: number | null;
  read: Array<{ id: string; kind: string; task_id: string | null; outcome: string }>;
  changes: string[];
  actions_due: Array<{ tool: string; task_id: string | null; why: string }>;
  warnings: string[];
}

interface EscalateOut {
  escalation: { id: string; status: string; level: string; delivery: { status: string; attempts: number } };
  delivered: boolean;
  delivery_error: string | null;
}

// ---- one night per test: the environment, and any extra runtimes wired to the same surroundings ----

let env: NightEnvironment | undefined;
let client: Client;
const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  await env?.close();
  env = undefined;
});

async function setup(opts: EnvironmentOptions = {}): Promise<NightEnvironment> {
  ({ env, client } = await connectedNight(opts));
  cleanups.push(() => client.close());
  return env;
}

function e(): NightEnvironment {
  if (!env) throw new Error("call setup() first");
  return env;
}

/**
 * A second eoa-mcp runtime (and a client connected to it) on the same state directory and stand-ins,
 * built by `buildRuntime` as a real start would, from the loaded config with `change` applied: for
 * settings known only once the stand-ins run (a proxy in front of one), or, with `fast: false`, the
 * production retry and throttling settings instead of the environment's fast ones.
 */
async function rewire(
  change: (config: Config) => Config,
  opts: { fast?: boolean } = {},
): Promise<{ rt: Runtime; client: Client }> {
  const n = e();
  const rt = await buildRuntime(change(structuredClone(n.config)), {
    clock: n.clock,
    logSinks: n.logSinks,
    logStderr: false,
    fast: opts.fast ?? true,
  });
  const server: EoaServer = createServer(rt, { logSinks: n.logSinks, externalPollMs: 50 });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  const c = new Client({ name: "eoa-faults", version: "1.0.0" });
  await server.server.connect(serverSide);
  await c.connect(clientSide);
  cleanups.push(async () => {
    await c.close();
    await server.close();
    await closeRuntime(rt);
  });
  return { rt, client: c };
}

/** A refusal in the shape every tool uses: a stable code, a message, and a next step in both forms. */
async function failsOn(c: Client, name: string, args: Record<string, unknown> = {}): Promise<ToolError> {
  const { error: err, text } = await failure(c, name, args);
  expect(err.code).toMatch(/^[A-Z][A-Z0-9_]+$/);
  expect(err.next_step.length).toBeGreaterThan(10);
  expect(text).toContain(`${err.code}: `);
  expect(text).toContain(`Next step: ${err.next_step}`);
  return err;
}

const ok = <T>(name: string, args: Record<string, unknown> = {}) => okResult<T>(client, name, args);
const fails = (name: string, args: Record<string, unknown> = {}) => failsOn(client, name, args);
/** A poll interval passes, then the orchestrator checks its messages: a counted cycle. */
const cycle = (c: Client = client) => {
  e().clock.advance(e().config.limits.poll_interval_seconds / 60);
  return okResult<CycleOut>(c, "check_messages", {});
};
const assign = (args: Record<string, unknown>, c: Client = client) =>
  okResult<AssignOut>(c, "assign_task", args);

async function startSession(tasks: unknown[], c: Client = client): Promise<string> {
  const confirm = await okResult<{ session_id: string; status: string }>(c, "start_session", { tasks });
  expect(confirm.status).toBe("awaiting_approval");
  const started = await okResult<{ status: string }>(c, "start_session", {
    session_id: confirm.session_id,
    approve: true,
  });
  expect(started.status).toBe("running");
  return confirm.session_id;
}

const inline = (...ids: string[]) => ids.map((id) => ({ task_id: id, title: `Task ${id}` }));

const state = (): Promise<Readonly<State>> => e().rt.store.read();
const task = async (id: string): Promise<Readonly<TaskRecord>> => {
  const t = (await state()).tasks[id];
  if (!t) throw new Error(`no task ${id}`);
  return t;
};
const stateFile = async () => (await stateBytes(e().stateDir, e().rt)).toString("utf8");
const inbox = (name: string) => e().aimaestro.messagesFor(name);
const assignments = (name: string) => inbox(name).filter((m) => m.content.type === "task");

/** The agent's `[ACK]` for a task, as AI Maestro delivers it to the orchestrator. */
function ack(from: string, taskId: string) {
  return e().aimaestro.inject({
    from,
    to: ORCH,
    subject: `[ACK] ${taskId} - RECEIVED`,
    content: { type: "message", message: `[ACK] ${taskId} - RECEIVED` },
  });
}

/** AI Maestro calls recorded from now on (faulted ones included; a hub that is down records none). */
function aimCalls(): () => RecordedCall[] {
  const from = e().aimaestro.calls.length;
  return () => e().aimaestro.calls.slice(from);
}
const sends = (calls: RecordedCall[]) =>
  calls.filter((c) => c.method === "POST" && c.path === "/api/messages").length;
const inboxLists = (calls: RecordedCall[]) =>
  calls.filter((c) => c.method === "GET" && c.path === "/api/messages" && c.query.box === "inbox").length;
const agentLists = (calls: RecordedCall[]) =>
  calls.filter((c) => c.method === "GET" && c.path === "/api/agents").length;

/** GitHub statuses answered on a path (method and exact path) from now on. */
function ghStatuses(method: string, path: string | RegExp): () => number[] {
  const from = e().github.calls.length;
  return () =>
    e()
      .github.calls.slice(from)
      .filter((c) => c.method === method && (typeof path === "string" ? c.path === path : path.test(c.path)))
      .map((c) => c.status);
}

// ---- PRs on the real git remote and the GitHub stand-in (as in review.test.ts) ----

async function openPr(opts: { number?: number; task?: string; files?: Record<string, string> } = {}) {
  const n = e();
  const number = opts.number ?? 147;
  const taskId = opts.task ?? "GH-101";
  const files = opts.files ?? LOGIN;
  const sha = await n.repo.pushPullRequest(number, "feature/auth", files);
  n.github.addPull({
    number,
    title: `${taskId}: User Authentication`,
    body: `Implements ${taskId}.`,
    headSha: sha,
    headRef: "feature/auth",
    files: pullFiles(files),
  });
  n.github.setCheckRuns(sha, GREEN);
  n.aimaestro.inject({
    from: "dev-agent-1",
    to: ORCH,
    subject: `[DONE] ${taskId} PR #${number}`,
    content: { type: "notification", message: `[DONE] ${taskId} PR #${number}` },
  });
  await cycle();
  expect((await task(taskId)).status).toBe("ai-review");
  return sha;
}

/** The seed's night up to a reported PR #147 for GH-101 (GH-102/103 queued behind it). */
async function reviewNight(opts: EnvironmentOptions = {}): Promise<string> {
  await setup(opts);
  await startSession(["GH-101", "GH-102", "GH-103"]);
  await assign({ task_id: "GH-101", agent: "dev-agent-1" });
  for (const id of ["GH-102", "GH-103"]) expect((await assign({ task_id: id })).status).toBe("queued");
  return openPr();
}

const review = (args: Record<string, unknown>, c: Client = client) =>
  okResult<ReviewOutcome>(c, "review_pr", args);

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = createNetServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/**
 * A pass-through proxy in front of the GitHub stand-in that, for the requests `lose` picks, lets
 * GitHub act and then answers the client with a 502 instead of GitHub's reply: the answer is lost,
 * not the request. (The stand-in's own faults replace the request; this is the other half.)
 */
async function lossyProxy(target: string, lose: (method: string, path: string) => boolean): Promise<string> {
  const srv = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", target);
      const upstream = httpRequest(
        url,
        { method: req.method, headers: { ...req.headers, host: url.host } },
        (answer) => {
          const body: Buffer[] = [];
          answer.on("data", (c: Buffer) => body.push(c));
          answer.on("end", () => {
            if (lose(req.method ?? "GET", url.pathname)) {
              res.writeHead(502, { "content-type": "application/json" });
              res.end(JSON.stringify({ message: "Server Error" }));
            } else {
              res.writeHead(answer.statusCode ?? 502, answer.headers);
              res.end(Buffer.concat(body));
            }
          });
        },
      );
      upstream.on("error", () => res.destroy());
      upstream.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  );
  return `http://127.0.0.1:${(srv.address() as { port: number }).port}`;
}

// =====================================================================================================
// AI Maestro
// =====================================================================================================

describe("AI Maestro down", () => {
  it("assign_task: ASSIGNMENT_NOT_SENT naming the hub, the task back in place, sent once the hub is back", async () => {
    await setup();
    await startSession(inline("T-1", "T-2"));
    const first = await assign({ task_id: "T-1" });
    expect(first.status).toBe("dispatched");
    const before = await task("T-2");

    await e().aimaestro.setFault({ down: true });
    const err = await fails("assign_task", { task_id: "T-2", agent: "dev-agent-2" });
    expect(err.code).toBe("ASSIGNMENT_NOT_SENT");
    expect(err.message).toContain(e().aimaestro.url);
    expect(err.message).toMatch(/not reachable/);
    expect(err.next_step).toMatch(/assign_task again/);

    // Nothing half-done: the task is where it was, and the earlier assignment is untouched.
    const t2 = await task("T-2");
    expect(t2).toMatchObject({ status: before.status });
    expect(t2.assignee).toBeUndefined();
    expect(t2.assignment_message_id).toBeUndefined();
    expect(await task("T-1")).toMatchObject({ status: "in-progress", assignee: first.agent });
    const s = await state();
    expect(s.decisions.some((d) => d.action === "revert-assignment" && d.task_id === "T-2")).toBe(true);

    // The failed send is never repeated behind the orchestrator's back, during or after the outage.
    await cycle();
    await e().aimaestro.clearFault();
    const up = await cycle();
    expect(assignments("dev-agent-2")).toHaveLength(0);
    expect(up.actions_due).toContainEqual(expect.objectContaining({ tool: "assign_task", task_id: "T-2" }));

    const again = await assign({ task_id: "T-2", agent: "dev-agent-2" });
    expect(again.status).toBe("dispatched");
    expect(assignments("dev-agent-2")).toHaveLength(1);
    expect(await task("T-2")).toMatchObject({
      status: "in-progress",
      assignee: "dev-agent-2",
      assignment_message_id: again.message_id,
    });
  });

  it("check_messages: warns, counts no heartbeat and no ack deadline, and reads the inbox once the hub is back", async () => {
    await setup();
    await startSession(inline("T-1"));
    await assign({ task_id: "T-1", agent: "dev-agent-1" });
    const threshold = e().config.limits.heartbeat_missed_threshold;

    await e().aimaestro.setFault({ down: true });
    // The agents really are silent in AI Maestro, and dev-agent-1 acknowledged in time: nobody can tell.
    e().aimaestro.setOnline("dev-agent-1", false);
    e().aimaestro.setOnline("dev-agent-2", false);
    const acked = ack("dev-agent-1", "T-1");

    // An outage longer than the heartbeat threshold and than the whole ack window (reminder + half).
    for (let i = 0; i < threshold + 2; i++) {
      e().clock.advance(e().config.limits.ack_timeout_minutes);
      const c = await cycle();
      expect(c.read).toEqual([]);
      expect(c.warnings.join("\n")).toMatch(/inbox not read .*: .*not reachable/);
      expect(c.warnings.join("\n")).toContain(e().aimaestro.url);
      expect(c.warnings.join("\n")).toMatch(/heartbeats not counted this cycle/);
    }
    let s = await state();
    for (const a of Object.values(s.agents)) {
      expect(a.availability, a.id).toBe("active");
      expect(a.missed_heartbeats, a.id).toBe(0);
    }
    expect(s.decisions.filter((d) => d.action === "mark-offline" || d.action === "reassign")).toEqual([]);
    expect(s.escalations).toEqual([]);
    expect(await task("T-1")).toMatchObject({ status: "in-progress", assignee: "dev-agent-1" });
    expect((await task("T-1")).ack_reminder_at).toBeUndefined();

    // Back: the ack sitting in the inbox is read and applied, once; counting restarts from zero.
    await e().aimaestro.clearFault();
    const up = await cycle();
    expect(up.warnings).toEqual([]);
    expect(up.read).toEqual([expect.objectContaining({ kind: "ack", task_id: "T-1", outcome: "applied" })]);
    expect(inbox(ORCH).find((m) => m.id === acked.id)?.status).toBe("read");
    s = await state();
    expect(s.tasks["T-1"]!.acked_at).toBeDefined();
    expect(s.tasks["T-1"]!.assignee).toBe("dev-agent-1");
    expect(s.agents["dev-agent-1"]!.missed_heartbeats).toBe(0); // its message is a sign of life
    expect(s.agents["dev-agent-2"]!.missed_heartbeats).toBe(1); // silent for real: one miss, not six
    expect(s.agents["dev-agent-2"]!.availability).toBe("active");
  });

  it("escalate: kept (delivery failed), retried every cycle, delivered exactly once when the hub is back", async () => {
    await setup();
    await startSession(inline("T-1"));
    await e().aimaestro.setFault({ down: true });
    const r = await ok<EscalateOut>("escalate", {
      category: "security",
      task_id: "T-1",
      issue: "credentials in the build log",
    });
    expect(r.delivered).toBe(false);
    expect(r.delivery_error).toContain(e().aimaestro.url);
    expect(r.escalation).toMatchObject({
      status: "open",
      level: "immediate",
      delivery: { status: "failed" },
    });
    expect(await task("T-1")).toMatchObject({ status: "blocked", parked_by: r.escalation.id });

    // A long outage: more cycles than any fixed retry budget.
    for (let i = 0; i < 10; i++) {
      e().clock.advance(1);
      const c = await cycle();
      expect(c.warnings.join("\n")).toMatch(/side effect .* \(message\) failed, will retry/);
      expect(c.actions_due).toContainEqual(
        expect.objectContaining({
          tool: "check_messages",
          why: expect.stringContaining(`${r.escalation.id} is not delivered yet`),
        }),
      );
    }
    expect((await state()).escalations[0]!.delivery.attempts).toBe(11);
    expect(inbox(USER)).toHaveLength(0);

    await e().aimaestro.clearFault();
    const up = await cycle();
    expect(up.actions_due.some((a) => a.why.includes(r.escalation.id))).toBe(false);
    expect((await state()).escalations[0]).toMatchObject({
      status: "open",
      delivery: { status: "delivered" },
    });
    await cycle();
    expect(inbox(USER)).toHaveLength(1);
    expect(inbox(USER)[0]!.content.context).toMatchObject({
      issue: "credentials in the build log",
      blocking: true,
    });
  });
});

describe("AI Maestro slow (answers after the client's timeout)", () => {
  // Well above a stall of a busy test worker, which could time a request out before the hub saw it.
  const TIMEOUT_MS = 1_000;
  const slow: EnvironmentOptions = { config: { aimaestro: { timeout_ms: TIMEOUT_MS } } };

  it("check_messages: each read is retried, then a warning naming the timeout; nothing counted; read when fast again", async () => {
    await setup(slow);
    expect(e().rt.config.aimaestro.timeout_ms).toBe(TIMEOUT_MS);
    await startSession(inline("T-1"));
    await assign({ task_id: "T-1", agent: "dev-agent-1" });
    e().aimaestro.setOnline("dev-agent-2", false);
    ack("dev-agent-1", "T-1");

    await e().aimaestro.setFault({ delayMs: TIMEOUT_MS * 5 });
    const calls = aimCalls();
    const r = await cycle();
    const warnings = r.warnings.join("\n");
    expect(warnings).toMatch(new RegExp(`inbox not read .*: .*did not answer within ${TIMEOUT_MS} ms`));
    expect(warnings).toMatch(/heartbeats not counted this cycle/);
    expect(warnings).toContain(e().aimaestro.url);
    // Reads are idempotent: a timeout is retried (3 attempts each), then given up.
    expect(inboxLists(calls())).toBe(AIM_ATTEMPTS);
    expect(agentLists(calls())).toBe(AIM_ATTEMPTS);
    expect(r.read).toEqual([]);
    expect((await state()).agents["dev-agent-2"]!.missed_heartbeats).toBe(0);

    await e().aimaestro.clearFault();
    const up = await cycle();
    expect(up.read).toEqual([expect.objectContaining({ kind: "ack", task_id: "T-1", outcome: "applied" })]);
    expect((await task("T-1")).acked_at).toBeDefined();
    expect((await state()).agents["dev-agent-2"]!.missed_heartbeats).toBe(1);
  });

  it("assign_task: ASSIGNMENT_NOT_SENT naming the timeout, nothing sent, and sent once the hub is fast again", async () => {
    await setup(slow);
    await startSession(inline("T-1"));
    // The orchestrator's first send registers it: an idempotent read, which meets the slow hub first.
    await e().aimaestro.setFault({ delayMs: TIMEOUT_MS * 5 });
    const calls = aimCalls();
    const err = await fails("assign_task", { task_id: "T-1" });
    expect(err.code).toBe("ASSIGNMENT_NOT_SENT");
    expect(err.message).toContain(`did not answer within ${TIMEOUT_MS} ms`);
    expect(err.message).toContain(e().aimaestro.url);
    expect(calls().filter((x) => x.query.action === "resolve")).toHaveLength(AIM_ATTEMPTS);
    expect(sends(calls())).toBe(0);
    const t = await task("T-1");
    expect(t.status).toBe("todo");
    expect(t.assignee).toBeUndefined();

    await e().aimaestro.clearFault();
    const a = await assign({ task_id: "T-1" });
    expect(a.status).toBe("dispatched");
    expect(assignments(a.agent!)).toHaveLength(1);
  });

  it("assign_task: a send that times out may have arrived, so it is not undone; the next cycle confirms it without sending twice", async () => {
    await setup(slow);
    await startSession(inline("T-1"));
    await e().rt.orchestratorReady();
    // The hub stores the message but answers after the client gave up.
    await e().aimaestro.setFault({ delayMs: TIMEOUT_MS * 3, count: 1 });
    const calls = aimCalls();
    const a = await assign({ task_id: "T-1", agent: "dev-agent-1" });
    expect(sends(calls())).toBe(1); // a send is not retried after a timeout
    expect(a.status).toBe("dispatched");
    expect(a.warnings.join("\n")).toMatch(/delivery to dev-agent-1 is unconfirmed/);
    expect(await task("T-1")).toMatchObject({ status: "in-progress", assignee: "dev-agent-1" });

    await e().aimaestro.clearFault();
    // The hub stores it once its delay is over; the server waits twice its timeout before looking.
    await vi.waitFor(() => expect(assignments("dev-agent-1")).toHaveLength(1), { timeout: 10_000 });
    const assignment = async () =>
      (await state()).outbox.find(
        (x) => x.kind === "message" && x.payload.purpose === "assignment" && x.payload.task_id === "T-1",
      );
    // Within the settling delay (the runtime's clock) nobody looks: a late arrival is not doubled.
    await cycle();
    expect(await assignment()).toMatchObject({ status: "failed" });
    // Past it, the next cycle looks, finds it delivered and sends nothing.
    e().clock.advance((2 * TIMEOUT_MS + 1) / 60_000);
    await cycle();
    expect(await assignment()).toMatchObject({
      status: "done",
      result: expect.objectContaining({ reconciled: true }),
    });
    expect(assignments("dev-agent-1")).toHaveLength(1);
  });
});

describe("AI Maestro returning 500s", () => {
  it("assign_task: a send is retried through 500s and delivered once", async () => {
    await setup();
    await startSession(inline("T-1"));
    await e().rt.orchestratorReady();
    await e().aimaestro.setFault({ status: 500, count: AIM_ATTEMPTS - 1 });
    const calls = aimCalls();
    const a = await assign({ task_id: "T-1", agent: "dev-agent-1" });
    expect(a).toMatchObject({ status: "dispatched", warnings: [] });
    expect(sends(calls())).toBe(AIM_ATTEMPTS);
    expect(assignments("dev-agent-1")).toHaveLength(1);
    expect(await task("T-1")).toMatchObject({ assignee: "dev-agent-1", assignment_message_id: a.message_id });
  });

  it("assign_task: persistent 500s give up after the retries with a clean refusal; a 4xx is never retried", async () => {
    await setup();
    await startSession(inline("T-1"));
    await e().rt.orchestratorReady();

    await e().aimaestro.setFault({ status: 500 });
    let calls = aimCalls();
    const err = await fails("assign_task", { task_id: "T-1", agent: "dev-agent-1" });
    expect(err.code).toBe("ASSIGNMENT_NOT_SENT");
    expect(err.message).toMatch(/answered POST \/api\/messages with 500/);
    expect(err.message).toContain(e().aimaestro.url);
    expect(sends(calls())).toBe(AIM_ATTEMPTS);
    expect(assignments("dev-agent-1")).toHaveLength(0);
    expect(await task("T-1")).toMatchObject({ status: "todo" });
    expect((await task("T-1")).assignee).toBeUndefined();

    await e().aimaestro.setFault({ status: 400, count: 1 });
    calls = aimCalls();
    const bad = await fails("assign_task", { task_id: "T-1", agent: "dev-agent-1" });
    expect(bad.code).toBe("ASSIGNMENT_NOT_SENT");
    expect(bad.message).toMatch(/with 400/);
    expect(sends(calls())).toBe(1);
    expect((await task("T-1")).assignee).toBeUndefined();

    await e().aimaestro.clearFault();
    const a = await assign({ task_id: "T-1", agent: "dev-agent-1" });
    expect(a.status).toBe("dispatched");
    expect(assignments("dev-agent-1")).toHaveLength(1);
  });

  it("check_messages: 500s on the inbox are retried and the cycle goes through; persistent ones only warn", async () => {
    await setup();
    await startSession(inline("T-1"));
    await assign({ task_id: "T-1", agent: "dev-agent-1" });
    e().aimaestro.setOnline("dev-agent-2", false);
    ack("dev-agent-1", "T-1");

    await e().aimaestro.setFault({ status: 500 });
    let calls = aimCalls();
    const down = await cycle();
    expect(down.warnings.join("\n")).toMatch(/inbox not read .*: .*500/);
    expect(inboxLists(calls())).toBe(AIM_ATTEMPTS);
    expect(agentLists(calls())).toBe(AIM_ATTEMPTS);
    expect((await state()).agents["dev-agent-2"]!.missed_heartbeats).toBe(0);

    await e().aimaestro.setFault({ status: 500, count: AIM_ATTEMPTS - 1 });
    calls = aimCalls();
    const up = await cycle();
    expect(up.warnings).toEqual([]);
    expect(inboxLists(calls())).toBe(AIM_ATTEMPTS);
    expect(up.read).toEqual([expect.objectContaining({ kind: "ack", task_id: "T-1", outcome: "applied" })]);
    expect((await state()).agents["dev-agent-2"]!.missed_heartbeats).toBe(1);
  });

  it("escalate: retried through 500s within one call; persistent 500s keep it for the next cycles", async () => {
    await setup();
    await startSession(inline("T-1", "T-2"));
    await e().rt.orchestratorReady();

    await e().aimaestro.setFault({ status: 500, count: AIM_ATTEMPTS - 1 });
    let calls = aimCalls();
    const quick = await ok<EscalateOut>("escalate", {
      category: "architecture",
      task_id: "T-1",
      issue: "one DB?",
    });
    expect(quick.delivered).toBe(true);
    expect(sends(calls())).toBe(AIM_ATTEMPTS);

    await e().aimaestro.setFault({ status: 500 });
    calls = aimCalls();
    const kept = await ok<EscalateOut>("escalate", {
      category: "security",
      task_id: "T-2",
      issue: "token in a test fixture",
    });
    expect(kept.delivered).toBe(false);
    expect(kept.delivery_error).toMatch(/500/);
    expect(sends(calls())).toBe(AIM_ATTEMPTS);
    expect(kept.escalation).toMatchObject({ status: "open", delivery: { status: "failed" } });
    expect(await task("T-2")).toMatchObject({ status: "blocked", parked_by: kept.escalation.id });

    await cycle();
    await e().aimaestro.clearFault();
    await cycle();
    const esc = (await state()).escalations.find((x) => x.id === kept.escalation.id)!;
    expect(esc.delivery.status).toBe("delivered");
    expect(inbox(USER)).toHaveLength(1);
    await cycle();
    expect(inbox(USER)).toHaveLength(1);
  });
});

// =====================================================================================================
// GitHub
// =====================================================================================================

describe("GitHub faults during start_session", () => {
  const issue102 = `${REPO_PATH}/issues/102`;

  it("a 502 on an issue read is retried and the confirmation goes through", async () => {
    await setup();
    e().github.failNext({ status: 502, path: issue102 });
    const got = ghStatuses("GET", issue102);
    await startSession(["GH-101", "GH-102", "GH-103"]);
    // The confirmation's read is retried; approval then reads the issue again to set status:todo.
    expect(got().slice(0, 2)).toEqual([502, 200]);
    expect(Object.keys((await state()).tasks).sort()).toEqual(["GH-101", "GH-102", "GH-103"]);
  });

  it.each([
    {
      fault: "502s past the retries",
      status: 502,
      count: GH_ATTEMPTS,
      code: "GITHUB_UNAVAILABLE",
      calls: GH_ATTEMPTS,
      text: /GitHub did not answer .*issue #102 \(502/,
      next: /retry/,
    },
    {
      fault: "a 403 rate limit",
      status: 403,
      count: 1,
      code: "GITHUB_RATE_LIMITED",
      calls: 1,
      text: new RegExp(`rate limit .*issue #102.*resets at ${RESET_AT}`),
      next: new RegExp(`wait until ${RESET_AT}`),
    },
    {
      fault: "a 422",
      status: 422,
      count: 1,
      code: "GITHUB_VALIDATION",
      calls: 1,
      text: /rejected the request to read issue #102/,
      next: /fix what GitHub reported/,
    },
  ])("$fault: $code, no half-made session, and the next call works", async (f) => {
    await setup();
    const before = await stateFile();
    e().github.failNext({ status: f.status, count: f.count, path: issue102 });
    const got = ghStatuses("GET", issue102);
    const err = await fails("start_session", { tasks: ["GH-101", "GH-102", "GH-103"] });
    expect(err.code).toBe(f.code);
    expect(err.message).toMatch(f.text);
    expect(err.next_step).toMatch(f.next);
    expect(got()).toEqual(Array(f.calls).fill(f.status));
    // GH-101 was read before the failure: still nothing is written.
    expect(await stateFile()).toBe(before);
    expect((await state()).sessions).toEqual([]);

    await startSession(["GH-101", "GH-102", "GH-103"]);
    expect((await state()).sessions).toHaveLength(1);
  });

  it("a rate limit with the production settings (throttling on) is surfaced at once, never slept on", async () => {
    await setup();
    const { client: c } = await rewire((cfg) => cfg, { fast: false });
    // The reset an hour away on the real clock, where the throttling plugin measures it.
    const reset = Math.floor(Date.now() / 1000) + 3600;
    e().github.failNext({ status: 403, path: issue102, headers: { "x-ratelimit-reset": reset } });
    const got = ghStatuses("GET", issue102);
    const err = await failsOn(c, "start_session", { tasks: ["GH-101", "GH-102"] });
    expect(err.code).toBe("GITHUB_RATE_LIMITED");
    const iso = new Date(reset * 1000).toISOString();
    expect(err.message).toContain(iso);
    expect(err.details).toMatchObject({ reset_at: iso });
    expect(got()).toEqual([403]);
  });
});

describe("GitHub faults during the kanban label sync", () => {
  const labelsPath = `${REPO_PATH}/issues/101/labels`;

  it("a 502 on the label write is retried within the call: labels right, no warning", async () => {
    await setup();
    await startSession(["GH-101", "GH-102", "GH-103"]);
    e().github.failNext({ status: 502, method: "PUT", path: labelsPath });
    const put = ghStatuses("PUT", labelsPath);
    const a = await assign({ task_id: "GH-101", agent: "dev-agent-1" });
    expect(a).toMatchObject({ status: "dispatched", warnings: [] });
    expect(put()).toEqual([502, 200]);
    expect(statusLabels(e(), 101).sort()).toEqual(["assign:dev-agent-1", "status:in-progress"]);
  });

  it.each([
    { fault: "502s past the retries", status: 502, count: GH_ATTEMPTS, text: /GitHub did not answer/ },
    {
      fault: "a 403 rate limit",
      status: 403,
      count: 1,
      text: new RegExp(`rate limit.*resets at ${RESET_AT}`),
    },
    { fault: "a 422", status: 422, count: 1, text: /GitHub rejected the request to set labels of #101/ },
  ])(
    "$fault: the task is assigned with a warning, and the next check_messages catches the labels up",
    async (f) => {
      await setup();
      await startSession(["GH-101", "GH-102", "GH-103"]);
      e().github.failNext({ status: f.status, count: f.count, method: "PUT", path: labelsPath });
      const put = ghStatuses("PUT", labelsPath);
      const a = await assign({ task_id: "GH-101", agent: "dev-agent-1" });
      // The assignment itself is done (the agent has it); only the board lags, and says so.
      expect(a.status).toBe("dispatched");
      expect(assignments("dev-agent-1")).toHaveLength(1);
      expect(a.warnings).toHaveLength(1);
      expect(a.warnings[0]).toMatch(/^labels not updated yet \(retried next cycle\)/);
      expect(a.warnings[0]).toMatch(f.text);
      expect(put()).toEqual(Array(f.status === 502 ? GH_ATTEMPTS : 1).fill(f.status));
      // Still the column approval set: the move to in-progress waits for the next cycle.
      expect(statusLabels(e(), 101)).toEqual(["status:todo"]);
      expect(await task("GH-101")).toMatchObject({ status: "in-progress", assignee: "dev-agent-1" });
      const pending = (await state()).outbox.filter((x) => x.kind === "labels" && x.status !== "done");
      expect(pending).toHaveLength(1);

      const next = await cycle();
      expect(next.warnings).toEqual([]);
      expect(statusLabels(e(), 101).sort()).toEqual(["assign:dev-agent-1", "status:in-progress"]);
      expect(e().github.issue(101)!.labels).toEqual(expect.arrayContaining(["priority:high", "effort:m"]));
      expect((await state()).outbox.filter((x) => x.kind === "labels" && x.status !== "done")).toEqual([]);
      // Caught up: no further writes.
      const after = ghStatuses("PUT", labelsPath);
      await cycle();
      expect(after()).toEqual([]);
    },
  );
});

describe("GitHub faults during review_pr", () => {
  const pullPath = `${REPO_PATH}/pulls/147`;
  const mergePath = `${REPO_PATH}/pulls/147/merge`;

  it("a 502 reading the PR is retried and the review goes through", async () => {
    await reviewNight();
    e().github.failNext({ status: 502, method: "GET", path: pullPath });
    const got = ghStatuses("GET", pullPath);
    const r = await review({ pr_number: 147, spec_assessment: ASSESS_OK });
    expect(r.decision).toBe("merge");
    expect(got().slice(0, 2)).toEqual([502, 200]);
    expect(e().github.pull(147)!.merged).toBe(true);
  });

  it("502s past the retries: GITHUB_UNAVAILABLE, nothing recorded, then the review works", async () => {
    await reviewNight();
    const before = await task("GH-101");
    e().github.failNext({ status: 502, count: GH_ATTEMPTS, method: "GET", path: pullPath });
    const err = await fails("review_pr", { pr_number: 147, spec_assessment: ASSESS_OK });
    expect(err.code).toBe("GITHUB_UNAVAILABLE");
    expect(err.next_step).toMatch(/retry on the next poll cycle/);
    expect(await task("GH-101")).toEqual(before);
    expect((await state()).reviews).toEqual({});
    expect(mergeCalls(e())).toHaveLength(0);

    const r = await review({ pr_number: 147, spec_assessment: ASSESS_OK });
    expect(r.decision).toBe("merge");
  });

  it("a 403 rate limit on the check runs: GITHUB_RATE_LIMITED with the reset time, no worktree left, nothing decided", async () => {
    const sha = await reviewNight();
    const checks = `${REPO_PATH}/commits/${sha}/check-runs`;
    e().github.failNext({ status: 403, method: "GET", path: checks });
    const got = ghStatuses("GET", checks);
    const err = await fails("review_pr", { pr_number: 147, spec_assessment: ASSESS_OK });
    expect(err.code).toBe("GITHUB_RATE_LIMITED");
    // The stand-in's limit resets an hour after its clock's now (the night's cycles moved it on).
    const resetAt = new Date(e().clock.now().getTime() + 3_600_000).toISOString();
    expect(err.message).toContain(resetAt);
    expect(err.next_step).toContain(resetAt);
    expect(got()).toEqual([403]);
    expect(await worktreeEntries(e())).toEqual([]);
    expect(await gitWorktrees(e())).toEqual([]);
    expect((await state()).reviews).toEqual({});
    expect(await task("GH-101")).toMatchObject({ status: "ai-review", fix_rounds: 0, ci_polls: 0 });
    expect(inbox("dev-agent-1").filter((m) => m.content.type === "fix-request")).toEqual([]);
    expect(mergeCalls(e())).toHaveLength(0);

    const r = await review({ pr_number: 147, spec_assessment: ASSESS_OK });
    expect(r.decision).toBe("merge");
    expect((await task("GH-101")).status).toBe("done");
  });

  it("a 422 on the merge: not merged, not retried, not blocked; the next review merges", async () => {
    await reviewNight();
    e().github.failNext({
      status: 422,
      method: "PUT",
      path: mergePath,
      body: {
        message: "Validation Failed",
        errors: [{ resource: "PullRequest", code: "invalid", field: "merge_method" }],
      },
    });
    const r = await review({ pr_number: 147, spec_assessment: ASSESS_OK });
    expect(r.decision).toBe("mergeability_pending");
    expect(r.merged_sha).toBeNull();
    expect(r.reason).toMatch(/merge failed .*Validation Failed.*call review_pr again/);
    expect(mergeCalls(e())).toHaveLength(1);
    expect(e().github.pull(147)!.merged).toBe(false);
    const t = await task("GH-101");
    expect(t.status).toBe("ai-review");
    expect(t.blocked_reason).toBeUndefined();
    expect((await state()).escalations).toEqual([]);
    expect(assignments("dev-agent-1").filter((m) => m.subject.endsWith("GH-102"))).toHaveLength(0);

    // Never merged behind the reviewer's back by a later cycle.
    await cycle();
    expect(mergeCalls(e())).toHaveLength(1);

    const again = await review({ pr_number: 147, spec_assessment: ASSESS_OK });
    expect(again.decision).toBe("merge");
    expect(mergeCalls(e())).toHaveLength(2);
    expect(e().github.pull(147)!.merged).toBe(true);
    expect((await task("GH-101")).status).toBe("done");
  });

  it("a merge GitHub made but answered with a 502 is retried, recognised as merged, and not called a conflict", async () => {
    await reviewNight();
    let lost = 0;
    const proxy = await lossyProxy(
      e().github.url,
      (method, path) => method === "PUT" && path === mergePath && lost++ === 0,
    );
    const { client: c } = await rewire((cfg) => ({ ...cfg, github: { ...cfg.github, apiUrl: proxy } }));
    const r = await review({ pr_number: 147, spec_assessment: ASSESS_OK }, c);
    // The 5xx was retried; GitHub refused the retry (already merged); the engine looked and saw it merged.
    expect(mergeCalls(e()).map((x) => x.status)).toEqual([200, 405]);
    expect(e().github.pull(147)!.merged).toBe(true);
    expect(r.decision).toBe("merge");
    expect(r.task_status).toBe("done");
    const s = await state();
    expect(s.escalations).toEqual([]);
    expect(s.tasks["GH-101"]!.blocked_reason).toBeUndefined();
    expect(s.incidents.filter((i) => i.kind === "merge-conflict")).toEqual([]);
    expect(r.dispatched.sort()).toEqual(["GH-102", "GH-103"]);
  });
});

// =====================================================================================================
// git
// =====================================================================================================

describe("git remote unreachable during review_pr", () => {
  it("GIT_REMOTE_UNREACHABLE naming the remote; nothing merged, no worktree left; the review works once it is back", async () => {
    await reviewNight();
    // eoa-mcp loses its remote; GitHub, which holds its own copy, still answers.
    const bare = e().remote;
    await rename(bare, `${bare}.away`);
    cleanups.push(async () => {
      if (existsSync(`${bare}.away`)) await rename(`${bare}.away`, bare);
    });
    const before = await task("GH-101");

    const err = await fails("review_pr", { pr_number: 147, spec_assessment: ASSESS_OK });
    expect(err.code).toBe("GIT_REMOTE_UNREACHABLE");
    expect(err.message).toContain(`cannot fetch from ${bare}`);
    expect(err.next_step).toMatch(/git\.remote/);
    expect(mergeCalls(e())).toHaveLength(0);
    expect(e().github.pull(147)!.merged).toBe(false);
    expect(await worktreeEntries(e())).toEqual([]);
    expect(await gitWorktrees(e())).toEqual([]);
    // Not the agent's fault: no fix round, no fix request, no review recorded, the task as it was.
    expect(await task("GH-101")).toEqual(before);
    expect((await state()).reviews).toEqual({});
    expect(inbox("dev-agent-1").filter((m) => m.content.type === "fix-request")).toEqual([]);

    await rename(`${bare}.away`, bare);
    const r = await review({ pr_number: 147, spec_assessment: ASSESS_OK });
    expect(r.decision).toBe("merge");
    expect(e().github.pull(147)!.merged).toBe(true);
    expect(await worktreeEntries(e())).toEqual([]);
  });

  it("a remote URL with credentials is named without them, in the result and in the logs", async () => {
    const port = await closedPort();
    const secret = "s3cret-remote-pass";
    // The remote: an unreachable URL carrying credentials (not a configured token: nothing else masks it).
    await reviewNight({
      config: { git: { remote: `http://eoa-bot:${secret}@127.0.0.1:${port}/acme/webapp.git` } },
    });
    const lines: string[] = [];
    e().logSinks.add(
      (_level, _name, data) => void lines.push(typeof data === "string" ? data : JSON.stringify(data)),
    );
    const r = await callTool(client, "review_pr", { pr_number: 147, spec_assessment: ASSESS_OK });
    expect(r.isError).toBe(true);
    const err = (r.structuredContent as { error: ToolError }).error;
    expect(err.code).toBe("GIT_REMOTE_UNREACHABLE");
    expect(err.message).toContain(`http://127.0.0.1:${port}/acme/webapp.git`);
    expect(JSON.stringify(r)).not.toContain(secret);
    expect(JSON.stringify(r)).not.toContain("eoa-bot:");
    expect(lines.some((l) => l.includes(`127.0.0.1:${port}`))).toBe(true); // named in the logs, without them
    expect(lines.join("\n")).not.toContain(secret);
    const config = await client.readResource({ uri: "eoa://config" });
    expect(JSON.stringify(config)).not.toContain(secret);
    expect(mergeCalls(e())).toHaveLength(0);
    expect(await worktreeEntries(e())).toEqual([]);
    expect((await task("GH-101")).status).toBe("ai-review");
  });
});

// =====================================================================================================
// disk full for the state directory
// =====================================================================================================

describe("disk full for the state directory (simulated)", () => {
  /**
   * ENOSPC from the state file's writer, in-process: the store's lowdb adapter is the one place every
   * write goes through. Returns a function that gives the space back.
   */
  /** The store writes only through `persist`: failing it is a full disk. */
  function fillDisk(rt: Runtime): () => void {
    const store = rt.store as unknown as { persist?: (op: unknown) => Promise<void> };
    if (typeof store.persist !== "function")
      throw new Error("the state store's internals changed: update fillDisk() in test/faults.test.ts");
    const original = store.persist;
    store.persist = () =>
      Promise.reject(
        Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC", errno: -28 }),
      );
    return () => {
      store.persist = original;
    };
  }

  it("a change committed but not flushed to the disk: the answer says so, and a replay with the same key returns it and repeats nothing", async () => {
    await setup();
    await startSession(inline("T-1"));
    await e().rt.orchestratorReady();
    // Nothing else left to write: the next write is the call's.
    await e().rt.drainLate();
    const store = e().rt.store as unknown as { persist(op: unknown): (() => Promise<void>) | void };
    const original = store.persist.bind(store);
    store.persist = (op) => {
      store.persist = original;
      original(op);
      return () => Promise.reject(Object.assign(new Error("EIO: i/o error, fsync"), { code: "EIO" }));
    };
    const args = { task_id: "T-1", agent: "dev-agent-1", idempotency_key: "k-fsync" };
    const first = await callTool(client, "assign_task", args);
    expect(first.isError).toBe(true);
    expect((first.structuredContent as { error: ToolError }).error).toMatchObject({
      code: "STATE_WRITE_FAILED",
      message: expect.stringContaining("the change is recorded"),
    });
    expect(await callTool(client, "assign_task", args)).toEqual(first);
    expect((await task("T-1")).assignment_epoch).toBe(1);
  });

  it("a message made while its outcome cannot be written is not sent again when space is back: the outcome kept in memory is written then", async () => {
    await setup();
    await startSession(inline("T-1"));
    await e().rt.orchestratorReady();
    await e().rt.drainLate();
    // The dispatch commits; the disk fills before the outcome of its message can be recorded.
    const store = e().rt.store as unknown as { persist(op: unknown): Promise<void> };
    const original = store.persist.bind(store);
    let writes = 0;
    store.persist = (op) =>
      ++writes === 1 ? original(op) : Promise.reject(Object.assign(new Error("ENOSPC"), { code: "ENOSPC" }));
    const a = await assign({ task_id: "T-1", agent: "dev-agent-1" });
    expect(a.status).toBe("dispatched");
    expect(assignments("dev-agent-1")).toHaveLength(1);
    store.persist = original;

    await cycle();
    expect(assignments("dev-agent-1")).toHaveLength(1);
    const effect = (await state()).outbox.find(
      (x) => x.kind === "message" && x.payload.purpose === "assignment" && x.payload.task_id === "T-1",
    );
    expect(effect).toMatchObject({
      status: "done",
      result: { message_id: assignments("dev-agent-1")[0]!.id },
    });
  });

  it("STATE_WRITE_FAILED with a next step; the previous state intact on disk and in memory; nothing sent; works once space is back", async () => {
    await setup();
    await startSession(inline("T-1", "T-2"));
    await assign({ task_id: "T-1", agent: "dev-agent-1" });
    const onDisk = await stateFile();
    const inMemory = structuredClone(await state());
    const calls = aimCalls();
    const acked = ack("dev-agent-1", "T-1");

    const freeSpace = fillDisk(e().rt);
    const refusals = [
      await fails("assign_task", { task_id: "T-2", agent: "dev-agent-2" }),
      await fails("check_messages"),
      await fails("escalate", { category: "security", task_id: "T-2", issue: "leaked key" }),
      await fails("assign_task", { task_id: "T-2", idempotency_key: "k-1" }),
    ];
    for (const err of refusals) {
      expect(err.code).toBe("STATE_WRITE_FAILED");
      expect(err.message).toMatch(/no space left on device/);
      expect(err.message).toContain("the change was not saved");
      expect(err.next_step).toMatch(/free disk space/);
    }
    // The state as it was, on disk byte for byte and as every reader sees it.
    expect(await stateFile()).toBe(onDisk);
    expect(await state()).toEqual(inMemory);
    // Nothing reached AI Maestro but reads: no assignment, no page; the ack stays unread for later.
    expect(sends(calls())).toBe(0);
    expect(assignments("dev-agent-2")).toHaveLength(0);
    expect(inbox(USER)).toHaveLength(0);
    expect(inbox(ORCH).find((m) => m.id === acked.id)?.status).toBe("unread");

    freeSpace();
    const c = await cycle();
    expect(c.read).toEqual([expect.objectContaining({ kind: "ack", task_id: "T-1", outcome: "applied" })]);
    const a = await assign({ task_id: "T-2", agent: "dev-agent-2", idempotency_key: "k-1" });
    expect(a.status).toBe("dispatched");
    expect(assignments("dev-agent-2")).toHaveLength(1);
    expect((await task("T-1")).acked_at).toBeDefined();
  });

  it("review_pr: a decision that cannot be recorded is not acted on: nothing merged, no worktree left", async () => {
    await reviewNight();
    const onDisk = await stateFile();
    const freeSpace = fillDisk(e().rt);
    const err = await fails("review_pr", { pr_number: 147, spec_assessment: ASSESS_OK });
    expect(err.code).toBe("STATE_WRITE_FAILED");
    expect(err.next_step).toMatch(/free disk space/);
    // The gates ran, but the merge is an effect of the recorded decision: never made without it.
    expect(mergeCalls(e())).toHaveLength(0);
    expect(e().github.pull(147)!.reviews).toEqual([]);
    expect(await worktreeEntries(e())).toEqual([]);
    expect(await gitWorktrees(e())).toEqual([]);
    expect(await stateFile()).toBe(onDisk);
    expect((await state()).reviews).toEqual({});

    freeSpace();
    const r = await review({ pr_number: 147, spec_assessment: ASSESS_OK });
    expect(r.decision).toBe("merge");
    expect(mergeCalls(e())).toHaveLength(1);
    expect((await task("GH-101")).status).toBe("done");
  });

  it("a write that fails on the file system itself (a state file cannot be written) is refused the same way", async () => {
    await setup();
    await startSession(inline("T-1"));
    const onDisk = await stateFile();
    // Every write starts with the revision token: a directory in its place makes the write fail.
    const rev = join(e().stateDir, "state.rev");
    const saved = await readFile(rev);
    await rm(rev);
    const blocker = rev;
    await mkdir(blocker);
    const err = await fails("assign_task", { task_id: "T-1", agent: "dev-agent-1" });
    expect(err.code).toBe("STATE_WRITE_FAILED");
    expect(err.next_step).toMatch(/free disk space/);
    expect(await stateFile()).toBe(onDisk);
    expect((await task("T-1")).assignee).toBeUndefined();
    expect(assignments("dev-agent-1")).toHaveLength(0);

    await rmdir(blocker);
    await writeFile(rev, saved);
    const a = await assign({ task_id: "T-1", agent: "dev-agent-1" });
    expect(a.status).toBe("dispatched");
    expect(assignments("dev-agent-1")).toHaveLength(1);
  });
});

describe("a note on GitHub is made once (issue 12 item 9)", () => {
  it("a comment that may have been made is found by its marker and not made again", async () => {
    await setup();
    const { perform } = await import("../src/engine/perform.js");
    const eff = {
      id: "eff-09999",
      kind: "comment" as const,
      status: "pending" as const,
      decision: "dec-0001",
      created_at: e().clock.now().toISOString(),
      attempts: 1,
      payload: { issue_number: 101, body: "eoa-mcp: GH-101 is blocked: CI blocked" },
    };
    expect(await perform(e().rt, eff, false)).toMatchObject({ comment_id: expect.any(Number) });
    // The answer was lost (a crash, a timeout): the retry looks first.
    expect(await perform(e().rt, eff, true)).toEqual({ reconciled: true });
    const notes = e()
      .github.issue(101)!
      .comments.filter((c) => c.body.includes("<!-- eoa-mcp eff-09999 -->"));
    expect(notes).toHaveLength(1);
  });
});
