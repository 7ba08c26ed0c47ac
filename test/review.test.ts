import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { RequestOptions } from "@modelcontextprotocol/sdk/shared/protocol.js";
import type { Progress } from "@modelcontextprotocol/sdk/types.js";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { GitHubClient } from "../src/clients/github.js";
import type { ReviewOutcome } from "../src/engine/review.js";
import { Runtime } from "../src/engine/runtime.js";
import { createServer } from "../src/server.js";
import type { CheckRunSpec } from "../src/sim/github/index.js";
import {
  createEnvironment,
  SEED_ISSUES,
  type EnvironmentOptions,
  type NightEnvironment,
} from "../src/sim/environment.js";
import type { TaskRecord } from "../src/state/schema.js";
import { ASSESS_OK, GREEN, LOGIN, pullFiles } from "./fixtures/pull-requests.js";
import { gitWorktrees, mergeCalls, statusLabels, worktreeEntries } from "./fixtures/review-traces.js";
import { callTool, type ToolResult } from "./fixtures/tool-calls.js";
import { assertBuilt } from "./fixtures/cli.js";
import { readState, ServerProcess } from "./fixtures/server-process.js";

/**
 * Issue 4's scenarios, end to end: a real MCP client calls `review_pr` on a server wired to the
 * GitHub stand-in, the AI Maestro stand-in and a real git remote whose PR heads live in
 * `refs/pull/N/head`. The worktree commands are the default repo's `sh tests/run.sh` and `sh lint.sh`.
 */

const exec = promisify(execFile);

interface Night {
  env: NightEnvironment;
  client: Client;
  call(name: string, args: Record<string, unknown>, options?: RequestOptions): Promise<ToolResult>;
  review(args: Record<string, unknown>, options?: RequestOptions): Promise<ReviewOutcome>;
  task(id: string): Promise<TaskRecord>;
}

/** A poll interval passes and the orchestrator checks its messages: a counted cycle. */
async function nextCycle(n: Night): Promise<void> {
  n.env.clock.advance(n.env.config.limits.poll_interval_seconds / 60);
  const r = await n.call("check_messages", {});
  expect(r.isError).toBeFalsy();
}

const envs: NightEnvironment[] = [];
const clients: Client[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close().catch(() => undefined);
  for (const e of envs.splice(0)) await e.close();
});

function wrap(env: NightEnvironment, client: Client): Night {
  const call = (name: string, args: Record<string, unknown>, options?: RequestOptions) =>
    callTool(client, name, args, options);
  return {
    env,
    client,
    call,
    async review(args, options) {
      const r = await call("review_pr", args, options);
      if (r.isError) throw new Error(`review_pr failed: ${r.content[0]?.text}`);
      return r.structuredContent as unknown as ReviewOutcome;
    },
    async task(id) {
      return (await env.rt.store.read()).tasks[id]!;
    },
  };
}

/** The environment, a connected client, and a running session of `tasks` with `assign` dispatched or queued. */
async function night(
  opts: EnvironmentOptions & {
    tasks?: unknown[];
    assign?: Array<[string, string]>;
    patchConfig?: (env: NightEnvironment) => void;
  } = {},
): Promise<Night> {
  const env = await createEnvironment(opts);
  envs.push(env);
  opts.patchConfig?.(env);
  const { client } = await env.connect();
  clients.push(client);
  const n = wrap(env, client);
  const first = await n.call("start_session", { tasks: opts.tasks ?? ["GH-101", "GH-102", "GH-103"] });
  expect(first.isError, first.content[0]?.text).toBeFalsy();
  const started = await n.call("start_session", {
    session_id: first.structuredContent?.session_id,
    approve: true,
  });
  expect(started.structuredContent?.status).toBe("running");
  const assign = opts.assign ?? [
    ["GH-101", "dev-agent-1"],
    ["GH-102", "dev-agent-1"],
    ["GH-103", "dev-agent-1"],
  ];
  for (const [task_id, agent] of assign) {
    const r = await n.call("assign_task", { task_id, agent });
    expect(r.isError, r.content[0]?.text).toBeFalsy();
  }
  return n;
}

interface PrSpec {
  number?: number;
  branch?: string;
  files?: Record<string, string>;
  task?: string;
  agent?: string;
  title?: string;
  body?: string;
  checks?: CheckRunSpec[] | CheckRunSpec[][];
  headRef?: string;
  /** Send the agent's `[DONE]` and run one poll cycle (links the PR to the task). */
  report?: boolean;
}

/** An agent's PR: pushed to the real remote, opened on the GitHub stand-in, reported as done. */
async function openPr(n: Night, spec: PrSpec = {}): Promise<string> {
  const number = spec.number ?? 147;
  const branch = spec.branch ?? "feature/auth";
  const files = spec.files ?? LOGIN;
  const task = spec.task ?? "GH-101";
  const sha = await n.env.repo.pushPullRequest(number, branch, files);
  n.env.github.addPull({
    number,
    title: spec.title ?? `${task}: User Authentication`,
    // No closing keyword: the issue must be closed by eoa-mcp, not by the stand-in's merge.
    body: spec.body ?? `Implements ${task}.`,
    headSha: sha,
    headRef: spec.headRef ?? branch,
    files: pullFiles(files),
  });
  const checks = spec.checks ?? GREEN;
  if (Array.isArray(checks[0])) n.env.github.scriptChecks(sha, checks as CheckRunSpec[][]);
  else n.env.github.setCheckRuns(sha, checks as CheckRunSpec[]);
  if (spec.report ?? true) {
    n.env.aimaestro.inject({
      from: spec.agent ?? "dev-agent-1",
      to: "eoa-orchestrator",
      subject: `[DONE] ${task} PR #${number}`,
      content: { type: "notification", message: `[DONE] ${task} PR #${number}` },
    });
    const polled = await n.call("check_messages", {});
    expect(polled.isError, polled.content[0]?.text).toBeFalsy();
  }
  return sha;
}

