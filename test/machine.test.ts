import { produce, type Patch } from "immer";
import { describe, expect, it } from "vitest";
import { actionsDue } from "../src/engine/actions-due.js";
import { EoaError } from "../src/errors.js";
import type { Classified } from "../src/protocol/classify.js";
import type { CheckRunView } from "../src/protocol/gates.js";
import { reduce, step, type EventOf } from "../src/protocol/machine/index.js";
import { emptyState, type EffectRecord, type MechanicalResults, type State } from "../src/state/schema.js";
import { SHA, env, night, run, testConfig } from "./fixtures/machine.js";

/**
 * The state machine with plain data: a state, one event, the config and the time in; the new state,
 * the effects and the decisions out. No store, no clients, no clock.
 */

const msg = (from: string, classified: Classified, id = `m-${Math.random().toString(36).slice(2)}`) => ({
  id,
  from,
  subject: "",
  classified,
});

const cycle = (messages: ReturnType<typeof msg>[], online: string[] | null = ["dev-1", "dev-2"]) =>
  ({ type: "poll-cycle", messages, online: online ? new Set(online) : null, inbox_read: true }) as const;

const mech = (over: Partial<MechanicalResults> = {}): MechanicalResults => ({
  files: [{ path: "src/app.py", additions: 5, deletions: 1 }],
  gate2_findings: [],
  commands: [],
  conflicts: [],
  ...over,
});

function review(
  state: State,
  taskId: string,
  over: {
    checks?: CheckRunView[];
    mechanical?: MechanicalResults;
    assess?: boolean;
    mergeable?: boolean | null;
    head?: string;
  } = {},
): EventOf<"review-judged"> {
  const t = state.tasks[taskId]!;
  return {
    type: "review-judged",
    task_id: taskId,
    epoch: t.assignment_epoch,
    pr: {
      number: t.pr_number ?? 7,
      head_sha: over.head ?? SHA,
      head_ref: `feature/${taskId}`,
      base_ref: "main",
      title: `${taskId}: work`,
      body: `Closes ${taskId}`,
      mergeable: over.mergeable === undefined ? true : over.mergeable,
    },
    mechanical: over.mechanical ?? mech(),
    checks: over.checks ?? [{ id: 11, name: "test", status: "completed", conclusion: "success" }],
    has_workflows: true,
    ...(over.assess === false
      ? {}
      : { assessment: { implements_request: true, no_scope_creep: true, interface_contract_met: true } }),
  };
}

/** A running night whose user gave `directive`. */
function emptyNight(directive: string): State {
  let { state } = run(emptyState(), [
    { type: "roster-synced" },
    { type: "session-proposed", specs: [{ task_id: "GH-1", title: "Task GH-1" }], directive },
  ]);
  state = run(state, [{ type: "session-approved", session_id: state.current_session_id! }]).state;
  return state;
}

/** A night whose only agent is dev-1, GH-1 assigned to it. */
function soloNight() {
  const config = testConfig({ agents: [{ id: "dev-1", capabilities: ["python"] }] });
  const state = run(
    night(["GH-1"], { config }),
    [{ type: "assign-requested", request: { task_id: "GH-1" } }],
    0,
    config,
  ).state;
  return { config, state };
}

/** GitHub's refusal of the merge of GH-1's PR #7. */
const mergeRefused = (
  reason: "conflict" | "checks" | "approvals" | "unknown" | "failed",
  error: string = reason,
) =>
  ({
    type: "merge-refused",
    task_id: "GH-1",
    pr: { number: 7, head_sha: SHA, base_ref: "main" },
    reason,
    error,
  }) as const;

/** GH-1 assigned to dev-1, acknowledged, reported done with PR #7. */
function inReview(): State {
  let s = night();
  s = run(s, [{ type: "assign-requested", request: { task_id: "GH-1", agent: "dev-1" } }]).state;
  s = run(s, [
    cycle([msg("dev-1", { kind: "completion", task_id: "GH-1", pr_number: 7, note: "done" })]),
  ]).state;
  return s;
}

const effectsOf = (state: State, ids: readonly string[]) => state.outbox.filter((e) => ids.includes(e.id));
const messagesTo = (state: State, ids: readonly string[], to: string) =>
  effectsOf(state, ids).filter(
    (e): e is Extract<EffectRecord, { kind: "message" }> =>
      e.kind === "message" && e.payload.message.to === to,
  );

function refusal(fn: () => unknown): EoaError {
  try {
    fn();
  } catch (err) {
    if (err instanceof EoaError) return err;
    throw err;
  }
  throw new Error("no refusal");
}

describe("rule 1: assignment", () => {
  it("dispatches to a capable agent with room, with a new epoch, a message and a label sync", () => {
    const s = night();
    const { last } = run(s, [{ type: "assign-requested", request: { task_id: "GH-1" } }]);
    expect(last.result).toMatchObject({ status: "dispatched", agent: "dev-1", epoch: 1 });
    expect(last.state.tasks["GH-1"]).toMatchObject({
      status: "in-progress",
      assignee: "dev-1",
      assignment_epoch: 1,
    });
    expect(effectsOf(last.state, last.effects).map((e) => e.kind)).toEqual(["message", "labels"]);
    expect(last.state.decisions.at(-1)).toMatchObject({
      action: "assign",
      rule: expect.stringMatching(/^rule 1/),
    });
  });

  it("queues a task whose dependency is not done, and dispatches it when the dependency merges", () => {
    let s = night(["GH-1", "GH-2"], { depends: { "GH-2": ["GH-1"] } });
    const queued = run(s, [{ type: "assign-requested", request: { task_id: "GH-2" } }]);
    expect(queued.last.result).toMatchObject({ status: "queued", reason: expect.stringContaining("GH-1") });
    s = run(queued.state, [{ type: "assign-requested", request: { task_id: "GH-1", agent: "dev-1" } }]).state;
    const merged = run(s, [
      {
        type: "merge-observed",
        task_id: "GH-1",
        pr_number: 7,
        head_sha: SHA,
        merge_sha: "b".repeat(40),
        method: "squash",
      },
    ]);
    expect(merged.last.result.dispatched).toEqual(["GH-2"]);
    expect(merged.state.tasks["GH-1"]!.status).toBe("done");
    expect(merged.state.tasks["GH-2"]).toMatchObject({ status: "in-progress" });
  });

  it("never gives an agent more than its limit: the rest wait in the queue", () => {
    const config = testConfig({
      agents: [{ id: "dev-1", capabilities: ["python"], max_concurrent_tasks: 1 }],
    });
    const s = night(["GH-1", "GH-2"], { config });
    const { state, last } = run(
      s,
      [
        { type: "assign-requested", request: { task_id: "GH-1" } },
        { type: "assign-requested", request: { task_id: "GH-2" } },
      ],
      0,
      config,
    );
    expect(last.result).toMatchObject({ status: "queued" });
    expect(state.tasks["GH-2"]!.queue?.reason).toMatch(/limit|room|capacity/);
  });

  it("refuses a task that is held, and changes nothing", () => {
    const s = run(night(), [{ type: "assign-requested", request: { task_id: "GH-1" } }]).state;
    const err = refusal(() => step(s, { type: "assign-requested", request: { task_id: "GH-1" } }, env()));
    expect(err.code).toBe("TASK_ALREADY_ASSIGNED");
  });
});

