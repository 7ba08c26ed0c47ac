import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Surroundings } from "../src/sim/environment.js";
import { nightSurroundings, ORCHESTRATOR } from "./fixtures/night-checks.js";
import { ServerProcess } from "./fixtures/server-process.js";

/**
 * Issue 12 end to end through the built CLI over stdio, against the loopback stand-ins: each branch
 * of the monitoring loop leaves its message in the agent's inbox, its note and label on GitHub, its
 * decision in eoa://decisions and its line in the report.
 */

let sur: Surroundings;
let p: ServerProcess;

beforeAll(async () => {
  sur = await nightSurroundings();
  p = await ServerProcess.spawn("branches", sur.configFile, sur.root);
  await p.ready();
});
afterAll(async () => {
  await p?.close();
  await sur?.close();
});

async function ok(name: string, args: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  const r = await p.call(name, args);
  if (r.kind !== "ok") throw new Error(`${name}: ${JSON.stringify(r)}`);
  return r.data;
}

function say(from: string, text: string, context: Record<string, unknown> = {}): string {
  return sur.aimaestro.inject({
    from,
    to: ORCHESTRATOR,
    subject: text.slice(0, 80),
    content: { type: "message", message: text, context },
  }).id;
}

const inbox = (agent: string) => sur.aimaestro.messagesFor(agent).map((m) => m.subject);
type Due = Array<{ tool: string; task_id: string | null; arguments: Record<string, unknown> }>;
async function due(): Promise<Due> {
  return (await ok("check_messages")).actions_due as Due;
}
async function decisions(): Promise<Array<{ action: string; task_id?: string; outcome: string }>> {
  const view = (await p.readResource("eoa://decisions")) as {
    decisions: Array<{ action: string; task_id?: string; outcome: string }>;
  };
  return view.decisions;
}

describe("every branch of the monitoring loop, through the real CLI", () => {
  it("a question, an environment error, a bogus PR and a block each have their move and leave their marks", async () => {
    const confirm = await ok("start_session", {
      tasks: [
        { task_id: "B-1", title: "Login", required_capabilities: ["ts"], issue_number: 101 },
        { task_id: "B-2", title: "Reset", required_capabilities: ["ts"], issue_number: 102 },
      ],
    });
    await ok("start_session", { session_id: confirm.session_id, approve: true });
    await ok("assign_task", { task_id: "B-1", agent: "dev-a" });
    await ok("assign_task", { task_id: "B-2", agent: "dev-a" });

    // A question: answered by the orchestrator, the task goes on.
    const q = say("dev-a", "[ESCALATION] B-1 architecture: one table or two for sessions?", {
      category: "architecture",
      task_id: "B-1",
    });
    let actions = await due();
    const answer = actions.find((a) => a.tool === "send_instructions" && a.task_id === "B-1");
    expect(answer?.arguments).toEqual({ task_id: "B-1", in_reply_to: q });
    await ok("send_instructions", { ...answer!.arguments, instructions: "One table; keep it reversible." });
    expect(inbox("dev-a").some((s) => s.startsWith("INSTRUCTIONS: B-1"))).toBe(true);

    // An error in the agent's own environment: the task moves to another agent.
    say("dev-a", "[ERROR] B-2 git push: Permission denied (publickey)", { task_id: "B-2" });
    actions = await due();
    const move = actions.find((a) => a.tool === "reassign_task" && a.task_id === "B-2");
    expect(move).toBeDefined();
    const moved = await ok("reassign_task", move!.arguments);
    expect(moved.from).toBe("dev-a");
    expect(inbox(String(moved.to)).some((s) => s.includes("B-2"))).toBe(true);
    expect(inbox("dev-a").some((s) => s.startsWith("STOP: B-2"))).toBe(true);

    // A completion report naming a PR GitHub does not have: told once, no review loop.
    say("dev-a", "[DONE] B-1 PR #999", { task_id: "B-1", pr_number: 999 });
    actions = await due();
    expect(actions.find((a) => a.tool === "review_pr")?.arguments).toMatchObject({ pr_number: 999 });
    expect(await ok("review_pr", { pr_number: 999 })).toMatchObject({ decision: "pr_not_found" });
    expect(inbox("dev-a").some((s) => s.startsWith("PR NOT FOUND: #999 for B-1"))).toBe(true);
    expect((await due()).some((a) => a.tool === "review_pr")).toBe(false);

    // A real PR whose check cannot be re-run: blocked, with a note on the issue and the PR, and the PR labelled.
    const sha = await sur.repo.pushPullRequest(150, "feature/login", {
      "src/login.ts": "export const ok = 1;\n",
    });
    sur.github.addPull({
      number: 150,
      title: "B-1: Login",
      body: "Implements B-1.",
      headSha: sha,
      headRef: "feature/login",
    });
    sur.github.setCheckRuns(sha, [{ name: "deploy", status: "completed", conclusion: "action_required" }]);
    say("dev-a", "[DONE] B-1 PR #150", { task_id: "B-1", pr_number: 150 });
    await due();
    const judged = await ok("review_pr", { pr_number: 150 });
    expect(judged).toMatchObject({ decision: "ci_not_rerunnable", task_status: "blocked" });
    const noted = (n: number) =>
      sur.github.issue(n)!.comments.filter((c) => c.body.includes("B-1 is blocked"));
    expect(noted(101)).toHaveLength(1);
    expect(noted(150)).toHaveLength(1);
    expect(sur.github.issue(150)!.labels).toContain("eoa:blocked");

    // Each branch is in the decision log and in the report.
    const log = await decisions();
    for (const action of ["escalate", "instruct", "error-report", "reassign", "pr-not-found", "review"])
      expect(
        log.some((d) => d.action === action),
        action,
      ).toBe(true);
    const report = String((await ok("write_report", { session_id: confirm.session_id })).markdown);
    expect(report).toMatch(/instruct B-1 \(dev-a\): instructions sent to dev-a/);
    expect(report).toMatch(/error-report B-2 \(dev-a\): reassign_task due/);
    expect(report).toMatch(/pr-not-found B-1 \(dev-a\): dev-a told PR #999 does not exist/);
    expect(report).toMatch(/\*\*Action Taken\*\*: reassigned from dev-a to dev-[bc]/);
  });
});