/** The agent pushes a new head (a fix round): on the remote and on the stand-in. */
async function pushFix(
  n: Night,
  files: Record<string, string>,
  opts: { number?: number; branch?: string; checks?: CheckRunSpec[] } = {},
): Promise<string> {
  const number = opts.number ?? 147;
  const sha = await n.env.repo.pushFix(number, opts.branch ?? "feature/auth", files);
  n.env.github.pushHead(number, sha);
  n.env.github.setCheckRuns(sha, opts.checks ?? GREEN);
  return sha;
}

function inbox(n: Night, agent: string) {
  return n.env.aimaestro.messagesFor(agent);
}
function fixRequests(n: Night, agent = "dev-agent-1") {
  return inbox(n, agent).filter((m) => m.content.type === "fix-request");
}
function assignments(n: Night, agent: string, taskId: string) {
  return inbox(n, agent).filter((m) => m.content.type === "task" && m.subject.endsWith(` ${taskId}`));
}
async function until(what: string, check: () => Promise<boolean> | boolean, tries = 200): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`gave up waiting for: ${what}`);
}

describe("review_pr: a clean PR", () => {
  it("waits for the assessment, then approves, squash-merges, closes the issue and dispatches the dependents", async () => {
    const n = await night();
    const sha = await openPr(n);
    expect(assignments(n, "dev-agent-1", "GH-102")).toHaveLength(0);

    const first = await n.review({ pr_number: 147 });
    expect(first).toMatchObject({
      decision: "awaiting_assessment",
      task_id: "GH-101",
      head_sha: sha,
      gate1: "pending",
      gate2: "pass",
      tests: { passed: 2, failed: 0 },
      coverage: 90,
      merged_sha: null,
    });
    expect(first.packet?.files.map((f) => f.path).sort()).toEqual(["src/auth/login.py", "tests/auth.test"]);
    // Issue text, marked as data in the structured answer too.
    expect(first.packet?.completion_criteria).toContain(
      '<untrusted source="PR #147 criterion">Passwords are hashed</untrusted>',
    );
    expect(first.packet?.pr.body).toMatch(/^<untrusted source="PR #147 body">[\s\S]*<\/untrusted>$/);
    expect(n.env.github.pull(147)).toMatchObject({ merged: false, reviews: [] });
    expect(mergeCalls(n.env)).toHaveLength(0);
    expect((await n.task("GH-101")).status).toBe("ai-review");

    const second = await n.review({ pr_number: 147, spec_assessment: ASSESS_OK });
    expect(second).toMatchObject({ decision: "merge", gate1: "pass", gate2: "pass", cached: true });
    expect(second.merged_sha).toMatch(/^[0-9a-f]{40}$/);
    expect(second.dispatched.sort()).toEqual(["GH-102", "GH-103"]);

    const pull = n.env.github.pull(147)!;
    expect(pull).toMatchObject({ merged: true, mergeMethod: "squash", state: "closed" });
    expect(pull.reviews).toEqual([
      expect.objectContaining({ event: "APPROVE", state: "APPROVED", commitId: sha }),
    ]);
    const issue = n.env.github.issue(101)!;
    expect(issue.state).toBe("closed");
    expect(statusLabels(n.env, 101)).toEqual(["status:done"]);

    const t = await n.task("GH-101");
    expect(t).toMatchObject({ status: "done", merge_sha: second.merged_sha });
    expect(t.assignee).toBe("dev-agent-1");
    expect(assignments(n, "dev-agent-1", "GH-102")).toHaveLength(1);
    expect(assignments(n, "dev-agent-1", "GH-103")).toHaveLength(1);
    expect((await n.task("GH-102")).status).toBe("in-progress");
    expect(statusLabels(n.env, 102)).toEqual(
      expect.arrayContaining(["status:in-progress", "assign:dev-agent-1"]),
    );
    expect(await worktreeEntries(n.env)).toEqual([]);
    expect(await gitWorktrees(n.env)).toEqual([]);
  });

  it("reports progress notifications while it reviews", async () => {
    const n = await night();
    await openPr(n);
    const seen: Progress[] = [];
    const r = await n.review({ pr_number: 147 }, { onprogress: (p) => void seen.push(p) });
    expect(r.decision).toBe("awaiting_assessment");
    const messages = seen.map((p) => p.message ?? "");
    for (const step of [
      /^reading PR #147/,
      /mirror/,
      /worktree/,
      /^running test/,
      /^running lint/,
      /^Gate 1/,
      /^Gate 2/,
      /^decision: awaiting_assessment/,
    ])
      expect(
        messages.some((m) => step.test(m)),
        `${step} in ${JSON.stringify(messages)}`,
      ).toBe(true);
    const counts = seen.map((p) => p.progress);
    expect(counts).toEqual([...counts].sort((a, b) => a - b));
  });
});