describe("rule 2: messages about a task from an agent that no longer holds it", () => {
  it("are quarantined, not acted on", () => {
    const s = run(night(), [
      { type: "assign-requested", request: { task_id: "GH-1", agent: "dev-1" } },
    ]).state;
    const { state, last } = run(s, [
      cycle([msg("dev-2", { kind: "completion", task_id: "GH-1", pr_number: 9, note: "" })]),
    ]);
    expect(last.result.applied[0]).toMatchObject({ outcome: "quarantined" });
    expect(state.tasks["GH-1"]).toMatchObject({ status: "in-progress", assignee: "dev-1" });
    expect(state.tasks["GH-1"]!.pr_number).toBeUndefined();
  });
});

describe("rule 3: acknowledgement", () => {
  it("reminds once after the timeout, then moves the task to another agent", () => {
    let s = run(night(), [{ type: "assign-requested", request: { task_id: "GH-1", agent: "dev-1" } }]).state;
    const reminded = run(s, [cycle([])], 5);
    expect(messagesTo(reminded.state, reminded.last.effects, "dev-1")[0]!.payload.message.subject).toMatch(
      /REMINDER/,
    );
    s = reminded.state;
    const moved = run(s, [cycle([])], 8);
    expect(moved.state.tasks["GH-1"]).toMatchObject({ assignee: "dev-2", previous_assignees: ["dev-1"] });
    expect(messagesTo(moved.state, moved.last.effects, "dev-1")[0]!.payload.message.subject).toMatch(/STOP/);
  });
});

describe("rule 3 with no other agent", () => {
  it("sends the task again to the same agent only when no other may take it, and the decision says so", () => {
    const solo = soloNight();
    const config = solo.config;
    let s = solo.state;
    s = run(s, [cycle([], ["dev-1"])], 5, config).state;
    const { state, last } = run(s, [cycle([], ["dev-1"])], 8, config);
    expect(state.tasks["GH-1"]).toMatchObject({
      assignee: "dev-1",
      assignment_epoch: 2,
      status: "in-progress",
    });
    expect(state.decisions.find((d) => d.action === "reassign")).toMatchObject({
      rule: expect.stringContaining("no other eligible agent"),
      outcome: "sent again to dev-1, the only agent that may take it",
    });
    expect(last.result.changes).toContain("sent GH-1 again to dev-1: no other agent may take it");
  });
});

describe("rules 4-5: heartbeats and offline agents", () => {
  it("an agent that comes back resolves its offline incident with what happened", () => {
    let s = run(night(), [{ type: "agent-offline-reported", agent: "dev-1", reason: "gone" }], 1).state;
    expect(s.incidents.at(-1)).toMatchObject({ kind: "agent-offline", agent: "dev-1" });
    expect(s.incidents.at(-1)!.resolution).toBeUndefined();
    s = run(s, [cycle([], ["dev-1", "dev-2"])], 2).state;
    expect(s.incidents.at(-1)!.resolution).toBe("dev-1 back at 22:02 (online in AI Maestro)");
  });

  it("ten cycles within one poll interval count once: no agent goes offline for quick calls", () => {
    let s = run(night(), [{ type: "assign-requested", request: { task_id: "GH-1", agent: "dev-1" } }]).state;
    s = run(s, [cycle([msg("dev-1", { kind: "ack", task_id: "GH-1" })])]).state;
    const before = s.cycle.count;
    for (let i = 1; i <= 10; i++) s = run(s, [cycle([], ["dev-2"])], 1 + i * 0.05).state;
    expect(s.cycle.count).toBe(before + 1);
    expect(s.agents["dev-1"]).toMatchObject({ availability: "active", missed_heartbeats: 1 });
    // An uncounted cycle with nothing new changes nothing at all.
    const quiet = run(s, [cycle([], ["dev-2"])], 1.9);
    expect(quiet.state).toBe(s);
  });

  it("records a gap when no cycle ran for more than two intervals", () => {
    let s = run(night(), [cycle([], ["dev-1", "dev-2"])], 1).state;
    s = run(s, [cycle([], ["dev-1", "dev-2"])], 2).state;
    expect(s.cycle.gaps ?? []).toEqual([]);
    s = run(s, [cycle([], ["dev-1", "dev-2"])], 480).state;
    expect(s.cycle.gaps).toEqual([{ from: "2026-01-05T22:02:00.000Z", to: "2026-01-06T06:00:00.000Z" }]);
  });

  it("takes an agent offline after the threshold of missed cycles and hands its task to its backup", () => {
    let s = run(night(), [{ type: "assign-requested", request: { task_id: "GH-1", agent: "dev-1" } }]).state;
    s = run(s, [cycle([msg("dev-1", { kind: "ack", task_id: "GH-1" })])]).state;
    for (let i = 1; i <= 2; i++) s = run(s, [cycle([], ["dev-2"])], i).state;
    expect(s.agents["dev-1"]).toMatchObject({ availability: "active", missed_heartbeats: 2 });
    const { state, last } = run(s, [cycle([], ["dev-2"])], 3);
    expect(state.agents["dev-1"]!.availability).toBe("offline");
    expect(state.tasks["GH-1"]).toMatchObject({ assignee: "dev-2", assignment_epoch: 2 });
    expect(messagesTo(state, last.effects, "dev-2")[0]!.payload.message.subject).toMatch(/handoff/);
    expect(state.incidents.at(-1)).toMatchObject({
      kind: "agent-offline",
      action: "GH-1 reassigned to dev-2",
    });
  });

  it("with no agent left: halts the session and pages the user, whatever the directive", () => {
    const s = night();
    const { state } = run(s, [
      { type: "agent-offline-reported", agent: "dev-1", reason: "test" },
      { type: "agent-offline-reported", agent: "dev-2", reason: "test" },
    ]);
    expect(state.sessions[0]!.status).toBe("halted");
    expect(state.escalations.at(-1)).toMatchObject({ category: "infrastructure", level: "immediate" });
  });

  it("an offline agent holding nothing is recorded as such, not as having its tasks reassigned", () => {
    const { state } = run(night(), [{ type: "agent-offline-reported", agent: "dev-2", reason: "test" }]);
    expect(state.incidents.at(-1)).toMatchObject({
      occurrence: "holding no task",
      action: "no task to reassign",
    });
  });
});

