import type { Draft } from "immer";
import { EoaError } from "../../errors.js";
import { plain } from "../../state/records.js";
import type { MechanicalResults, MergeMethod, ReviewRecord, TaskRecord } from "../../state/schema.js";
import {
  ciState,
  countersForHead,
  decideReview,
  gate1,
  type CheckRunView,
  type DecisionResult,
  type SpecAssessment,
} from "../gates.js";
import { findingLine, fixRequestMessage, missingPrMessage } from "../messages.js";
import { oneLine } from "../text.js";
import { autoDispatch, type DispatchOutcome } from "./dispatch.js";
import { block, dispatchedIds, escalate } from "./escalation.js";
import { decide, effect, incident, note, notice, noteOnGitHub, syncLabels, type Step } from "./records.js";

/**
 * Rule 6, Phase 4: what a review's evidence decides (both gates, CI, mergeability, the
 * orchestrator's assessment) and what follows: a merge and the dispatch of dependents, a fix
 * request, a CI re-run, a block, or an escalation.
 */

/** The pull request as the review read it. */
export interface PullView {
  number: number;
  head_sha: string;
  head_ref: string;
  base_ref: string;
  title: string;
  body: string;
  /** null: GitHub is still computing it. */
  mergeable: boolean | null;
  mergeable_state?: string | undefined;
}

export interface ReviewEvidence {
  task_id: string;
  /** The assignment the review was started under: a task that moved meanwhile is not decided for. */
  epoch: number;
  pr: PullView;
  mechanical: MechanicalResults;
  checks: readonly CheckRunView[];
  has_workflows: boolean;
  assessment?: SpecAssessment | undefined;
  /** Merge when both gates pass (else approve only); the config's `review.auto_merge` by default. */
  merge?: boolean | undefined;
}

export interface ReviewApplied {
  result: DecisionResult;
  /** The merge effect, when the decision is to merge: the engine makes it and reports back. */
  merge_effect: string | null;
  escalation_id: string | null;
  fix_round: number | null;
  dispatched: string[];
}

export const reviewKey = (pr: { number: number; head_sha: string }) => `${pr.number}@${pr.head_sha}`;