describe("review_pr: Gate 1 and Gate 2 failures", () => {
  it("a PR that adds a private key (no END line) gets an ordinary fix request naming the finding, with no key material in any answer", async () => {
    const n = await night();
    const body = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun";
    await openPr(n, { files: { ...LOGIN, "deploy/id_rsa": `-----BEGIN RSA PRIVATE KEY-----\n${body}\n` } });
    const raw = await n.call("review_pr", { pr_number: 147, spec_assessment: ASSESS_OK });
    expect(raw.isError, raw.content[0]?.text).toBeFalsy();
    const r = raw.structuredContent as unknown as ReviewOutcome;
    expect(r.decision).toBe("fix_request");
    expect(r.findings).toContainEqual(expect.objectContaining({ check: "secrets", file: "deploy/id_rsa" }));
    expect(JSON.stringify(raw)).not.toContain(body);
    const fix = fixRequests(n)[0]!;
    expect(fix.content.message).toContain("deploy/id_rsa");
    expect(JSON.stringify(fix)).not.toContain(body);
    // Asking again is no INTERNAL either, and burns no second fix round.
    const again = await n.call("review_pr", { pr_number: 147, spec_assessment: ASSESS_OK });
    expect(again.isError, again.content[0]?.text).toBeFalsy();
    expect((again.structuredContent as unknown as ReviewOutcome).decision).toBe("fix_request_pending");
  });

  it("sends a fix request naming a file outside the task's scope, once per head", async () => {
    const n = await night();
    await openPr(n, { files: { ...LOGIN, "src/billing/charge.py": "def charge():\n    pass\n" } });

    const r = await n.review({ pr_number: 147 });
    expect(r).toMatchObject({
      decision: "fix_request",
      gate1: "fail",
      fix_round: 1,
      task_status: "in-progress",
    });
    expect(r.findings).toContainEqual(
      expect.objectContaining({ gate: 1, check: "scope", file: "src/billing/charge.py" }),
    );
    const fixes = fixRequests(n);
    expect(fixes).toHaveLength(1);
    expect(fixes[0]!.content.message).toContain("src/billing/charge.py");
    expect(fixes[0]!.content.context).toMatchObject({
      type: "fix-request",
      task_id: "GH-101",
      fix_round: 1,
      pr_number: 147,
    });
    expect(await n.task("GH-101")).toMatchObject({ status: "in-progress", fix_rounds: 1 });
    expect(statusLabels(n.env, 101)).toEqual(
      expect.arrayContaining(["status:in-progress", "assign:dev-agent-1"]),
    );
    expect(n.env.github.pull(147)!.merged).toBe(false);

    // The same head again (with or without an assessment): no second fix request, no round burnt.
    const again = await n.review({ pr_number: 147 });
    expect(again.decision).toBe("fix_request_pending");
    const assessed = await n.review({ pr_number: 147, spec_assessment: ASSESS_OK });
    expect(assessed.decision).toBe("fix_request_pending");
    expect(fixRequests(n)).toHaveLength(1);
    expect((await n.task("GH-101")).fix_rounds).toBe(1);
    expect(mergeCalls(n.env)).toHaveLength(0);
    // The issue says why, once (issue 12 item 9).
    const notes = n.env.github
      .issue(101)!
      .comments.filter((c) => c.body.startsWith("eoa-mcp: fixes requested on PR #147"));
    expect(notes).toHaveLength(1);
    expect(notes[0]!.body).toContain("src/billing/charge.py");
  });

  it("escalates a blocker on the sixth failing round instead of a sixth fix request", async () => {
    const n = await night();
    await openPr(n, { files: { ...LOGIN, "tests/auth.test": "fail 0\n" } });
    const decisions: string[] = [];
    for (let round = 1; round <= 6; round++) {
      if (round > 1) await pushFix(n, { "tests/auth.test": `fail ${round}\n` });
      const r = await n.review({ pr_number: 147 });
      decisions.push(r.decision);
      if (round <= 5) expect(r.fix_round).toBe(round);
      else {
        expect(r.escalation_id).toMatch(/^esc-\d{3,}$/);
        expect(r.task_status).toBe("blocked");
      }
    }
    expect(decisions).toEqual([...Array(5).fill("fix_request"), "escalate_fix_rounds"]);
    const fixes = fixRequests(n);
    expect(fixes.map((m) => (m.content.context as { fix_round: number }).fix_round)).toEqual([1, 2, 3, 4, 5]);
    const t = await n.task("GH-101");
    expect(t).toMatchObject({ status: "blocked", fix_rounds: 5, previous_status: "in-progress" });
    const state = await n.env.rt.store.read();
    expect(state.escalations).toEqual([
      expect.objectContaining({
        category: "blocker",
        task_id: "GH-101",
        status: "open",
        channel: "orchestrator-queue",
      }),
    ]);
    expect(inbox(n, "orchestrator-queue")).toHaveLength(1);
    expect(statusLabels(n.env, 101)).toContain("status:blocked");
    expect(mergeCalls(n.env)).toHaveLength(0);
  });

  it("turns a failing test command into a Gate 2 finding with the log tail", async () => {
    const n = await night();
    await openPr(n, { files: { ...LOGIN, "tests/auth.test": "fail\n" } });
    const r = await n.review({ pr_number: 147 });
    expect(r).toMatchObject({ decision: "fix_request", gate2: "fail", tests: { passed: 1, failed: 1 } });
    const finding = r.findings.find((f) => f.check === "test");
    expect(finding).toMatchObject({ gate: 2, message: expect.stringContaining("sh tests/run.sh") });
    expect(finding?.log_tail).toContain("1 passed, 1 failed");
    expect(fixRequests(n)[0]!.content.message).toContain("1 passed, 1 failed");
  });

  it("fails Gate 2 when coverage is below the threshold", async () => {
    const n = await night();
    await openPr(n, { files: { ...LOGIN, "tests/coverage": "50\n" } });
    const r = await n.review({ pr_number: 147 });
    expect(r).toMatchObject({ decision: "fix_request", gate2: "fail", coverage: 50 });
    expect(r.findings).toContainEqual(
      expect.objectContaining({
        gate: 2,
        check: "coverage",
        message: expect.stringMatching(/50\.0% is below the 80% threshold/),
      }),
    );
  });

  it("finds a secret in the diff by file and line and never shows its value", async () => {
    const n = await night();
    const secret = `ghp_${"a1B2c3D4e5".repeat(3)}Z9y8X7`;
    expect(secret).toHaveLength(40);
    await openPr(n, {
      files: { ...LOGIN, "src/auth/config.py": `# settings\ntoken = "${secret}"\n` },
    });
    const result = await n.call("review_pr", { pr_number: 147, spec_assessment: ASSESS_OK });
    expect(result.isError).toBeFalsy();
    const r = result.structuredContent as unknown as ReviewOutcome;
    expect(r).toMatchObject({ decision: "fix_request", gate2: "fail" });
    expect(r.findings).toContainEqual(
      expect.objectContaining({ gate: 2, check: "secrets", file: "src/auth/config.py", line: 2 }),
    );
    expect(JSON.stringify(result)).not.toContain(secret);
    expect(JSON.stringify(result)).not.toContain(secret.slice(4));
    expect(JSON.stringify(inbox(n, "dev-agent-1"))).not.toContain(secret.slice(4));
    expect(JSON.stringify(n.env.github.pull(147)!.reviews)).not.toContain(secret.slice(4));
    expect(n.env.github.pull(147)!.merged).toBe(false);
  });
});