describe("rule 5: every agent offline", () => {
  it("pages the user (urgent, user channel) even under 'Escalate only for security issues', and waits for the answer", () => {
    const directive = "Escalate only for security issues";
    let { state } = run(emptyNight(directive), [
      { type: "agent-offline-reported", agent: "dev-1", reason: "test" },
      { type: "agent-offline-reported", agent: "dev-2", reason: "test" },
    ]);
    const esc = state.escalations.at(-1)!;
    expect(esc).toMatchObject({
      category: "infrastructure",
      level: "immediate",
      channel: "user-notification-channel",
    });
    expect(state.sessions[0]).toMatchObject({ status: "halted", halted_by: esc.id });
    // An agent comes back: the night still waits for the user's answer.
    state = run(state, [cycle([msg("dev-1", { kind: "heartbeat" })], ["dev-1"])]).state;
    expect(state.agents["dev-1"]!.availability).toBe("active");
    expect(state.sessions[0]!.status).toBe("halted");
    // The answer resumes it.
    state = run(state, [
      { type: "escalation-answered", escalation_id: esc.id, decision: "agents restarted" },
    ]).state;
    expect(state.sessions[0]!.status).toBe("running");
  });
});

describe("rule 6: review", () => {
  it("both gates pass: approve and merge (effects), then the merge completes the task", () => {
    const s = inReview();
    const judged = run(s, [review(s, "GH-1")]);
    expect(judged.last.result.result.decision).toBe("merge");
    const kinds = effectsOf(judged.state, judged.last.effects).map((e) => e.kind);
    expect(kinds).toEqual(["review", "labels", "merge"]);
    expect(judged.state.tasks["GH-1"]!.status).toBe("merge-release");
  });

  /** GH-1 approved and its merge decided; `after` must leave it where the merge completes it. */
  const mergeStillCompletes = (after: (approved: State) => State) => {
    const s = inReview();
    const approved = run(s, [review(s, "GH-1")]).state;
    expect(approved.tasks["GH-1"]!.status).toBe("merge-release");
    const state = after(approved);
    expect(state.tasks["GH-1"]).toMatchObject({ status: "merge-release", assignee: "dev-1" });
    const merged = run(state, [
      {
        type: "merge-observed",
        task_id: "GH-1",
        pr_number: 147,
        head_sha: SHA,
        merge_sha: "b".repeat(40),
        method: "squash",
      },
    ]).state;
    expect(merged.tasks["GH-1"]!.status).toBe("done");
    return state;
  };

  it("an agent going offline while its task's merge is decided leaves the task in merge-release (found by the crash test, seed 3186040173)", () => {
    mergeStillCompletes((approved) => {
      const off = run(approved, [{ type: "agent-offline-reported", agent: "dev-1", reason: "gone" }]);
      expect(off.last.result.reassigned).toEqual([]);
      return off.state;
    });
  });

  it("an escalation about a task whose merge is decided does not park it (crash test, seed 2436656047)", () => {
    const state = mergeStillCompletes(
      (approved) =>
        run(approved, [
          {
            type: "escalation-raised",
            input: { category: "security", task_id: "GH-1", issue: "a key in the diff", raised_by: "dev-1" },
          },
        ]).state,
    );
    expect(state.escalations.at(-1)).toMatchObject({ level: "immediate", parked_tasks: [] });
  });

  it("an agent's [BLOCKED] about a task whose merge is decided is escalated, not blocked", () => {
    const state = mergeStillCompletes(
      (approved) =>
        run(approved, [cycle([msg("dev-1", { kind: "blocked", task_id: "GH-1", note: "cannot go on" })])], 1)
          .state,
    );
    expect(state.escalations.at(-1)).toMatchObject({ category: "blocker", task_id: "GH-1" });
  });

  it("without an assessment the server never merges", () => {
    const s = inReview();
    const { last } = run(s, [review(s, "GH-1", { assess: false })]);
    expect(last.result.result.decision).toBe("awaiting_assessment");
    expect(effectsOf(last.state, last.effects).some((e) => e.kind === "merge")).toBe(false);
  });

  it("a failed check that a re-run can clear is re-run by name on the next poll cycle, and the decision names it", () => {
    const s = inReview();
    const red = [{ id: 41, name: "test", status: "completed", conclusion: "failure" }];
    const { state, last } = run(s, [review(s, "GH-1", { checks: red })], 1);
    expect(last.result.result.decision).toBe("ci_rerun");
    expect(state.decisions.at(-1)!.rule).toContain('"test" re-run on the next poll cycle');
    // Not in the call that saw it: nothing is re-run yet, and seeing it again counts nothing.
    expect(effectsOf(state, last.effects).some((e) => e.kind === "rerun")).toBe(false);
    const again = run(state, [review(state, "GH-1", { checks: red })], 1).state;
    expect(again.tasks["GH-1"]!.ci_failures).toBe(1);
    // The next counted cycle makes it.
    const next = run(again, [cycle([])], 2);
    const rerun = effectsOf(next.state, next.last.effects).find((e) => e.kind === "rerun");
    expect(rerun?.payload).toMatchObject({ checks: [{ id: 41, name: "test" }] });
    expect(next.state.decisions.find((d) => d.action === "ci-rerun")).toMatchObject({
      outcome: expect.stringMatching(/^re-run test on PR #\d+$/),
    });
    expect(next.state.tasks["GH-1"]!.ci_rerun_due).toBeUndefined();
  });

  it("action_required cannot be re-run: escalated and blocked, never reported as re-run", () => {
    const s = inReview();
    const { state, last } = run(s, [
      review(s, "GH-1", {
        checks: [{ id: 42, name: "deploy", status: "completed", conclusion: "action_required" }],
      }),
    ]);
    expect(last.result.result.decision).toBe("ci_not_rerunnable");
    expect(effectsOf(state, last.effects).some((e) => e.kind === "rerun")).toBe(false);
    expect(state.tasks["GH-1"]!.status).toBe("blocked");
    expect(state.escalations.at(-1)).toMatchObject({ category: "blocker" });
    expect(JSON.stringify(state.decisions)).not.toMatch(/re-run(ning)? "deploy"|failed jobs re-run/);
    expect(state.incidents.at(-1)!.action).toMatch(/^not re-run/);
  });

  it("a re-run is resolved by what CI says of the same head afterwards", () => {
    let s = inReview();
    s = run(s, [
      review(s, "GH-1", { checks: [{ id: 41, name: "test", status: "completed", conclusion: "failure" }] }),
    ]).state;
    expect(s.incidents.at(-1)!.resolution).toBeUndefined();
    s = run(s, [cycle([])], 1).state; // the re-run is made
    s = run(s, [review(s, "GH-1")], 1).state;
    expect(s.incidents.at(-1)!.resolution).toBe("re-run passed");
  });

  it("CI pending: counted once per poll interval, blocked as CI blocked past ci_poll_attempts", () => {
    let s = inReview();
    const pending = [{ id: 1, name: "test", status: "in_progress", conclusion: null }];
    for (let i = 0; i < 5; i++) s = run(s, [review(s, "GH-1", { checks: pending })], i).state;
    expect(s.tasks["GH-1"]).toMatchObject({ status: "ai-review", ci_polls: 5 });
    s = run(s, [review(s, "GH-1", { checks: pending })], 5).state;
    expect(s.tasks["GH-1"]).toMatchObject({
      status: "blocked",
      blocked_reason: expect.stringMatching(/CI blocked/),
    });
  });

  it("ten reviews of a pending PR within one poll interval count one CI poll and never block it", () => {
    let s = inReview();
    const pending = [{ id: 1, name: "test", status: "in_progress", conclusion: null }];
    for (let i = 0; i < 10; i++) s = run(s, [review(s, "GH-1", { checks: pending })], i * 0.09).state;
    expect(s.tasks["GH-1"]).toMatchObject({ status: "ai-review", ci_polls: 1 });
    s = run(s, [review(s, "GH-1", { checks: pending })], 1).state;
    expect(s.tasks["GH-1"]!.ci_polls).toBe(2);
  });

  it("code findings go back to the agent as a fix request naming them", () => {
    const s = inReview();
    const finding = {
      gate: 2 as const,
      check: "secrets",
      file: "key.pem",
      line: 1,
      message: "possible private key",
    };
    const { state, last } = run(s, [review(s, "GH-1", { mechanical: mech({ gate2_findings: [finding] }) })]);
    expect(last.result.result.decision).toBe("fix_request");
    const fix = messagesTo(state, last.effects, "dev-1")[0]!;
    expect(fix.payload.message.content.message).toContain("key.pem:1");
    expect(state.tasks["GH-1"]).toMatchObject({ status: "in-progress", fix_rounds: 1 });
    // A secret found by the review gate is an issue encountered (issue 13), not only a fix request.
    expect(state.incidents.at(-1)).toMatchObject({
      kind: "security-finding",
      task_id: "GH-1",
      description: "1 possible secret(s) in the diff: key.pem:1",
      action: "fix request 1 sent: remove the secret and rotate it",
    });
  });

  it("a security escalation is an issue encountered too", () => {
    const s = run(inReview(), [
      {
        type: "escalation-raised",
        input: {
          category: "security",
          task_id: "GH-1",
          issue: "SQL injection in the login query",
          raised_by: "dev-1",
        },
      },
    ]).state;
    expect(s.incidents.at(-1)).toMatchObject({
      kind: "security-finding",
      description: "SQL injection in the login query",
      action: "escalated (immediate); GH-1 parked",
      // The report reads whether the page went out from the escalation itself.
      escalation_id: expect.stringMatching(/^esc-\d+$/),
    });
  });

  it("a merge conflict is never resolved: blocked, with a deferred escalation", () => {
    const s = inReview();
    const { state, last } = run(s, [review(s, "GH-1", { mechanical: mech({ conflicts: ["src/app.py"] }) })]);
    expect(last.result.result.decision).toBe("merge_conflict");
    expect(state.tasks["GH-1"]).toMatchObject({ status: "blocked", previous_status: "ai-review" });
    expect(state.escalations.at(-1)).toMatchObject({ category: "blocker", level: "deferred" });
  });
});

describe("a merge refused with 405 is handled as what it is", () => {
  const refused = (reason: "conflict" | "checks" | "approvals" | "unknown", error: string) => {
    let s = inReview();
    s = run(s, [review(s, "GH-1")]).state;
    return run(s, [mergeRefused(reason, error)]);
  };

  it("missing approvals: a person approves and merges (human-review), not a conflict", () => {
    const { state, last } = refused(
      "approvals",
      "At least 2 approving reviews are required by reviewers with write access.",
    );
    expect(last.result.decision).toBe("human_review");
    expect(state.tasks["GH-1"]!.status).toBe("human-review");
    expect(state.escalations).toHaveLength(0);
    expect(state.incidents.some((i) => i.kind === "merge-conflict")).toBe(false);
  });

  it("failing required checks: back to review, where CI is read again", () => {
    const { state, last } = refused("checks", 'Required status check "ci" is failing.');
    expect(last.result.decision).toBe("ci_pending");
    expect(state.tasks["GH-1"]!.status).toBe("ai-review");
  });

  it("a conflict: blocked with a merge-conflict escalation", () => {
    const { state, last } = refused("conflict", "Pull Request is not mergeable");
    expect(last.result.decision).toBe("merge_conflict");
    expect(state.tasks["GH-1"]!.status).toBe("blocked");
    expect(state.incidents.at(-1)!.kind).toBe("merge-conflict");
  });

  it("an unknown refusal: blocked and escalated with GitHub's words", () => {
    const { state, last } = refused("unknown", "Repository rule violations found");
    expect(last.result.decision).toBe("merge_refused");
    expect(state.escalations.at(-1)!.issue).toContain("Repository rule violations found");
  });
});

describe("rules 7-8: blocking, escalation and the user's answer", () => {
  it("security is immediate under any directive; architecture is deferred; duplicates merge", () => {
    let s = run(night(), [{ type: "assign-requested", request: { task_id: "GH-1", agent: "dev-1" } }]).state;
    const { state } = run(s, [
      cycle([
        msg("dev-1", { kind: "escalation", task_id: "GH-1", category: "security", note: "SQL injection" }),
        msg("dev-1", { kind: "escalation", task_id: "GH-1", category: "architecture", note: "which ORM?" }),
        msg("dev-1", {
          kind: "escalation",
          task_id: "GH-1",
          category: "architecture",
          note: "which ORM, again?",
        }),
      ]),
    ]);
    s = state;
    expect(s.escalations.map((e) => [e.category, e.level, e.occurrences])).toEqual([
      ["security", "immediate", 1],
      ["architecture", "deferred", 2],
    ]);
    expect(s.tasks["GH-1"]).toMatchObject({ status: "blocked", previous_status: "in-progress" });
  });

  it("the user's answer unparks the task back to its column", () => {
    let s = run(night(), [{ type: "assign-requested", request: { task_id: "GH-1", agent: "dev-1" } }]).state;
    s = run(s, [
      cycle([msg("dev-1", { kind: "escalation", task_id: "GH-1", category: "security", note: "leak" })]),
    ]).state;
    const id = s.escalations[0]!.id;
    const { state, last } = run(s, [
      { type: "escalation-answered", escalation_id: id, decision: "rotate the key" },
    ]);
    expect(last.result.unparked).toEqual(["GH-1"]);
    expect(state.tasks["GH-1"]).toMatchObject({ status: "in-progress", assignee: "dev-1" });
    expect(state.tasks["GH-1"]!.parked_by).toBeUndefined();
  });
});

describe("rule 5b: instructions and moving one task", () => {
  it("instructions go to the holder under its epoch, recorded as a decision", () => {
    const s = run(night(), [
      { type: "assign-requested", request: { task_id: "GH-1", agent: "dev-1" } },
    ]).state;
    const { state, last } = run(s, [
      {
        type: "instructions-sent",
        task_id: "GH-1",
        instructions: "Use the existing session store.",
        in_reply_to: "esc-001",
      },
    ]);
    const [m] = messagesTo(state, last.effects, "dev-1");
    expect(m!.payload.message.content.context).toMatchObject({
      type: "instructions",
      assignment_epoch: 1,
      in_reply_to: "esc-001",
    });
    expect(state.decisions.at(-1)).toMatchObject({ action: "instruct", task_id: "GH-1", agent: "dev-1" });
  });

  it("instructions for a task nobody holds are refused", () => {
    const err = refusal(() =>
      step(night(), { type: "instructions-sent", task_id: "GH-1", instructions: "x" }, env()),
    );
    expect(err.code).toBe("TASK_NOT_HELD");
  });

  it("one task moves to another agent: stop notice, handoff, new epoch; never back to its holder", () => {
    const s = run(night(), [
      { type: "assign-requested", request: { task_id: "GH-1", agent: "dev-1" } },
    ]).state;
    const { state, last } = run(s, [
      { type: "reassign-requested", task_id: "GH-1", reason: "publickey denied" },
    ]);
    expect(last.result).toMatchObject({ from: "dev-1", to: "dev-2", epoch: 2 });
    expect(messagesTo(state, last.effects, "dev-1")[0]!.payload.message.subject).toMatch(/STOP/);
    expect(messagesTo(state, last.effects, "dev-2")[0]!.payload.message.subject).toMatch(/handoff/);
    expect(state.tasks["GH-1"]).toMatchObject({ assignee: "dev-2", previous_assignees: ["dev-1"] });
    expect(
      refusal(() =>
        step(state, { type: "reassign-requested", task_id: "GH-1", agent: "dev-2", reason: "x" }, env()),
      ).code,
    ).toBe("SAME_AGENT");
  });

  it("is refused, changing nothing, when no other agent may take it", () => {
    const { config, state: s } = soloNight();
    const err = refusal(() =>
      step(s, { type: "reassign-requested", task_id: "GH-1", reason: "x" }, env(0, config)),
    );
    expect(err.code).toBe("NO_ELIGIBLE_AGENT");
  });
});

describe("found by the property test", () => {
  it("a task at human review stays there when reviewed again (it would take a slot its agent gave up)", () => {
    let s = inReview();
    s = run(s, [review(s, "GH-1")]).state;
    s = run(s, [mergeRefused("approvals", "Review required")]).state;
    expect(s.tasks["GH-1"]!.status).toBe("human-review");
    const again = run(s, [review(s, "GH-1")]);
    expect(again.last.result.result.decision).toBe("human_review");
    expect(again.state.tasks["GH-1"]!.status).toBe("human-review");
    expect(effectsOf(again.state, again.last.effects)).toEqual([]);
  });

  it("an assignment message that fails after the task moved on does not undo the work", () => {
    const assigned = run(night(), [
      { type: "assign-requested", request: { task_id: "GH-1", agent: "dev-1" } },
    ]);
    const msgId = assigned.last.effects[0]!;
    let s = run(assigned.state, [
      cycle([msg("dev-1", { kind: "completion", task_id: "GH-1", pr_number: 7, note: "" })]),
    ]).state;
    s = run(s, [
      {
        type: "effects-settled",
        outcomes: [{ id: msgId, kind: "message", ok: false, error: "late timeout" }],
      },
    ]).state;
    expect(s.tasks["GH-1"]).toMatchObject({ status: "ai-review", assignee: "dev-1" });
  });

  it("a handoff whose message fails puts the task in the queue as todo, whatever column it had reached", () => {
    let s = inReview();
    const off = run(s, [{ type: "agent-offline-reported", agent: "dev-1", reason: "test" }]);
    s = off.state;
    expect(s.tasks["GH-1"]).toMatchObject({ assignee: "dev-2", status: "ai-review" });
    const handoff = effectsOf(s, off.last.effects).find(
      (e) => e.kind === "message" && e.payload.purpose === "assignment",
    )!;
    s = run(s, [
      { type: "effects-settled", outcomes: [{ id: handoff.id, kind: "message", ok: false, error: "down" }] },
    ]).state;
    expect(s.tasks["GH-1"]).toMatchObject({ status: "todo", queue: expect.anything() });
  });
});

describe("the outbox kept small, cheaply", () => {
  // Done message effects, their bodies gone as a night leaves them, and one pending with its body.
  const withOutbox = (done: number) => {
    const s = structuredClone(night());
    const at = "2026-01-01T00:00:00.000Z";
    for (let i = 0; i < done + 1; i++) {
      s.outbox.push({
        id: `eff-${i}`,
        decision: "dec-0001",
        kind: "message",
        status: i < done ? "done" : "pending",
        attempts: i < done ? 1 : 0,
        created_at: at,
        payload: {
          message: {
            to: "dev-1",
            subject: `s${i}`,
            priority: "normal",
            ...(i < done ? {} : { content: { type: "notification", message: "x".repeat(200), context: {} } }),
          },
          purpose: "notice",
        },
        // A done message's body is pruned, as the outbox leaves it: not an OutboundMessage any more.
      } as unknown as EffectRecord);
    }
    return s;
  };
  const settle = (s: State, id: string) => {
    let patches: Patch[] = [];
    const next = produce(
      s,
      (d) => {
        reduce(d, { type: "effects-settled", outcomes: [{ id, kind: "message", ok: true }] }, env());
      },
      (p) => (patches = p),
    );
    return { next, patches };
  };

  it("a settled effect changes its own entry, not the whole outbox (a 65 KB journal line per call before)", () => {
    const { next, patches } = settle(withOutbox(250), "eff-250");
    expect(patches.every((p) => p.path[0] !== "outbox" || p.path.length > 1)).toBe(true);
    expect(JSON.stringify(patches).length).toBeLessThan(1_000);
    expect(next.outbox.find((e) => e.id === "eff-250")).toMatchObject({
      status: "done",
      payload: { message: { to: "dev-1" } },
    });
    expect(next.outbox.find((e) => e.id === "eff-250")!.payload).not.toHaveProperty("message.content");
  });

  it("done effects past 200 are dropped in batches, the oldest first, once there are 100 more", () => {
    const { next } = settle(withOutbox(300), "eff-300");
    const done = next.outbox.filter((e) => e.status === "done");
    expect(done).toHaveLength(200);
    expect(done[0]!.id).toBe("eff-101");
  });
});

describe("found by review: late merge outcomes and second approvals", () => {
  const inMergeRelease = () => {
    const s = inReview();
    return run(s, [review(s, "GH-1")]).state;
  };

  it("a late refusal (a reconciliation racing the review) leaves a blocked task blocked", () => {
    let s = inMergeRelease();
    s = run(s, [mergeRefused("conflict")]).state;
    expect(s.tasks["GH-1"]).toMatchObject({ status: "blocked" });
    expect(refusal(() => step(s, mergeRefused("failed"), env(1))).code).toBe("TASK_CHANGED");
  });

  it("a late refusal never reopens a merged task", () => {
    let s = inMergeRelease();
    s = run(s, [
      {
        type: "merge-observed",
        task_id: "GH-1",
        pr_number: 7,
        head_sha: SHA,
        merge_sha: "b".repeat(40),
        method: "squash",
      },
    ]).state;
    expect(refusal(() => step(s, mergeRefused("failed"), env(1))).code).toBe("TASK_CHANGED");
  });

  it("an approved task reviewed again at the same head gets no second APPROVE and no second merge", () => {
    let s = inReview();
    s = run(s, [{ ...review(s, "GH-1"), merge: false }]).state;
    expect(s.tasks["GH-1"]!.status).toBe("merge-release");
    const again = run(s, [{ ...review(s, "GH-1"), merge: false }]);
    expect(effectsOf(again.state, again.last.effects)).toEqual([]);
    const auto = run(s, [review(s, "GH-1")]);
    expect(effectsOf(auto.state, auto.last.effects).some((e) => e.kind === "merge")).toBe(false);
  });
});

describe("rule 10 and the outbox: every effect has its decision", () => {
  it("an assignment whose message failed is not an assignment: the task goes back", () => {
    const s = night();
    const assigned = run(s, [{ type: "assign-requested", request: { task_id: "GH-1" } }]);
    const msgId = assigned.last.effects[0]!;
    const { state } = run(assigned.state, [
      { type: "effects-settled", outcomes: [{ id: msgId, kind: "message", ok: false, error: "hub down" }] },
    ]);
    expect(state.tasks["GH-1"]).toMatchObject({ status: "todo" });
    expect(state.tasks["GH-1"]!.assignee).toBeUndefined();
    expect(state.decisions.at(-1)).toMatchObject({ action: "revert-assignment" });
  });

  it("every effect names a decision that exists", () => {
    const s = inReview();
    const { state } = run(s, [review(s, "GH-1")]);
    const ids = new Set(state.decisions.map((d) => d.id));
    expect(state.outbox.length).toBeGreaterThan(3);
    for (const e of state.outbox) expect(ids.has(e.decision)).toBe(true);
  });

  it("a step never changes the state it was given", () => {
    const s = inReview();
    const before = JSON.stringify(s);
    step(s, review(s, "GH-1"), env());
    expect(JSON.stringify(s)).toBe(before);
  });
});

describe("rule 5b: an agent's question or error report has a move (issue 12)", () => {
  const held = () =>
    run(night(["GH-1"]), [{ type: "assign-requested", request: { task_id: "GH-1", agent: "dev-1" } }]).state;
  const due = (s: State) => actionsDue(s).actions.map((a) => `${a.tool} ${JSON.stringify(a.arguments)}`);

  it("a question is the orchestrator's to judge now: deferred for the user, the task goes on, send_instructions due", () => {
    const q = msg(
      "dev-1",
      { kind: "escalation", category: "architecture", task_id: "GH-1", note: "Redis or Memcached?" },
      "m-q",
    );
    const s = run(held(), [cycle([q])], 1).state;
    expect(s.tasks["GH-1"]).toMatchObject({
      status: "in-progress",
      awaiting: { kind: "question", message_id: "m-q" },
    });
    expect(s.escalations.at(-1)).toMatchObject({
      level: "deferred",
      category: "architecture",
      parked_tasks: [],
    });
    expect(due(s)).toContain('send_instructions {"task_id":"GH-1","in_reply_to":"m-q"}');
    const answered = run(
      s,
      [{ type: "instructions-sent", task_id: "GH-1", instructions: "Use Redis", in_reply_to: "m-q" }],
      2,
    ).state;
    expect(answered.tasks["GH-1"]!.awaiting).toBeUndefined();
    expect(due(answered).some((a) => a.startsWith("send_instructions"))).toBe(false);
  });

  it("a question from an agent that says it stopped parks the task until the answer", () => {
    const q = msg("dev-1", {
      kind: "escalation",
      category: "dependency",
      task_id: "GH-1",
      note: "Which version? I have stopped until I hear back",
      stopped: true,
    });
    const s = run(held(), [cycle([q])], 1).state;
    expect(s.tasks["GH-1"]).toMatchObject({ status: "blocked", parked_by: s.escalations.at(-1)!.id });
  });

  it("errors are read for their kind: environment → reassign_task, the task's own → send_instructions, three in the ack window → mark_agent_offline", () => {
    const env1 = msg(
      "dev-1",
      { kind: "error", task_id: "GH-1", note: "git push: Permission denied (publickey)" },
      "m-e1",
    );
    let s = run(held(), [cycle([env1])], 1).state;
    expect(due(s)).toContain(
      `reassign_task {"task_id":"GH-1","reason":"dev-1's environment failed (message m-e1)"}`,
    );
    expect(s.decisions.at(-1)).toMatchObject({ action: "error-report", inputs: { kind: "environment" } });
    const own = msg(
      "dev-1",
      { kind: "error", task_id: "GH-1", note: "TypeError in src/auth.py line 4" },
      "m-e2",
    );
    s = run(s, [cycle([own])], 2).state;
    expect(due(s)).toContain('send_instructions {"task_id":"GH-1","in_reply_to":"m-e2"}');
    const fixed = run(
      s,
      [{ type: "instructions-sent", task_id: "GH-1", instructions: "fix the import", in_reply_to: "m-e2" }],
      2,
    ).state;
    // What the orchestrator did is the action taken; only the agent's work resolves it.
    expect(fixed.incidents.at(-1)).toMatchObject({
      kind: "agent-error",
      action: "fix instructions sent to dev-1",
    });
    expect(fixed.incidents.at(-1)!.resolution).toBeUndefined();
    expect(due(s).some((a) => a.startsWith("mark_agent_offline"))).toBe(false);
    const third = msg("dev-1", { kind: "error", task_id: "GH-1", note: "tests fail again" }, "m-e3");
    s = run(s, [cycle([third])], 3).state;
    expect(due(s)).toContain(
      'mark_agent_offline {"agent":"dev-1","reason":"3 error reports in a short time"}',
    );
    s = run(s, [{ type: "agent-offline-reported", agent: "dev-1", reason: "errors" }], 4).state;
    expect(s.agents["dev-1"]!.failing).toBeUndefined();
    expect(due(s).some((a) => a.startsWith("mark_agent_offline"))).toBe(false);
  });

  it("errors spread beyond the ack window do not take an agent offline", () => {
    let s = held();
    for (const [i, at] of [1, 7, 13].entries())
      s = run(
        s,
        [cycle([msg("dev-1", { kind: "error", task_id: "GH-1", note: `flaky test ${i}` })])],
        at,
      ).state;
    expect(s.agents["dev-1"]!.failing).toBeUndefined();
  });
});

describe("the facts the morning report states, recorded where they happen (issue 13)", () => {
  const red = [{ id: 41, name: "test", status: "completed", conclusion: "failure" }];
  const LATER = "b".repeat(40);
  const secret = { gate: 2 as const, check: "secrets", file: "key.pem", line: 1, message: "possible key" };

  it("a re-run that passed is the server's doing, never counted as the agent's work", () => {
    let s = inReview();
    s = run(s, [review(s, "GH-1", { checks: red })]).state;
    s = run(s, [cycle([])], 1).state; // the re-run is made
    s = run(s, [review(s, "GH-1")], 1).state;
    expect(s.tasks["GH-1"]!.status).toBe("merge-release");
    const ci = s.incidents.find((i) => i.kind === "ci-failure")!;
    expect(ci).toMatchObject({ resolution: "re-run passed", head_sha: SHA });
    expect(ci.resolved_by).toBeUndefined();
  });

  it("a secret found on one head is resolved by the agent when a later commit of its passes both gates", () => {
    let s = inReview();
    s = run(s, [review(s, "GH-1", { mechanical: mech({ gate2_findings: [secret] }) })]).state;
    expect(s.incidents.at(-1)!.resolved_by).toBeUndefined();
    // The same head again resolves nothing: only new work does.
    s = run(
      s,
      [cycle([msg("dev-1", { kind: "completion", task_id: "GH-1", pr_number: 7, note: "fixed" })])],
      1,
    ).state;
    s = run(s, [review(s, "GH-1", { head: LATER })], 1).state;
    expect(s.incidents.find((i) => i.kind === "security-finding")).toMatchObject({
      resolved_by: "dev-1",
      resolution: `dev-1's commit ${LATER.slice(0, 12)} passed both gates at 22:01`,
    });
  });

  it("an agent's error is resolved by its work once the task passes both gates, after the fix instructions", () => {
    let s = inReview();
    s = run(
      s,
      [cycle([msg("dev-1", { kind: "error", task_id: "GH-1", note: "TypeError in src/a.py" }, "m-e")])],
      1,
    ).state;
    s = run(
      s,
      [{ type: "instructions-sent", task_id: "GH-1", instructions: "fix it", in_reply_to: "m-e" }],
      1,
    ).state;
    s = run(s, [review(s, "GH-1", { head: LATER })], 2).state;
    expect(s.incidents.find((i) => i.kind === "agent-error")).toMatchObject({
      resolved_by: "dev-1",
      action: "fix instructions sent to dev-1",
      resolution: expect.stringMatching(/^dev-1's commit b{12} passed both gates/),
    });
  });

  it("an escalation's delivery is dated when the hub accepts it: 'paged at' is a fact, never assumed", () => {
    const r = run(inReview(), [
      {
        type: "escalation-raised",
        input: { category: "security", task_id: "GH-1", issue: "SQL injection", raised_by: "dev-1" },
      },
    ]);
    const esc = r.state.escalations.at(-1)!;
    expect(esc.delivery).toMatchObject({ status: "pending" });
    expect(esc.delivery.delivered_at).toBeUndefined();
    const sent = r.state.outbox.find((e) => e.kind === "message" && e.payload.purpose === "escalation")!;
    const after = run(
      r.state,
      [
        {
          type: "effects-settled",
          outcomes: [{ id: sent.id, kind: "message", ok: true, result: { message_id: "x" } }],
        },
      ],
      3,
    ).state;
    expect(after.escalations.at(-1)!.delivery).toMatchObject({
      status: "delivered",
      delivered_at: "2026-01-05T22:03:00.000Z",
    });
  });

  it("progress is recorded as the agent's claim: who, when, what percent; a completion does not rewrite it", () => {
    let s = night();
    s = run(s, [{ type: "assign-requested", request: { task_id: "GH-1", agent: "dev-1" } }]).state;
    s = run(
      s,
      [cycle([msg("dev-1", { kind: "progress", task_id: "GH-1", percent: 50, note: "half" })])],
      2,
    ).state;
    s = run(
      s,
      [cycle([msg("dev-1", { kind: "completion", task_id: "GH-1", pr_number: 7, note: "done" })])],
      3,
    ).state;
    expect(s.tasks["GH-1"]!.progress_claim).toEqual({
      by: "dev-1",
      at: "2026-01-05T22:02:00.000Z",
      percent: 50,
    });
  });

  it("an offline agent's incident names every task it held, and the page it caused", () => {
    const config = testConfig({
      agents: [{ id: "dev-1", capabilities: ["python"], max_concurrent_tasks: 3 }],
    });
    let s = night(["GH-1", "GH-2"], { config });
    for (const id of ["GH-1", "GH-2"])
      s = run(s, [{ type: "assign-requested", request: { task_id: id } }], 0, config).state;
    s = run(s, [{ type: "agent-offline-reported", agent: "dev-1", reason: "gone" }], 1, config).state;
    const inc = s.incidents.find((i) => i.kind === "agent-offline")!;
    expect(inc.task_id).toBeUndefined();
    expect(inc.tasks).toEqual(["GH-1", "GH-2"]);
    expect(inc.escalation_id).toBe(s.escalations.at(-1)!.id);
  });

  it("every queue decision names the agent it waits for, or says none is chosen", () => {
    const s = night(["GH-1", "GH-2"], { depends: { "GH-2": ["GH-1"] } });
    const named = run(s, [{ type: "assign-requested", request: { task_id: "GH-2", agent: "dev-2" } }]).state;
    expect(named.decisions.at(-1)!.outcome).toBe("queued for dev-2: waiting for GH-1");
    const none = run(s, [{ type: "assign-requested", request: { task_id: "GH-2" } }]).state;
    expect(none.decisions.at(-1)!.outcome).toBe("queued, no agent chosen: waiting for GH-1");
  });
});

describe("a task's history is capped (issue 16)", () => {
  const entries = (n: number, event = "progress") =>
    Array.from({ length: n }, (_, i) => ({
      at: `2026-01-05T22:${String(i % 60).padStart(2, "0")}:00.000Z`,
      event,
      detail: `${i}`,
    }));

  it("archives whole pages of 100 of the oldest, keeping the latest 200 and the first of each kind", async () => {
    const { historyToArchive } = await import("../src/protocol/machine/history.js");
    expect(historyToArchive({ history: entries(299) })).toEqual([]);
    const h = [{ at: "t0", event: "created" }, ...entries(349)];
    // 148 older than the latest 200 besides the created entry and the first progress report: one page.
    expect(historyToArchive({ history: h })).toEqual(Array.from({ length: 100 }, (_, i) => i + 2));
    const longer = [...h, ...entries(150)];
    expect(historyToArchive({ history: longer })).toEqual(Array.from({ length: 200 }, (_, i) => i + 2));
  });

  it("an entry's detail is one line of at most 300 characters: the answer it quotes is in its record", () => {
    let s = run(night(), [{ type: "assign-requested", request: { task_id: "GH-1", agent: "dev-1" } }]).state;
    s = run(s, [
      cycle([msg("dev-1", { kind: "escalation", task_id: "GH-1", category: "security", note: "leak" })]),
    ]).state;
    const answer = `rotate the key\n${"and then some more words ".repeat(150)}`;
    s = run(s, [
      { type: "escalation-answered", escalation_id: s.escalations[0]!.id, decision: answer },
    ]).state;
    const unparked = s.tasks["GH-1"]!.history.findLast((h) => h.event === "unparked")!;
    expect(unparked.detail).toHaveLength(300);
    expect(unparked.detail).toMatch(/^esc-\d+ resolved: rotate the key and then some [^\n]*…$/);
    expect(s.escalations[0]!.resolution!.decision).toBe(answer);
  });

  it("lets go only of the batch the archive holds, once: a batch archived by another process first changes nothing", () => {
    let s = night();
    s = run(s, [{ type: "assign-requested", request: { task_id: "GH-1", agent: "dev-1" } }]).state;
    const grown = produce(s, (d) => {
      d.tasks["GH-1"]!.history.push(...entries(400));
    });
    const len = grown.tasks["GH-1"]!.history.length;
    const once = run(grown, [{ type: "history-archived", task_id: "GH-1", from: 0, count: 100 }]).state;
    expect(once.tasks["GH-1"]!.history.length).toBe(len - 100);
    expect(once.tasks["GH-1"]!.history_archived).toBe(100);
    const again = run(once, [{ type: "history-archived", task_id: "GH-1", from: 0, count: 100 }]).state;
    expect(again.tasks["GH-1"]).toEqual(once.tasks["GH-1"]);
    // Only whole pages leave the state.
    const part = run(once, [{ type: "history-archived", task_id: "GH-1", from: 100, count: 50 }]).state;
    expect(part.tasks["GH-1"]).toEqual(once.tasks["GH-1"]);
  });

  it("a page holds the same entries whoever archives it, however much the history grew meanwhile", async () => {
    const { historyToArchive } = await import("../src/protocol/machine/history.js");
    const h = [{ at: "t0", event: "created" }, ...entries(349)];
    const grown = [...h, ...entries(1000, "review")];
    expect(historyToArchive({ history: grown }).slice(0, 100)).toEqual(historyToArchive({ history: h }));
  });
});

describe("what the state forgets (issue 16)", () => {
  it("a counted cycle forgets processed message ids after 7 days and call results after 24 hours, and keeps the rest", () => {
    const at = (hours: number) =>
      new Date(Date.parse("2026-01-05T22:00:00Z") - hours * 3600_000).toISOString();
    const s = produce(night(), (d) => {
      for (const [id, h] of [
        ["m-old", 8 * 24],
        ["m-new", 24],
      ] as const)
        d.messages[id] = { id, at: at(h), from: "dev-1", subject: "", kind: "progress", outcome: "applied" };
      for (const [id, h] of [
        ["assign_task:old", 25],
        ["assign_task:new", 1],
      ] as const)
        d.idempotency[id] = { tool: "assign_task", status: "done", at: at(h), result: {} };
    });
    const after = run(s, [cycle([])], 0).state;
    expect(Object.keys(after.messages)).toEqual(["m-new"]);
    expect(Object.keys(after.idempotency)).toEqual(["assign_task:new"]);
    // An uncounted cycle (within the interval) writes nothing, forgetting included.
    const again = run(
      produce(
        after,
        (d) => void (d.messages["m-old"] = { ...d.messages["m-new"]!, id: "m-old", at: at(200) }),
      ),
      [cycle([])],
      0.5,
    );
    expect(Object.keys(again.state.messages)).toContain("m-old");
  });
});