export function reviewJudged(s: Step, e: ReviewEvidence): ReviewApplied {
  const { draft, now, config } = s;
  const t = draft.tasks[e.task_id];
  // A task requeued meanwhile keeps its epoch (it is bumped when it is dispatched again): no holder
  // or a place in the queue means it moved too.
  if (
    !t ||
    t.assignment_epoch !== e.epoch ||
    t.status === "done" ||
    t.status === "blocked" ||
    !t.assignee ||
    t.queue
  ) {
    throw new EoaError(
      "TASK_CHANGED",
      `${e.task_id} changed while its PR was reviewed (now ${t?.status ?? "gone"}, held by ${t?.assignee ?? "nobody"})`,
      "read eoa://tasks/" + e.task_id + " and call review_pr again if it still applies",
    );
  }
  const { pr, mechanical: mech } = e;
  const g1 = gate1({
    taskId: t.task_id,
    issueNumber: t.issue_number,
    pr: { title: pr.title, body: pr.body, headRef: pr.head_ref },
    files: mech.files.map((f) => f.path),
    filesInScope: t.files_in_scope,
    protectedPaths: config.review.protected_paths,
    completionCriteria: t.completion_criteria,
    assessment: e.assessment,
  });
  const ci = ciState(e.checks, e.has_workflows);
  settleReruns(s, t.task_id, pr, ci.state);
  const conflict = mech.conflicts.length > 0 || pr.mergeable === false || pr.mergeable_state === "dirty";
  const decided = decideReview({
    gate1: g1,
    gate2Findings: mech.gate2_findings,
    ci,
    conflict,
    mergeableUnknown: pr.mergeable === null && !conflict,
    effort: t.effort,
    merge: e.merge ?? config.review.auto_merge,
    counters: countersForHead(t, pr.head_sha),
    ciPollCounts: ciPollCounts(t, pr.head_sha, now, config.limits.poll_interval_seconds),
    limits: config.limits,
  });
  // Handed to a person, who merges it: its agent took other work meanwhile (rule 1's limit), so a
  // second look changes nothing but the record.
  const approvedAlready =
    t.status === "merge-release" &&
    t.review_head === pr.head_sha &&
    (decided.decision === "approve" || decided.decision === "merge");
  const result: DecisionResult =
    t.status === "human-review"
      ? {
          ...decided,
          decision: "human_review",
          reason: `it waits for a person at human review (${decided.reason})`,
        }
      : approvedAlready
        ? // Approved (and being merged, or waiting for a person to merge) already: no second approval.
          {
            ...decided,
            decision: "approve",
            reason: `approved already at ${pr.head_sha.slice(0, 12)}; waiting for the merge`,
          }
        : decided;

  t.pr_number = pr.number;
  Object.assign(t, countersForHead(t, pr.head_sha));
  t.review_head = pr.head_sha;
  const key = reviewKey(pr);
  const record: ReviewRecord = {
    key,
    pr_number: pr.number,
    head_sha: pr.head_sha,
    task_id: t.task_id,
    at: now.toISOString(),
    gate1: result.gate1,
    gate2: result.gate2,
    decision: result.decision,
    findings: result.findings,
    files_changed: mech.files.length,
    additions: mech.files.reduce((n, f) => n + f.additions, 0),
    deletions: mech.files.reduce((n, f) => n + f.deletions, 0),
    ...(mech.tests ? { tests: mech.tests } : {}),
    ...(mech.coverage ? { coverage: mech.coverage.percent } : {}),
    mechanical: mech,
  };
  draft.reviews[key] = record;
  note(s, t, "review", `PR #${pr.number}@${pr.head_sha.slice(0, 12)}: ${result.decision} (${result.reason})`);
  const decision = decide(s, {
    action: "review",
    rule: `rule 6: ${result.reason}`,
    task_id: t.task_id,
    ...(t.assignee ? { agent: t.assignee } : {}),
    inputs: {
      pr_number: pr.number,
      head_sha: pr.head_sha,
      gate1: result.gate1,
      gate2: result.gate2,
      findings: result.findings.length,
      spec_assessment: e.assessment ?? null,
    },
    outcome: result.decision,
  });
  return { result, ...applyDecision(s, decision, t, pr, result) };
}

/**
 * A CI failure that was re-run is resolved by what CI says of the same head afterwards: passed or
 * failed again, never assumed.
 */
function settleReruns(s: Step, taskId: string, pr: PullView, state: "pass" | "pending" | "fail"): void {
  if (state === "pending") return;
  // Not re-run yet: what CI says now is still the failure the re-run is for.
  if (s.draft.tasks[taskId]?.ci_rerun_due?.sha === pr.head_sha) return;
  const occurrence = `PR #${pr.number} at ${pr.head_sha.slice(0, 12)}`;
  for (const i of s.draft.incidents) {
    if (i.task_id !== taskId || i.kind !== "ci-failure" || i.resolution || i.occurrence !== occurrence)
      continue;
    if (!i.action.startsWith("re-run")) continue;
    i.resolution = state === "pass" ? "re-run passed" : "re-run failed";
  }
}

/**
 * What the agent's own work got past: an error it reported, a CI failure or a secret found on an
 * earlier head, once a later commit of its passes both gates. A re-run that passed on the same head
 * is the server's doing, never the agent's.
 */
function settleByWork(s: Step, t: Draft<TaskRecord>, pr: PullView): void {
  const agent = t.assignee;
  if (!agent) return;
  const passed = `${agent}'s commit ${pr.head_sha.slice(0, 12)} passed both gates at ${s.now.toISOString().slice(11, 16)}`;
  for (const i of s.draft.incidents) {
    if (i.task_id !== t.task_id || i.resolved_by) continue;
    const byWork =
      i.kind === "agent-error"
        ? i.agent === agent
        : (i.kind === "ci-failure" || i.kind === "security-finding") &&
          !!i.head_sha &&
          i.head_sha !== pr.head_sha &&
          i.resolution !== "re-run passed";
    if (!byWork) continue;
    i.resolution = i.resolution ? `${i.resolution}; ${passed}` : passed;
    i.resolved_by = agent;
  }
}

