import picomatch from "picomatch";
import type { Effort, Finding, GateStatus } from "../state/schema.js";

/**
 * Rule 6: the two review gates and the decision they lead to, from plain data. The review engine
 * gathers the evidence (GitHub, the worktree, the orchestrator's assessment); this decides.
 */

export interface SpecAssessment {
  implements_request: boolean;
  no_scope_creep: boolean;
  interface_contract_met: boolean;
  notes?: string | undefined;
}

export interface Gate1Input {
  taskId: string;
  issueNumber?: number | undefined;
  pr: { title: string; body: string; headRef: string };
  files: readonly string[];
  filesInScope: readonly string[];
  protectedPaths: readonly string[];
  completionCriteria: readonly string[];
  assessment?: SpecAssessment | undefined;
}

export interface Gate1Result {
  /** `pending` when only the orchestrator's assessment is missing. */
  status: GateStatus;
  findings: Finding[];
  /** Protected paths touched: never merged without a human. */
  protectedTouched: string[];
}

export function gate1(input: Gate1Input): Gate1Result {
  const findings: Finding[] = [];
  const text = `${input.pr.title}\n${input.pr.body}\n${input.pr.headRef}`;
  const idPattern = new RegExp(`\\b${escapeRegExp(input.taskId)}\\b`, "i");
  const referenced =
    idPattern.test(text) ||
    (input.issueNumber !== undefined && new RegExp(`#${input.issueNumber}\\b`).test(text));
  if (!referenced) {
    findings.push({
      gate: 1,
      check: "task_reference",
      message: `the PR does not reference ${input.taskId}${input.issueNumber ? ` or #${input.issueNumber}` : ""} in its title, body or branch`,
    });
  }
  if (input.filesInScope.length) {
    const inScope = picomatch([...input.filesInScope], { dot: true });
    for (const f of input.files) {
      if (!inScope(f)) {
        findings.push({
          gate: 1,
          check: "scope",
          file: f,
          message: `${f} is outside the task's declared scope (${input.filesInScope.join(", ")})`,
        });
      }
    }
  }
  const isProtected = input.protectedPaths.length
    ? picomatch([...input.protectedPaths], { dot: true })
    : () => false;
  const protectedTouched = input.files.filter((f) => isProtected(f));
  const unchecked = [...input.pr.body.matchAll(/^\s*[-*]\s+\[ \]\s+(.+)$/gm)].map((m) => m[1]!.trim());
  for (const item of unchecked) {
    findings.push({
      gate: 1,
      check: "completion_criteria",
      message: `the PR's checklist leaves "${item}" unchecked`,
    });
  }
  const a = input.assessment;
  if (a) {
    const notes = a.notes ? `: ${a.notes}` : "";
    if (!a.implements_request)
      findings.push({
        gate: 1,
        check: "implements_request",
        message: `the PR does not implement what was asked${notes}`,
      });
    if (!a.no_scope_creep)
      findings.push({ gate: 1, check: "no_scope_creep", message: `the PR goes beyond the task${notes}` });
    if (!a.interface_contract_met)
      findings.push({
        gate: 1,
        check: "interface_contract",
        message: `the interface contract is not met${notes}`,
      });
  }
  const status: GateStatus = findings.length ? "fail" : a ? "pass" : "pending";
  return { status, findings, protectedTouched };
}

export type CiState = "pass" | "pending" | "fail";

export interface CheckRunView {
  /** GitHub's check run id: what a re-run names. */
  id?: number | undefined;
  name: string;
  status: string;
  conclusion: string | null;
  url?: string | null | undefined;
  summary?: string | null | undefined;
}

/**
 * GitHub's check-run conclusions, decided once: which count as a failure, and which a re-run of the
 * check can clear. `action_required` waits for a person (e.g. approving a workflow run from a
 * fork) and `stale` for the app behind the check: re-running them is not the server's to do. A
 * conclusion GitHub adds later counts as a failure that cannot be re-run until it is listed here.
 */
export const CI_CONCLUSIONS: Readonly<Record<string, { failed: boolean; rerunnable: boolean }>> = {
  success: { failed: false, rerunnable: false },
  neutral: { failed: false, rerunnable: false },
  skipped: { failed: false, rerunnable: false },
  failure: { failed: true, rerunnable: true },
  timed_out: { failed: true, rerunnable: true },
  cancelled: { failed: true, rerunnable: true },
  startup_failure: { failed: true, rerunnable: true },
  action_required: { failed: true, rerunnable: false },
  stale: { failed: true, rerunnable: false },
};