describe("review_pr: CI", () => {
  it("reruns failing CI, blocks past max_retry_attempts, and other tasks go on", async () => {
    const extra = {
      number: 104,
      title: "Audit Logging",
      labels: ["priority:normal", "effort:s"],
      body: "Log logins.\n\n## Scope\n- `src/audit/**`\n- `tests/**`\n",
    };
    const n = await night({
      issues: [...SEED_ISSUES, extra],
      tasks: ["GH-101", "GH-102", "GH-103", "GH-104"],
      assign: [
        ["GH-101", "dev-agent-1"],
        ["GH-102", "dev-agent-1"],
        ["GH-103", "dev-agent-1"],
      ],
    });
    const red: CheckRunSpec[] = [
      { name: "build", status: "completed", conclusion: "failure", output: { summary: "2 tests failed" } },
    ];
    await openPr(n, { checks: [red, red, red, red] });
    const decisions: string[] = [];
    for (let i = 0; i < 4; i++) {
      decisions.push((await n.review({ pr_number: 147 })).decision);
      await nextCycle(n); // the re-run is made by the next poll cycle
    }
    expect(decisions).toEqual(["ci_rerun", "ci_rerun", "ci_rerun", "ci_failed_blocked"]);
    expect(n.env.github.reruns()).toHaveLength(3);
    expect(n.env.github.reruns().every((e) => e.workflowRunId !== undefined)).toBe(true);
    const t = await n.task("GH-101");
    expect(t).toMatchObject({ status: "blocked", ci_failures: 4 });
    expect(t.blocked_reason).toMatch(/CI failed 4 times/);
    expect(fixRequests(n)).toHaveLength(0);
    expect(mergeCalls(n.env)).toHaveLength(0);
    const blocked = await n.call("review_pr", { pr_number: 147 });
    expect(blocked.isError).toBe(true);

    // Other work goes on: GH-104 goes out to dev-agent-2 and merges.
    const assigned = await n.call("assign_task", { task_id: "GH-104", agent: "dev-agent-2" });
    expect(assigned.structuredContent?.status).toBe("dispatched");
    await openPr(n, {
      number: 148,
      branch: "feature/audit",
      task: "GH-104",
      agent: "dev-agent-2",
      title: "GH-104: Audit Logging",
      files: { "src/audit/log.py": "def audit():\n    pass\n", "tests/audit.test": "pass\n" },
    });
    const other = await n.review({ pr_number: 148, spec_assessment: ASSESS_OK });
    expect(other.decision).toBe("merge");
    expect(n.env.github.pull(148)!.merged).toBe(true);
    expect(n.env.github.pull(147)!.merged).toBe(false);
  });

  it("merges once a rerun of the failed jobs turns CI green", async () => {
    const n = await night();
    const red: CheckRunSpec[] = [{ name: "build", status: "completed", conclusion: "failure" }];
    await openPr(n, { checks: [red, GREEN] });
    const first = await n.review({ pr_number: 147, spec_assessment: ASSESS_OK });
    expect(first).toMatchObject({ decision: "ci_rerun", gate2: "fail", task_status: "ai-review" });
    expect(first.findings).toEqual([
      expect.objectContaining({ gate: 2, check: "build", url: expect.any(String) }),
    ]);
    // Not in the call that saw the failure: the next poll cycle re-runs it, by name.
    expect(n.env.github.reruns()).toHaveLength(0);
    await nextCycle(n);
    expect(n.env.github.reruns()).toHaveLength(1);
    expect(fixRequests(n)).toHaveLength(0);
    const second = await n.review({ pr_number: 147, spec_assessment: ASSESS_OK });
    expect(second.decision).toBe("merge");
    expect(n.env.github.reruns()).toHaveLength(1);
    expect(n.env.github.pull(147)!.merged).toBe(true);
  });

  it("blocks on the sixth poll of pending CI (CI blocked)", async () => {
    const n = await night();
    await openPr(n, { checks: [{ name: "build", status: "in_progress" }] });
    const decisions: string[] = [];
    for (let i = 0; i < 6; i++) {
      decisions.push((await n.review({ pr_number: 147 })).decision);
      n.env.clock.advance(n.env.config.limits.poll_interval_seconds / 60); // one CI poll per interval
    }
    expect(decisions).toEqual([...Array(5).fill("ci_pending"), "ci_blocked"]);
    const t = await n.task("GH-101");
    expect(t).toMatchObject({ status: "blocked", ci_polls: 6, previous_status: "ai-review" });
    expect(t.blocked_reason).toMatch(/CI blocked/);
    expect(statusLabels(n.env, 101)).toContain("status:blocked");
    expect(n.env.github.reruns()).toHaveLength(0);
    expect(mergeCalls(n.env)).toHaveLength(0);
  });
});