/** A merge conflict is never resolved here: the PR is left open and the task blocked. */
const CONFLICT = {
  kind: "merge-conflict",
  action: "not resolved automatically; queued for the user",
  current_action: "PR left open; task blocked",
};

/**
 * What review cannot settle itself (a merge conflict, fix rounds exhausted, a check no re-run can
 * clear): an incident, and a blocker escalation, which parks the task itself (labels included);
 * one merged into an open escalation leaves the blocking to us.
 */
function escalateBlocker(
  s: Step,
  t: Draft<TaskRecord>,
  c: {
    kind: string;
    occurrence: string;
    description: string;
    action: string;
    issue: string;
    context?: string;
    current_action?: string;
    raisedBy: string;
    reason: string;
  },
): string {
  const found = incident(s, {
    task_id: t.task_id,
    kind: c.kind,
    occurrence: c.occurrence,
    description: c.description,
    action: c.action,
  });
  const esc = escalate(s, {
    category: "blocker",
    task_id: t.task_id,
    issue: c.issue,
    ...(c.context ? { context: c.context } : {}),
    ...(c.current_action ? { current_action: c.current_action, reversible: true } : {}),
    raised_by: c.raisedBy,
  });
  const record = s.draft.incidents.find((i) => i.id === found);
  if (record) record.escalation_id = esc.escalation.id;
  if (t.status !== "blocked") block(s, t, `${c.reason}; ${esc.escalation.id}`, esc.decision);
  return esc.escalation.id;
}

type Applied = Omit<ReviewApplied, "result">;