export function conclusionOf(conclusion: string | null): { failed: boolean; rerunnable: boolean } {
  return Object.hasOwn(CI_CONCLUSIONS, conclusion ?? "")
    ? CI_CONCLUSIONS[conclusion!]!
    : { failed: true, rerunnable: false };
}

/** Check runs on the head SHA: all completed and successful, some still running, or some failed. */
export function ciState(
  runs: readonly CheckRunView[],
  hasWorkflows: boolean,
): { state: CiState; failed: CheckRunView[]; pending: CheckRunView[] } {
  if (runs.length === 0) return { state: hasWorkflows ? "pending" : "pass", failed: [], pending: [] };
  const pending = runs.filter((r) => r.status !== "completed");
  const failed = runs.filter((r) => r.status === "completed" && conclusionOf(r.conclusion).failed);
  return { state: failed.length ? "fail" : pending.length ? "pending" : "pass", failed, pending };
}

export interface Gate2Input {
  commands: Array<{
    name: "test" | "lint" | "coverage";
    command: string;
    exitCode: number | null;
    timedOut: boolean;
    outputTail: string;
  }>;
  coverage: { percent: number; source: string } | null;
  coverageThreshold: number;
  coverageRequired: boolean;
  secrets: Array<{ file: string; line: number; kind: string; excerpt: string }>;
  diffTruncated: boolean;
}

/** The local half of Gate 2 (worktree commands, coverage, secrets); CI and mergeability are separate states. */
export function gate2Local(input: Gate2Input): Finding[] {
  const findings: Finding[] = [];
  for (const c of input.commands) {
    if (c.exitCode === 0 && !c.timedOut) continue;
    findings.push({
      gate: 2,
      check: c.name,
      message: c.timedOut
        ? `\`${c.command}\` did not finish in time and was stopped`
        : `\`${c.command}\` exited with ${c.exitCode ?? "a signal"}`,
      log_tail: c.outputTail.slice(-2000),
    });
  }
  if (input.coverageRequired) {
    if (!input.coverage) {
      findings.push({
        gate: 2,
        check: "coverage",
        message: "no coverage report was produced (coverage/coverage-summary.json or lcov.info)",
      });
    } else if (input.coverage.percent < input.coverageThreshold) {
      findings.push({
        gate: 2,
        check: "coverage",
        message: `coverage ${input.coverage.percent.toFixed(1)}% is below the ${input.coverageThreshold}% threshold (${input.coverage.source})`,
      });
    }
  }
  for (const s of input.secrets) {
    findings.push({
      gate: 2,
      check: "secrets",
      file: s.file,
      line: s.line,
      message: `possible ${s.kind} committed: ${s.excerpt}`,
    });
  }
  if (input.diffTruncated) {
    findings.push({
      gate: 2,
      check: "secrets",
      message: "the diff is too large to scan completely for secrets; split the PR",
    });
  }
  return findings;
}

export type ReviewDecision =
  | "merge"
  | "approve"
  | "human_review"
  | "awaiting_assessment"
  | "fix_request"
  | "escalate_fix_rounds"
  | "ci_pending"
  | "ci_blocked"
  | "ci_rerun"
  | "ci_not_rerunnable"
  | "ci_failed_blocked"
  | "merge_conflict"
  | "mergeability_pending";

export interface DecisionInput {
  gate1: Gate1Result;
  gate2Findings: Finding[];
  ci: { state: CiState; failed: CheckRunView[] };
  conflict: boolean;
  /** GitHub is still computing mergeability. */
  mergeableUnknown: boolean;
  effort?: Effort | undefined;
  merge: boolean;
  counters: { fix_rounds: number; ci_polls: number; ci_failures: number };
  /** A CI poll counts at most once per poll interval: calls in between count nothing. */
  ciPollCounts: boolean;
  limits: { max_fix_rounds: number; ci_poll_attempts: number; max_retry_attempts: number };
}

type ReviewCounters = DecisionInput["counters"];

/**
 * The counters a review of `headSha` starts from: fix rounds run for the task, CI polls and
 * failures count against one head (a new push starts them afresh).
 */
export function countersForHead(
  task: ReviewCounters & { review_head?: string | undefined },
  headSha: string,
): ReviewCounters {
  const sameHead = task.review_head === headSha;
  return {
    fix_rounds: task.fix_rounds,
    ci_polls: sameHead ? task.ci_polls : 0,
    ci_failures: sameHead ? task.ci_failures : 0,
  };
}

export interface DecisionResult {
  decision: ReviewDecision;
  gate1: GateStatus;
  gate2: GateStatus;
  findings: Finding[];
  reason: string;
  /** With `ci_rerun`: the failed checks to run again. */
  rerun?: CheckRunView[];
}