describe("review_pr: a completion report naming a PR that does not exist (issue 12 item 5)", () => {
  const report = async (n: Night, pr: number) => {
    n.env.aimaestro.inject({
      from: "dev-agent-1",
      to: "eoa-orchestrator",
      subject: `[DONE] GH-101 PR #${pr}`,
      content: { type: "notification", message: `[DONE] GH-101 PR #${pr}` },
    });
    await nextCycle(n);
  };

  it("tells the agent once and gives the task back; the second such report blocks it for the user; never a review loop", async () => {
    const n = await night({ assign: [["GH-101", "dev-agent-1"]] });
    await report(n, 999);
    const first = await n.review({ pr_number: 999 });
    expect(first).toMatchObject({
      decision: "pr_not_found",
      task_status: "in-progress",
      escalation_id: null,
    });
    const told = n.env.aimaestro
      .messagesFor("dev-agent-1")
      .filter((m) => m.subject.startsWith("PR NOT FOUND"));
    expect(told).toHaveLength(1);
    expect(told[0]!.content.message).toContain("PR #999, which does not exist in acme/webapp");
    const s1 = await n.env.rt.store.read();
    expect(s1.decisions.at(-1)).toMatchObject({ action: "pr-not-found", task_id: "GH-101" });
    // Nothing is due for it: review_pr is not asked for again.
    const c = await n.call("check_messages", {});
    const due = (c.structuredContent?.actions_due ?? []) as Array<{ tool: string }>;
    expect(due.some((a) => a.tool === "review_pr")).toBe(false);

    await report(n, 998);
    const second = await n.review({ pr_number: 998 });
    expect(second).toMatchObject({ decision: "pr_not_found", task_status: "blocked" });
    expect(second.escalation_id).toMatch(/^esc-/);
    const t = await n.task("GH-101");
    expect(t.blocked_reason).toMatch(/does not exist/);
    expect(
      n.env.aimaestro.messagesFor("dev-agent-1").filter((m) => m.subject.startsWith("PR NOT FOUND")),
    ).toHaveLength(1);
  });
});