function applyDecision(
  s: Step,
  decision: string,
  t: Draft<TaskRecord>,
  pr: PullView,
  result: DecisionResult,
): Applied {
  const { draft, config } = s;
  const none: Applied = { merge_effect: null, escalation_id: null, fix_round: null, dispatched: [] };
  const toReview = () => {
    if (t.status === "ai-review") return;
    t.status = "ai-review";
    syncLabels(s, decision, t.task_id);
  };
  switch (result.decision) {
    case "fix_request": {
      t.fix_rounds += 1;
      t.ci_polls = 0;
      t.status = "in-progress";
      // A secret in the diff is a security finding: an issue encountered, whatever happens next.
      const secrets = result.findings.filter((f) => f.check === "secrets");
      if (secrets.length)
        incident(s, {
          task_id: t.task_id,
          ...(t.assignee ? { agent: t.assignee } : {}),
          kind: "security-finding",
          occurrence: `review of PR #${pr.number} at ${pr.head_sha.slice(0, 12)}`,
          head_sha: pr.head_sha,
          description: `${secrets.length} possible secret(s) in the diff: ${secrets.map((f) => `${f.file ?? "?"}:${f.line ?? "?"}`).join(", ")}`,
          action: `fix request ${t.fix_rounds} sent: remove the secret and rotate it`,
        });
      const agent = draft.agents[t.assignee!]!;
      const max = config.limits.max_fix_rounds;
      notice(
        s,
        decision,
        t.task_id,
        fixRequestMessage(
          plain(t) as TaskRecord,
          agent.session,
          t.assignment_epoch,
          result.findings,
          t.fix_rounds,
          max,
        ),
      );
      const findings = `eoa-mcp review (fix round ${t.fix_rounds}/${max}):\n${result.findings.map(findingLine).join("\n")}`;
      effect(s, decision, "review", {
        pr_number: pr.number,
        sha: pr.head_sha,
        event: "COMMENT",
        body: findings,
      });
      noteOnGitHub(
        s,
        decision,
        t,
        `eoa-mcp: fixes requested on PR #${pr.number}, ${findings.slice("eoa-mcp ".length)}`,
      );
      syncLabels(s, decision, t.task_id);
      return { ...none, fix_round: t.fix_rounds };
    }
    case "escalate_fix_rounds":
      return {
        ...none,
        escalation_id: escalateBlocker(s, t, {
          kind: "fix-rounds-exhausted",
          occurrence: `review of PR #${pr.number}`,
          description: `${t.fix_rounds} fix rounds did not clear: ${result.findings.map((f) => f.check).join(", ")}`,
          action: "escalated to the user; task blocked",
          issue: `PR #${pr.number} for ${t.task_id} still fails review after ${t.fix_rounds} fix rounds`,
          context: result.findings
            .map((f) => `${f.check}: ${f.message}`)
            .join("\n")
            .slice(0, 3000),
          raisedBy: "server: max_fix_rounds",
          reason: `fix rounds exhausted (${t.fix_rounds})`,
        }),
      };
    case "ci_pending":
    case "mergeability_pending":
      if (ciPollCounts(t, pr.head_sha, s.now, config.limits.poll_interval_seconds)) {
        t.ci_polls += 1;
        t.ci_polled_at = s.now.toISOString();
      }
      toReview();
      return none;
    case "ci_blocked":
      t.ci_polls += 1;
      incident(s, {
        task_id: t.task_id,
        kind: "ci-blocked",
        occurrence: `PR #${pr.number}`,
        description: `CI stayed pending for ${t.ci_polls} polls`,
        action: "task blocked (CI blocked); other work goes on",
      });
      block(s, t, "CI blocked: checks still pending after the poll limit", decision);
      return none;
    case "ci_rerun": {
      // Seen again before the next cycle made the re-run: the same failure, counted once.
      if (t.ci_rerun_due?.sha === pr.head_sha) return none;
      t.ci_failures += 1;
      t.ci_polls = 0;
      const checks = (result.rerun ?? []).flatMap((r) =>
        r.id !== undefined ? [{ id: r.id, name: r.name }] : [],
      );
      incident(s, {
        task_id: t.task_id,
        kind: "ci-failure",
        occurrence: `PR #${pr.number} at ${pr.head_sha.slice(0, 12)}`,
        head_sha: pr.head_sha,
        description: result.findings.map((f) => f.message).join("; "),
        action: `re-run ${t.ci_failures} of ${config.limits.max_retry_attempts} due on the next poll cycle: ${checks.map((c) => c.name).join(", ")}`,
      });
      t.ci_rerun_due = { sha: pr.head_sha, pr_number: pr.number, checks, seen_at: s.now.toISOString() };
      return none;
    }
    case "ci_failed_blocked":
      t.ci_failures += 1;
      incident(s, {
        task_id: t.task_id,
        kind: "ci-failure",
        occurrence: `PR #${pr.number} at ${pr.head_sha.slice(0, 12)}`,
        head_sha: pr.head_sha,
        description: result.findings.map((f) => f.message).join("; "),
        action: "task blocked after the retry limit; other work goes on",
      });
      block(
        s,
        t,
        `CI failed ${t.ci_failures} times: ${result.findings.map((f) => f.check).join(", ")}`,
        decision,
      );
      return none;
    case "ci_not_rerunnable":
      return {
        ...none,
        escalation_id: escalateBlocker(s, t, {
          kind: "ci-failure",
          occurrence: `PR #${pr.number} at ${pr.head_sha.slice(0, 12)}`,
          description: result.findings.map((f) => f.message).join("; "),
          action: "not re-run (a re-run cannot clear it); escalated to the user, task blocked",
          issue: `CI of PR #${pr.number} for ${t.task_id} needs a person: ${result.reason}`,
          context: result.findings
            .map((f) => `${f.check}: ${f.message}${f.url ? ` (${f.url})` : ""}`)
            .join("\n")
            .slice(0, 3000),
          raisedBy: "server: CI check not re-runnable",
          reason: "CI needs a person (a check no re-run can clear)",
        }),
      };
    case "merge_conflict": {
      const files = draft.reviews[reviewKey(pr)]?.mechanical?.conflicts ?? [];
      const where = files.length ? ` in ${files.join(", ")}` : "";
      return {
        ...none,
        escalation_id: escalateBlocker(s, t, {
          ...CONFLICT,
          occurrence: `PR #${pr.number}`,
          description: `conflicts with ${pr.base_ref}${where}`,
          issue: `PR #${pr.number} for ${t.task_id} conflicts with ${pr.base_ref}${files.length ? ` (${files.join(", ")})` : ""}`,
          context: "merge conflicts are never resolved automatically",
          raisedBy: "server: merge conflict",
          reason: `merge conflict${where}`,
        }),
      };
    }
    case "awaiting_assessment":
      toReview();
      return none;
    case "human_review":
      settleByWork(s, t, pr);
      return toHumanReview(s, decision, t, pr, `both review gates passed; ${result.reason}`);
    case "approve":
    case "merge": {
      settleByWork(s, t, pr);
      // Approved at this head already: the merge (or the person merging) is awaited, not repeated.
      if (t.status === "merge-release" && t.review_head === pr.head_sha) return none;
      t.status = "merge-release";
      effect(s, decision, "review", {
        pr_number: pr.number,
        sha: pr.head_sha,
        event: "APPROVE",
        body: "eoa-mcp: both review gates passed.",
      });
      syncLabels(s, decision, t.task_id);
      if (result.decision === "approve") return none;
      const merge = effect(s, decision, "merge", {
        pr_number: pr.number,
        sha: pr.head_sha,
        method: config.review.merge_method,
        title: `${oneLine(pr.title, 200)} (#${pr.number})`,
        task_id: t.task_id,
      });
      t.merge_effect = merge;
      return { ...none, merge_effect: merge };
    }
  }
}