/**
 * The order matters: a conflict is never resolved automatically; code-level findings go back to
 * the agent before CI is waited on; CI must pass before anything merges; the orchestrator's
 * assessment is the last gate; large or protected work stops at a human.
 */
export function decideReview(i: DecisionInput): DecisionResult {
  const ciFindings: Finding[] = i.ci.failed.map((r) => ({
    gate: 2,
    check: r.name,
    message: `CI check "${r.name}" concluded ${r.conclusion}${r.summary ? `: ${r.summary}` : ""}`,
    ...(r.url ? { url: r.url } : {}),
  }));
  const codeFindings = [...i.gate1.findings, ...i.gate2Findings];
  const gate2: GateStatus =
    i.gate2Findings.length || i.ci.state === "fail" || i.conflict
      ? "fail"
      : i.ci.state === "pending" || i.mergeableUnknown
        ? "pending"
        : "pass";
  const base = { gate1: i.gate1.status, gate2 };

  if (i.conflict) {
    return {
      ...base,
      decision: "merge_conflict",
      findings: codeFindings,
      reason: "the PR conflicts with its base branch: never resolved automatically",
    };
  }
  if (codeFindings.length) {
    const all = [...codeFindings, ...ciFindings];
    if (i.counters.fix_rounds >= i.limits.max_fix_rounds) {
      return {
        ...base,
        decision: "escalate_fix_rounds",
        findings: all,
        reason: `${i.counters.fix_rounds} fix rounds already used (max ${i.limits.max_fix_rounds})`,
      };
    }
    return {
      ...base,
      decision: "fix_request",
      findings: all,
      reason: `${codeFindings.length} finding(s) to fix`,
    };
  }
  if (i.ci.state === "fail") {
    const stuck = i.ci.failed.filter((r) => !conclusionOf(r.conclusion).rerunnable);
    if (stuck.length) {
      return {
        ...base,
        decision: "ci_not_rerunnable",
        findings: ciFindings,
        reason: `CI check(s) ${stuck.map((r) => `"${r.name}" (${r.conclusion ?? "no conclusion"})`).join(", ")} failed in a way a re-run cannot clear: escalated, not re-run`,
      };
    }
    if (i.counters.ci_failures + 1 > i.limits.max_retry_attempts) {
      return {
        ...base,
        decision: "ci_failed_blocked",
        findings: ciFindings,
        reason: `CI failed ${i.counters.ci_failures + 1} times (retries allowed: ${i.limits.max_retry_attempts})`,
      };
    }
    return {
      ...base,
      decision: "ci_rerun",
      findings: ciFindings,
      rerun: i.ci.failed,
      reason: `CI failed (failure ${i.counters.ci_failures + 1} of ${i.limits.max_retry_attempts} allowed retries): ${i.ci.failed.map((r) => `"${r.name}"`).join(", ")} re-run on the next poll cycle`,
    };
  }
  if (i.ci.state === "pending" || i.mergeableUnknown) {
    const polls = i.counters.ci_polls + (i.ciPollCounts ? 1 : 0);
    if (polls > i.limits.ci_poll_attempts) {
      return {
        ...base,
        decision: "ci_blocked",
        findings: [],
        reason: `CI still pending after ${polls} polls (max ${i.limits.ci_poll_attempts}): CI blocked`,
      };
    }
    return {
      ...base,
      decision: i.ci.state === "pending" ? "ci_pending" : "mergeability_pending",
      findings: [],
      reason:
        i.ci.state === "pending"
          ? `CI pending (poll ${Math.max(polls, 1)} of ${i.limits.ci_poll_attempts}${i.ciPollCounts ? "" : ", counted once per poll interval"})`
          : "GitHub is still computing mergeability",
    };
  }
  if (i.gate1.status === "pending") {
    return {
      ...base,
      decision: "awaiting_assessment",
      findings: [],
      reason: "every mechanical check passed; the orchestrator's spec_assessment decides Gate 1",
    };
  }
  if (i.effort === "l" || i.effort === "xl" || i.gate1.protectedTouched.length) {
    return {
      ...base,
      decision: "human_review",
      findings: [],
      reason: i.gate1.protectedTouched.length
        ? `touches protected paths (${i.gate1.protectedTouched.join(", ")}): a human merges it`
        : `a ${i.effort} task: a human merges it`,
    };
  }
  return { ...base, decision: i.merge ? "merge" : "approve", findings: [], reason: "both gates pass" };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