describe("review_pr: Gate 1 is judged from the code (issue 12 item 8)", () => {
  it("the packet carries the diff's first page, marked untrusted; the rest are read by page from eoa://reviews/{pr}/diff/{page}", async () => {
    const n = await night({ assign: [["GH-101", "dev-agent-1"]] });
    const big = Array.from({ length: 4000 }, (_, i) => `line_${i} = "${"x".repeat(20)}"`).join("\n");
    await openPr(n, { files: { ...LOGIN, "src/auth/tables.py": `${big}\n` } });
    const r = await n.call("review_pr", { pr_number: 147 });
    const packet = r.structuredContent?.packet as {
      diff: { page: number; pages: number; text: string; next: string };
    };
    expect(packet.diff.page).toBe(1);
    expect(packet.diff.pages).toBeGreaterThan(1);
    expect(packet.diff.next).toBe("eoa://reviews/147/diff/2");
    expect(packet.diff.text).toMatch(/^<untrusted source="PR #147 diff, page 1">\ndiff --git a\//);
    const text = (r.content as Array<{ text: string }>)[0]!.text;
    expect(text).toMatch(/Diff, page 1 of \d+ \(next: read eoa:\/\/reviews\/147\/diff\/2\)/);
    expect(text).toContain("+def login");

    const pages: string[] = [];
    for (let p = 2; p <= packet.diff.pages; p++) {
      const res = await n.client.readResource({ uri: `eoa://reviews/147/diff/${p}` });
      const page = JSON.parse((res.contents[0] as { text: string }).text) as {
        page: number;
        diff: string;
        next: string | null;
      };
      expect(page.page).toBe(p);
      expect(page.next).toBe(p < packet.diff.pages ? `eoa://reviews/147/diff/${p + 1}` : null);
      pages.push(page.diff);
    }
    expect(pages.join("")).toContain(`+line_3999 = "${"x".repeat(20)}"`);
    await expect(
      n.client.readResource({ uri: `eoa://reviews/147/diff/${packet.diff.pages + 1}` }),
    ).rejects.toThrow(/resource not found/);
  });
});

describe("review_pr: time, not calls", () => {
  it("ten reviews of a pending PR within one poll interval never block it", async () => {
    const n = await night();
    await openPr(n, { checks: [{ name: "build", status: "in_progress" }] });
    for (let i = 0; i < 10; i++) expect((await n.review({ pr_number: 147 })).decision).toBe("ci_pending");
    expect(await n.task("GH-101")).toMatchObject({ status: "ai-review", ci_polls: 1 });
  });
});

describe("review_pr: merge conflicts, large tasks, protected paths", () => {
  it("never merges a conflicting PR: blocked with the file recorded and a deferred escalation queued", async () => {
    const n = await night();
    await openPr(n); // cut from the older main
    await n.env.repo.commitToMain({ "src/auth/login.py": "def login():\n    raise NotImplementedError\n" });
    const r = await n.review({ pr_number: 147, spec_assessment: ASSESS_OK });
    expect(r).toMatchObject({ decision: "merge_conflict", gate2: "fail", task_status: "blocked" });
    expect(r.escalation_id).toMatch(/^esc-/);
    expect(n.env.github.pull(147)!.merged).toBe(false);
    expect(mergeCalls(n.env)).toHaveLength(0);
    const state = await n.env.rt.store.read();
    const t = state.tasks["GH-101"]!;
    expect(t.status).toBe("blocked");
    expect(t.blocked_reason).toContain("src/auth/login.py");
    expect(state.reviews[`147@${r.head_sha}`]?.mechanical?.conflicts).toEqual(["src/auth/login.py"]);
    expect(state.escalations).toEqual([
      expect.objectContaining({
        id: r.escalation_id,
        level: "deferred",
        category: "blocker",
        channel: "orchestrator-queue",
        delivery: expect.objectContaining({ status: "delivered" }),
      }),
    ]);
    const queued = inbox(n, "orchestrator-queue");
    expect(queued).toHaveLength(1);
    expect(JSON.stringify(queued[0]!.content)).toContain("src/auth/login.py");
    expect(inbox(n, "user-notification-channel")).toHaveLength(0);
    expect(fixRequests(n)).toHaveLength(0);
    expect(statusLabels(n.env, 101)).toEqual(
      expect.arrayContaining(["status:blocked", "assign:dev-agent-1"]),
    );
    // GitHub says why (issue 12 item 9): one comment on the issue and one on the PR, and the PR labelled.
    const blockedNote = (c: { body: string }) => /GH-101 is blocked: .*src\/auth\/login\.py/.test(c.body);
    expect(n.env.github.issue(101)!.comments.filter(blockedNote)).toHaveLength(1);
    expect(n.env.github.issue(147)!.comments.filter(blockedNote)).toHaveLength(1);
    expect(n.env.github.issue(147)!.labels).toContain("eoa:blocked");

    // The user answers: the task unblocks, and the label comes off; no note is made twice.
    await n.call("resolve_escalation", { escalation_id: r.escalation_id, decision: "rebase onto main" });
    await nextCycle(n);
    expect(n.env.github.issue(147)!.labels).not.toContain("eoa:blocked");
    expect(n.env.github.issue(101)!.comments.filter(blockedNote)).toHaveLength(1);
  });

  it("leaves a note on the issue for a fix request and for the merge (issue 12 item 9)", async () => {
    const n = await night({ assign: [["GH-101", "dev-agent-1"]] });
    await openPr(n, { checks: GREEN });
    const merged = await n.review({ pr_number: 147, spec_assessment: ASSESS_OK });
    expect(merged.decision).toBe("merge");
    const notes = n.env.github.issue(101)!.comments.map((c) => c.body);
    expect(
      notes.filter((b) => /^eoa-mcp: PR #147 merged as [0-9a-f]{12}; GH-101 is done\./.test(b)),
    ).toHaveLength(1);
    expect(notes.every((b) => /<!-- eoa-mcp eff-\d+ -->$/.test(b))).toBe(true);
  });

  it("blocks and queues for the user when GitHub refuses the merge", async () => {
    const n = await night();
    await openPr(n);
    n.env.github.failNext({
      status: 405,
      method: "PUT",
      path: /\/pulls\/147\/merge$/,
      body: { message: "Pull Request is not mergeable" },
    });
    const r = await n.review({ pr_number: 147, spec_assessment: ASSESS_OK });
    expect(r).toMatchObject({
      decision: "merge_conflict",
      task_status: "blocked",
      merged_sha: null,
      dispatched: [],
    });
    expect(n.env.github.pull(147)!.merged).toBe(false);
    expect(inbox(n, "orchestrator-queue")).toHaveLength(1);
    expect(statusLabels(n.env, 101)).toContain("status:blocked");
    expect(assignments(n, "dev-agent-1", "GH-102")).toHaveLength(0);
  });

  it("does not merge a head that moved after the review, and reviews again", async () => {
    const n = await night();
    await openPr(n);
    n.env.github.failNext({
      status: 409,
      method: "PUT",
      path: /\/pulls\/147\/merge$/,
      body: { message: "Head branch was modified. Review and try the merge again." },
    });
    const r = await n.review({ pr_number: 147, spec_assessment: ASSESS_OK });
    expect(r).toMatchObject({ decision: "mergeability_pending", task_status: "ai-review", merged_sha: null });
    expect(n.env.github.pull(147)!.merged).toBe(false);
    const again = await n.review({ pr_number: 147, spec_assessment: ASSESS_OK });
    expect(again.decision).toBe("merge");
    expect(mergeCalls(n.env)).toHaveLength(2);
  });

  it("stops an xl task (issue label effort:xl) at human review", async () => {
    const issues = SEED_ISSUES.map((i) =>
      i.number === 101 ? { ...i, labels: ["priority:high", "effort:xl", "capability:auth"] } : i,
    );
    const n = await night({ issues });
    await openPr(n);
    const r = await n.review({ pr_number: 147, spec_assessment: ASSESS_OK });
    expect(r).toMatchObject({
      decision: "human_review",
      gate1: "pass",
      gate2: "pass",
      task_status: "human-review",
    });
    expect(r.reason).toMatch(/xl/);
    expect(r.packet).not.toBeNull();
    expect(n.env.github.pull(147)!.merged).toBe(false);
    expect(mergeCalls(n.env)).toHaveLength(0);
    expect(statusLabels(n.env, 101)).toContain("status:human-review");
    expect(n.env.github.issue(147)!.comments.map((c) => c.body)).toEqual([expect.stringMatching(/human/)]);
    expect(n.env.github.issue(101)!.state).toBe("open");
    // Asking again changes nothing: still not merged, no second comment.
    const again = await n.review({ pr_number: 147, spec_assessment: ASSESS_OK });
    expect(again.decision).toBe("human_review");
    expect(n.env.github.issue(147)!.comments).toHaveLength(1);
    expect(mergeCalls(n.env)).toHaveLength(0);
  });

  it("stops an inline task of effort xl at human review", async () => {
    const n = await night({
      tasks: [
        {
          task_id: "T-1",
          title: "Rewrite the auth layer",
          effort: "xl",
          files_in_scope: ["src/auth/**", "tests/**"],
          required_capabilities: ["auth"],
        },
      ],
      assign: [["T-1", "dev-agent-1"]],
    });
    await openPr(n, { task: "T-1", title: "T-1: Rewrite the auth layer" });
    const r = await n.review({ pr_number: 147, spec_assessment: ASSESS_OK });
    expect(r).toMatchObject({ decision: "human_review", task_id: "T-1", task_status: "human-review" });
    expect(n.env.github.pull(147)!.merged).toBe(false);
    expect(mergeCalls(n.env)).toHaveLength(0);
  });

  it("stops a PR touching a protected path at human review", async () => {
    const n = await night({
      config: {
        review: {
          commands: { test: "sh tests/run.sh", lint: "sh lint.sh" },
          command_timeout_minutes: 2,
          protected_paths: ["src/auth/crypto/**"],
        },
      },
    });
    await openPr(n, { files: { ...LOGIN, "src/auth/crypto/hash.py": "def hash(p):\n    return p\n" } });
    const r = await n.review({ pr_number: 147, spec_assessment: ASSESS_OK });
    expect(r).toMatchObject({ decision: "human_review", task_status: "human-review" });
    expect(r.reason).toContain("src/auth/crypto/hash.py");
    expect(n.env.github.pull(147)!.merged).toBe(false);
    expect(mergeCalls(n.env)).toHaveLength(0);
  });
});

describe("review_pr: cancellation", () => {
  it("kills a hanging test command and removes the worktree when the call is cancelled", async () => {
    const marker = "sleep 613.25";
    const n = await night({
      config: { review: { commands: { test: marker }, command_timeout_minutes: 2 } },
    });
    await openPr(n);
    const running = async () => {
      const { stdout } = await exec("ps", ["-eo", "pid=,args="]);
      return stdout.split("\n").filter((l) => l.includes(marker) && !l.includes("ps -eo"));
    };
    const controller = new AbortController();
    let started: Promise<{ processes: number; worktrees: string[] }> | undefined;
    const call = n.call(
      "review_pr",
      { pr_number: 147 },
      {
        signal: controller.signal,
        onprogress: (p) => {
          if (!started && p.message?.startsWith("running test")) {
            started = until("the test command to start", async () => (await running()).length > 0).then(
              async () => {
                const seen = { processes: (await running()).length, worktrees: await worktreeEntries(n.env) };
                controller.abort("the test is over");
                return seen;
              },
            );
          }
        },
      },
    );
    await expect(call).rejects.toThrow();
    // While it hung, the command ran in the reused checkout (reset to the base afterwards, which
    // test/git.test.ts checks): no worktree was made for this review.
    const seen = await started!;
    expect(seen.processes).toBeGreaterThan(0);
    expect(seen.worktrees).toEqual([]);
    await until("the worktree to be removed", async () => (await worktreeEntries(n.env)).length === 0);
    await until("the hanging command to be killed", async () => (await running()).length === 0);
    await until("git to forget the worktree", async () => (await gitWorktrees(n.env)).length === 0);
    expect(n.env.github.pull(147)!.merged).toBe(false);
    // A cancelled review decides nothing.
    const state = await n.env.rt.store.read();
    expect(state.reviews).toEqual({});
    expect(state.tasks["GH-101"]!.status).toBe("ai-review");
  });
});

describe("review_pr: bad input", () => {
  async function expectRefused(n: Night, args: Record<string, unknown>, code: string): Promise<ToolResult> {
    const r = await n.call("review_pr", args);
    expect(r.isError, r.content[0]?.text).toBe(true);
    expect((r.structuredContent?.error as { code: string }).code).toBe(code);
    expect(r.content[0]!.text).toMatch(/Next step: \S/);
    expect(mergeCalls(n.env)).toHaveLength(0);
    expect(await worktreeEntries(n.env)).toEqual([]);
    return r;
  }

  it("refuses a PR number that does not exist", async () => {
    const n = await night();
    const r = await expectRefused(n, { pr_number: 999, task_id: "GH-101" }, "PR_NOT_FOUND");
    expect(r.content[0]!.text).toContain("#999");
  });

  it("refuses a task id that does not match the PR", async () => {
    const n = await night();
    await openPr(n);
    await expectRefused(n, { pr_number: 148, task_id: "GH-101" }, "TASK_PR_MISMATCH");
    expect(n.env.github.pull(147)!.merged).toBe(false);
  });

  it.each(["-rf", "a;rm -rf /", "feature/$(touch pwned)", "x`id`"])(
    "refuses the branch name %j without touching git",
    async (headRef) => {
      const n = await night();
      await openPr(n, { headRef, report: false });
      await expectRefused(n, { pr_number: 147, task_id: "GH-101" }, "PR_BAD_BRANCH");
      expect(existsSync(join(n.env.stateDir, "mirror"))).toBe(false);
      expect(n.env.github.pull(147)!.merged).toBe(false);
    },
  );

  it("refuses a PR of another repository", async () => {
    // The stand-in serves one repository, so GitHub's answer is altered on its way to the engine.
    const n = await night();
    await openPr(n);
    const rt = n.env.rt;
    const real = rt.github;
    const github = new Proxy(real, {
      get(target, prop, receiver) {
        if (prop === "getPull") {
          return async (num: number) => ({ ...(await target.getPull(num)), baseRepoFullName: "evil/webapp" });
        }
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    }) as GitHubClient;
    const other = new Runtime({
      config: rt.config,
      store: rt.store,
      clock: rt.clock,
      logger: rt.logger,
      aimaestro: rt.aimaestro,
      github,
      git: rt.git,
    });
    const server = createServer(other, { logSinks: n.env.logSinks, externalPollMs: 50 });
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    const client = new Client({ name: "eoa-test-wrong-repo", version: "1.0.0" });
    await server.server.connect(serverSide);
    await client.connect(clientSide);
    clients.push(client);
    try {
      const r = await expectRefused(
        wrap(n.env, client),
        { pr_number: 147, spec_assessment: ASSESS_OK },
        "PR_WRONG_REPO",
      );
      expect(r.content[0]!.text).toContain("evil/webapp");
      expect(n.env.github.pull(147)!.merged).toBe(false);
    } finally {
      await server.close();
    }
  });
});

describe("review_pr: kanban and Projects v2", () => {
  const statuses = [
    "Backlog",
    "Todo",
    "In Progress",
    "AI Review",
    "Human Review",
    "Merge Release",
    "Done",
    "Blocked",
  ];
  function withProject(env: NightEnvironment): void {
    env.github.setProject({ owner: "acme", number: 1, title: "Board", statuses });
    // createEnvironment merges `config` shallowly and the API URL is only known once the stand-in
    // runs, so the project number is set on the loaded config.
    (env.rt.config.github as { project?: number }).project = 1;
  }
  const card = (n: Night, issue: number) =>
    n.env.github.projectItems().find((i) => i.issueNumber === issue)?.status;

  it("moves the card to Done after the merge", async () => {
    const n = await night({ patchConfig: withProject });
    await openPr(n);
    expect(card(n, 101)).toBe("AI Review");
    await n.review({ pr_number: 147, spec_assessment: ASSESS_OK });
    expect(card(n, 101)).toBe("Done");
    expect(card(n, 102)).toBe("In Progress");
  });

  it("records the column a conflict blocked and restores it when the escalation is resolved", async () => {
    const n = await night({ patchConfig: withProject });
    await openPr(n);
    await n.env.repo.commitToMain({ "src/auth/login.py": "def login():\n    return None\n" });
    const r = await n.review({ pr_number: 147, spec_assessment: ASSESS_OK });
    expect(r.decision).toBe("merge_conflict");
    expect(await n.task("GH-101")).toMatchObject({ status: "blocked", previous_status: "ai-review" });
    expect(card(n, 101)).toBe("Blocked");
    expect(statusLabels(n.env, 101)).toEqual(
      expect.arrayContaining(["status:blocked", "assign:dev-agent-1"]),
    );

    const resolved = await n.call("resolve_escalation", {
      escalation_id: r.escalation_id,
      decision: "rebase onto main and keep both changes",
    });
    expect(resolved.isError, resolved.content[0]?.text).toBeFalsy();
    const t = await n.task("GH-101");
    expect(t.status).toBe("ai-review");
    expect(t.previous_status).toBeUndefined();
    expect(card(n, 101)).toBe("AI Review");
    expect(statusLabels(n.env, 101)).toEqual(
      expect.arrayContaining(["status:ai-review", "assign:dev-agent-1"]),
    );
    expect(statusLabels(n.env, 101)).not.toContain("status:blocked");
  });
});

describe("review_pr: one review of a PR at a time, across processes", () => {
  it("two processes reviewing one PR at once: one merge call and one APPROVE; the other is told", async () => {
    assertBuilt();
    const n = await night();
    await openPr(n, { report: true });
    const procs = await Promise.all(
      ["a", "b"].map((name) => ServerProcess.spawn(name, n.env.configFile, n.env.root)),
    );
    try {
      await Promise.all(procs.map((p) => p.ready()));
      const args = { pr_number: 147, task_id: "GH-101", spec_assessment: ASSESS_OK };
      const [a, b] = await Promise.all(procs.map((p) => p.call("review_pr", args)));
      const outcomes = [a!, b!].map((r) =>
        r.kind === "ok" ? String(r.data.decision) : r.kind === "refused" ? r.code : "lost",
      );
      expect(outcomes).toContain("merge");
      // The other waited for nothing: it was told a review is running, or came after and found it done.
      expect(outcomes.filter((o) => o !== "merge")).toEqual([
        expect.stringMatching(/^(REVIEW_IN_PROGRESS|TASK_DONE|already_merged)$/),
      ]);
      expect(mergeCalls(n.env)).toHaveLength(1);
      const approvals = n.env.github.calls.filter(
        (c) =>
          c.method === "POST" &&
          c.path.endsWith("/pulls/147/reviews") &&
          /APPROVE/.test(JSON.stringify(c.body)),
      );
      expect(approvals).toHaveLength(1);
      expect((await readState(n.env.stateDir)).review_claims).toEqual({});
    } finally {
      for (const p of procs) await p.close();
    }
  });

  it("a merge cut off by SIGKILL (GitHub merged, the server never heard) completes by itself on the next start", async () => {
    assertBuilt();
    // GH-102 waits in the queue for GH-101.
    const n = await night({
      tasks: ["GH-101", "GH-102"],
      assign: [
        ["GH-101", "dev-agent-1"],
        ["GH-102", "dev-agent-1"],
      ],
    });
    expect((await n.task("GH-102")).status).toBe("todo");
    await openPr(n, { report: true });
    const first = await ServerProcess.spawn("killed", n.env.configFile, n.env.root);
    await first.ready();
    // GitHub merges; before its answer reaches the server, the server is killed.
    n.env.github.beforeReply("PUT", "/repos/acme/webapp/pulls/147/merge", () => first.kill());
    const cut = await first.call("review_pr", {
      pr_number: 147,
      task_id: "GH-101",
      spec_assessment: ASSESS_OK,
    });
    expect(cut.kind).toBe("lost");
    expect(n.env.github.pull(147)!.merged).toBe(true);
    let st = await readState(n.env.stateDir);
    expect(st.tasks["GH-101"]!.status).toBe("merge-release");

    // A new server: its start-up recovery finishes the merge by itself (no tool call), once.
    const next = await ServerProcess.spawn("next", n.env.configFile, n.env.root);
    try {
      await next.ready();
      await vi.waitFor(
        async () => expect((await readState(n.env.stateDir)).tasks["GH-101"]!.status).toBe("done"),
        { timeout: 30_000, interval: 100 },
      );
      st = await readState(n.env.stateDir);
      expect(st.tasks["GH-102"]!.status).toBe("in-progress");
      expect((await next.call("check_messages", {})).kind).toBe("ok");
      expect(mergeCalls(n.env)).toHaveLength(1);
    } finally {
      await next.close();
    }
  });

  it("an effect GitHub refuses for good (422 on a closed PR) is recorded as refused and never retried", async () => {
    const n = await night();
    await openPr(n, { report: true });
    n.env.github.failNext({
      status: 422,
      method: "POST",
      path: "/repos/acme/webapp/pulls/147/reviews",
      body: { message: "Unprocessable Entity", errors: ["Can not approve your own pull request"] },
    });
    const r = await n.review({ pr_number: 147, spec_assessment: ASSESS_OK });
    expect(r.decision).toBe("merge");
    const st = await n.env.rt.store.read();
    const approve = st.outbox.find((e) => e.kind === "review")!;
    expect(approve).toMatchObject({ status: "failed", refused: true });
    const posts = () =>
      n.env.github.calls.filter((c) => c.method === "POST" && c.path.endsWith("/pulls/147/reviews"));
    const before = posts().length;
    for (let i = 0; i < 3; i++) await n.call("check_messages", {});
    expect(posts()).toHaveLength(before);
  });
});