/** A person merges it: the task waits at human-review and its agent is free for other work. */
function toHumanReview(
  s: Step,
  decision: string,
  t: Draft<TaskRecord>,
  pr: { number: number },
  why: string,
): Applied {
  const none: Applied = { merge_effect: null, escalation_id: null, fix_round: null, dispatched: [] };
  if (t.status === "human-review") return none; // asked already: no second comment
  t.status = "human-review";
  effect(s, decision, "comment", {
    issue_number: pr.number,
    body: `eoa-mcp: ${why}. Waiting for a human to merge.`,
  });
  noteOnGitHub(s, decision, t, `eoa-mcp: PR #${pr.number} waits for a human to merge: ${why}.`);
  syncLabels(s, decision, t.task_id);
  return { ...none, dispatched: dispatchedIds(autoDispatch(s)) };
}

export interface MergeObserved {
  task_id: string;
  pr_number: number;
  head_sha: string;
  /** The merge commit; null when GitHub did not say (merged by a person, or found merged later). */
  merge_sha: string | null;
  method: MergeMethod;
  /** A person merged it on GitHub (a task at human review), not this server. */
  by_person?: boolean | undefined;
}

/** After a merge: done, capacity freed, issue closed, next task and dependents dispatched. */
export function mergeObserved(s: Step, e: MergeObserved): { dispatched: string[] } {
  const { draft, now } = s;
  const t = draft.tasks[e.task_id]!;
  if (t.status === "done") return { dispatched: [] };
  t.status = "done";
  delete t.merge_effect;
  t.merged_at = now.toISOString();
  if (e.merge_sha) t.merge_sha = e.merge_sha;
  t.completed_at = now.toISOString();
  t.progress_percent = 100;
  note(s, t, "merged", `PR #${e.pr_number}${e.merge_sha ? ` as ${e.merge_sha.slice(0, 12)}` : ""}`);
  const decision = decide(s, {
    action: "merge",
    rule: e.by_person
      ? "rule 6: at human review, a person merged the PR on GitHub"
      : "rule 6: both gates pass",
    task_id: e.task_id,
    ...(t.assignee ? { agent: t.assignee } : {}),
    inputs: { pr_number: e.pr_number, head_sha: e.head_sha, method: e.method },
    outcome: `merged${e.merge_sha ? ` as ${e.merge_sha.slice(0, 12)}` : ""}`,
  });
  syncLabels(s, decision, e.task_id);
  noteOnGitHub(
    s,
    decision,
    t,
    `eoa-mcp: PR #${e.pr_number} merged${e.merge_sha ? ` as ${e.merge_sha.slice(0, 12)}` : ""}${e.by_person ? " by a person" : ""}; ${e.task_id} is done.`,
  );
  if (t.issue_number) effect(s, decision, "close_issue", { issue_number: t.issue_number });
  const next = t.next_task_on_complete ? draft.tasks[t.next_task_on_complete] : undefined;
  if (next && next.status === "todo" && !next.assignee && !next.parked_by) {
    next.queue = {
      since: next.queue?.since ?? now.toISOString(),
      reason: `next task after ${e.task_id}`,
      ...(t.assignee ? { preferred_agent: t.assignee } : {}),
    };
  }
  return { dispatched: dispatchedIds(autoDispatch(s) satisfies DispatchOutcome[]) };
}

/**
 * Why a merge did not happen: a 405 is read for its reason (conflict, required checks, approvals,
 * else unknown), a 409 is a head that moved, anything else (GitHub down) failed.
 */
export type MergeRefusal = "conflict" | "checks" | "approvals" | "head_moved" | "failed" | "unknown";

export interface MergeRefused {
  task_id: string;
  pr: Pick<PullView, "number" | "head_sha" | "base_ref">;
  reason: MergeRefusal;
  error: string;
}

export interface MergeRefusedOutcome {
  decision: "merge_conflict" | "human_review" | "ci_pending" | "mergeability_pending" | "merge_refused";
  reason: string;
  escalation_id: string | null;
  dispatched: string[];
}

export function mergeRefused(s: Step, e: MergeRefused): MergeRefusedOutcome {
  const t = s.draft.tasks[e.task_id];
  // A refusal of an earlier approval, read late (a review and a reconciliation racing): the task
  // has moved on, and what it is now stands.
  if (
    !t ||
    t.status !== "merge-release" ||
    (t.review_head !== undefined && t.review_head !== e.pr.head_sha)
  ) {
    throw new EoaError(
      "TASK_CHANGED",
      `${e.task_id} is no longer waiting for the merge of PR #${e.pr.number} at ${e.pr.head_sha.slice(0, 12)} (now ${t?.status ?? "gone"})`,
      "read eoa://tasks/" + e.task_id + " for where it stands",
    );
  }
  delete t.merge_effect;
  const { pr, error } = e;
  const base = { escalation_id: null, dispatched: [] };
  const decision = decide(s, {
    action: "merge",
    rule: `rule 6: a refused merge is handled as what it is (${e.reason})`,
    task_id: e.task_id,
    ...(t.assignee ? { agent: t.assignee } : {}),
    inputs: { pr_number: pr.number, head_sha: pr.head_sha, refusal: e.reason, error },
    outcome: `not merged: ${e.reason}`,
  });
  note(s, t, "merge-refused", `${e.reason}: ${error}`);
  switch (e.reason) {
    case "conflict": {
      const id = escalateBlocker(s, t, {
        ...CONFLICT,
        occurrence: `merging PR #${pr.number}`,
        description: error,
        issue: `PR #${pr.number} for ${e.task_id} could not be merged: ${error}`,
        raisedBy: "server: merge refused",
        reason: `merge refused: ${error}`,
      });
      return {
        ...base,
        decision: "merge_conflict",
        reason: `merge refused (conflict): ${error}; ${id}`,
        escalation_id: id,
      };
    }
    case "approvals": {
      // Branch protection wants more approving reviews than the server's own: people must approve.
      const out = toHumanReview(
        s,
        decision,
        t,
        pr,
        `GitHub requires more approving reviews before a merge (${error})`,
      );
      return {
        ...base,
        decision: "human_review",
        reason: `merge refused: ${error}; a person must approve and merge`,
        dispatched: out.dispatched,
      };
    }
    case "checks":
      // Required checks have not passed on the head: the next review reads CI again and counts its polls.
      t.status = "ai-review";
      syncLabels(s, decision, e.task_id);
      return {
        ...base,
        decision: "ci_pending",
        reason: `merge refused: required checks have not passed (${error}); review again`,
      };
    case "head_moved":
    case "failed":
      // The review stands for a head that may no longer be the PR's, or GitHub did not answer.
      t.status = "ai-review";
      syncLabels(s, decision, e.task_id);
      return {
        ...base,
        decision: "mergeability_pending",
        reason: `merge failed (${error}): call review_pr again`,
      };
    case "unknown": {
      const id = escalateBlocker(s, t, {
        kind: "merge-refused",
        occurrence: `merging PR #${pr.number}`,
        description: error,
        action: "not merged; escalated to the user, task blocked",
        issue: `GitHub refused to merge PR #${pr.number} for ${e.task_id}: ${error}`,
        raisedBy: "server: merge refused",
        reason: `merge refused: ${error}`,
      });
      return {
        ...base,
        decision: "merge_refused",
        reason: `merge refused: ${error}; ${id}`,
        escalation_id: id,
      };
    }
  }
}

/** Rule 6: a CI poll counts once per poll interval (the seed's wait is time, not calls). */
function ciPollCounts(t: Draft<TaskRecord>, head: string, now: Date, intervalSeconds: number): boolean {
  if (t.review_head !== head || t.ci_polls === 0 || !t.ci_polled_at) return true;
  return now.getTime() - new Date(t.ci_polled_at).getTime() >= intervalSeconds * 1000;
}

export interface PrMissing {
  task_id: string;
  pr_number: number;
  repo: string;
}

/**
 * Rule 6: a completion report naming a PR GitHub does not have is not reviewed again and again: the
 * agent is told and the task goes back to it; the second such report blocks it (a blocker for the
 * user).
 */
export function prMissing(s: Step, e: PrMissing): { reported: number; escalation_id: string | null } {
  const t = s.draft.tasks[e.task_id];
  if (!t || t.status !== "ai-review" || t.pr_number !== e.pr_number || !t.assignee) {
    throw new EoaError(
      "TASK_CHANGED",
      `${e.task_id} no longer waits for review of PR #${e.pr_number}`,
      "call check_messages for what is due now",
    );
  }
  const reported = (t.missing_pr_reports = (t.missing_pr_reports ?? 0) + 1);
  if (reported >= 2) {
    const id = escalateBlocker(s, t, {
      kind: "pr-not-found",
      occurrence: `completion report ${reported} for ${t.task_id}`,
      description: `${t.assignee} reported PR #${e.pr_number}, which does not exist in ${e.repo}, ${reported} times`,
      action: "escalated to the user; task blocked",
      issue: `${t.task_id}: ${t.assignee} reported a PR that does not exist (#${e.pr_number}) twice`,
      context: `repository ${e.repo}`,
      raisedBy: "server: PR not found",
      reason: `reported PR #${e.pr_number} does not exist (twice)`,
    });
    return { reported, escalation_id: id };
  }
  const agent = s.draft.agents[t.assignee]!;
  const decision = decide(s, {
    action: "pr-not-found",
    rule: "rule 6: a completion report must name a PR that exists; the agent is told, once",
    task_id: t.task_id,
    agent: agent.id,
    inputs: { pr_number: e.pr_number, repo: e.repo, reports: reported },
    outcome: `${agent.id} told PR #${e.pr_number} does not exist; ${t.task_id} back in progress`,
  });
  notice(
    s,
    decision,
    t.task_id,
    missingPrMessage(plain(t) as TaskRecord, agent.session, t.assignment_epoch, e.pr_number, e.repo),
  );
  delete t.pr_number;
  t.status = "in-progress";
  note(s, t, "pr-not-found", `PR #${e.pr_number} does not exist`);
  syncLabels(s, decision, t.task_id);
  return { reported, escalation_id: null };
}
