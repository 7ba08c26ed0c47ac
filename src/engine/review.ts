import { assertRefName, type DiffText } from "../clients/git.js";
import type { GitHubPull } from "../clients/github.js";
import { EoaError, isEoaError } from "../errors.js";
import type { DecisionResult, SpecAssessment } from "../protocol/gates.js";
import {
  reviewKey,
  type MergeRefusal,
  type PullView,
  type ReviewApplied,
} from "../protocol/machine/index.js";
import { cap, oneLine } from "../protocol/text.js";
import { diffPages } from "../review/diff-pages.js";
import type { Finding, MechanicalResults, ReviewRecord, State, TaskRecord } from "../state/schema.js";
import { runMechanical } from "./mechanical.js";
import { withReviewClaim } from "./review-claim.js";
import type { Runtime } from "./runtime.js";

/**
 * Phase 4: the two-gate review of a PR (rule 6). This shell gathers the evidence (the PR, the
 * mechanical results cached by head SHA, CI on the head, the orchestrator's assessment), hands it to
 * the state machine, which decides and records, then makes the effects; a merge's outcome goes back
 * to the machine as `merge-observed` or `merge-refused`.
 */

export interface ReviewArgs {
  pr_number: number;
  task_id?: string | undefined;
  spec_assessment?: SpecAssessment | undefined;
  merge?: boolean | undefined;
}

export interface ReviewContext {
  progress(message: string): Promise<void>;
  signal: AbortSignal;
}

export interface ReviewPacket {
  pr: { number: number; title: string; url: string; head_sha: string; base: string; body: string };
  diff_stat: { files: number; additions: number; deletions: number };
  files: Array<{ path: string; additions: number; deletions: number }>;
  /** The diff's first page of per-file patches; the rest by `next` (eoa://reviews/{pr}/diff/{page}). */
  diff: { page: number; pages: number; text: string; next: string | null; truncated: boolean } | null;
  completion_criteria: string[];
  test_requirements: string[];
  files_in_scope: string[];
  instructions: string;
}

export interface ReviewOutcome {
  pr_number: number;
  task_id: string;
  head_sha: string;
  decision:
    DecisionResult["decision"] | "already_merged" | "fix_request_pending" | "merge_refused" | "pr_not_found";
  gate1: string;
  gate2: string;
  reason: string;
  findings: Finding[];
  task_status: TaskRecord["status"];
  tests: { passed: number; failed: number } | null;
  coverage: number | null;
  merged_sha: string | null;
  fix_round: number | null;
  escalation_id: string | null;
  dispatched: string[];
  cached: boolean;
  packet: ReviewPacket | null;
  warnings: string[];
}

export async function reviewPr(rt: Runtime, args: ReviewArgs, ctx: ReviewContext): Promise<ReviewOutcome> {
  const task = findTask(await rt.store.read(), args);
  return withReviewClaim(rt, args.pr_number, task.task_id, () => review(rt, args, ctx));
}

async function review(rt: Runtime, args: ReviewArgs, ctx: ReviewContext): Promise<ReviewOutcome> {
  // Read again under the claim: a review that finished meanwhile may have moved the task on.
  const state = await rt.store.read();
  const task = findTask(state, args);
  const gh = rt.github;
  await ctx.progress(`reading PR #${args.pr_number}`);
  let pr: GitHubPull;
  try {
    pr = await getPull(rt, args.pr_number);
  } catch (err) {
    // The agent reported a PR that does not exist: told once, blocked the second time; never a
    // review that fails the same way every cycle.
    if (
      isEoaError(err) &&
      err.code === "PR_NOT_FOUND" &&
      task.status === "ai-review" &&
      task.pr_number === args.pr_number
    )
      return prNotFound(rt, task, args.pr_number);
    throw err;
  }
  checkPull(rt, pr, task);

  if (pr.merged) return recordAlreadyMerged(rt, task, pr);

  const view = pullView(pr);
  const key = reviewKey(view);
  const prior = state.reviews[key];
  if (prior?.decision === "fix_request") {
    // Fixes for this head were asked for already: wait for the agent's next push. An assessment
    // given now changes nothing for this head (its findings stand): a second fix request for the
    // same commit would only burn a fix round.
    return outcome(task, pr, prior, {
      decision: "fix_request_pending",
      reason: `fixes for ${pr.headSha.slice(0, 12)} were requested on ${prior.at}; waiting for a new push`,
      cached: true,
    });
  }

  let mechanical = prior?.mechanical;
  const cached = !!mechanical;
  if (!mechanical) mechanical = await runMechanical(rt, pr, ctx);
  await ctx.progress("Gate 2: CI checks on the head");
  const [runs, workflows] = await Promise.all([gh.listCheckRuns(pr.headSha), gh.listWorkflows()]);
  await ctx.progress("Gate 1 and the decision");
  const judged = await rt.step({
    type: "review-judged",
    task_id: task.task_id,
    epoch: task.assignment_epoch,
    pr: view,
    mechanical,
    checks: runs.map((r) => ({
      id: r.id,
      name: r.name,
      status: r.status,
      conclusion: r.conclusion,
      url: r.htmlUrl ?? r.detailsUrl,
      summary: r.output?.summary ?? null,
    })),
    has_workflows: workflows.some((w) => w.state === "active"),
    assessment: args.spec_assessment,
    merge: args.merge,
  });
  const { result } = judged.result;
  await ctx.progress(`decision: ${result.decision}`);
  return finish(rt, task, pr, mechanical, judged.result, judged.effects, cached);
}

function pullView(pr: GitHubPull): PullView {
  return {
    number: pr.number,
    head_sha: pr.headSha,
    head_ref: pr.headRef,
    base_ref: pr.baseRef,
    title: pr.title,
    body: pr.body,
    mergeable: pr.mergeable,
    mergeable_state: pr.mergeableState,
  };
}

/** Makes the decision's effects; a merge's outcome goes back to the state machine. */
async function finish(
  rt: Runtime,
  task: TaskRecord,
  pr: GitHubPull,
  mech: MechanicalResults,
  applied: ReviewApplied,
  effects: readonly string[],
  cached: boolean,
): Promise<ReviewOutcome> {
  const warnings: string[] = [];
  const flushed = await rt.outbox.flush(effects);
  for (const f of flushed.filter((x) => !x.ok && x.kind !== "merge"))
    warnings.push(`${f.kind} failed (retried next cycle): ${f.error}`);

  const { result } = applied;
  let escalationId = applied.escalation_id;
  let mergedSha: string | null = null;
  let dispatched = applied.dispatched;
  let decision: ReviewOutcome["decision"] = result.decision;
  let reason = result.reason;
  if (applied.merge_effect) {
    const merge = flushed.find((f) => f.id === applied.merge_effect);
    // A merge GitHub made but answered with a 5xx is retried by the client, and the retry is refused
    // as not mergeable: look at the PR before calling the failure a refusal.
    const mergedAnyway = merge !== undefined && !merge.ok && (await isMerged(rt, pr.number));
    if (!merge) {
      // Not made by this call (another pass holds it): the cycle that sees its outcome finishes it.
      reason = `${reason}; the merge is being made by another pass: the next cycle completes ${task.task_id}`;
    } else if (merge.ok || mergedAnyway) {
      mergedSha = (merge.result?.sha as string | undefined) ?? null;
      dispatched = await completeMerge(rt, task.task_id, pr, mergedSha);
    } else {
      try {
        const refused = await rt.step({
          type: "merge-refused",
          task_id: task.task_id,
          pr: { number: pr.number, head_sha: pr.headSha, base_ref: pr.baseRef },
          reason: refusalOf(merge.code, merge.details),
          error: merge.error ?? "unknown error",
        });
        await rt.outbox.flush(refused.effects);
        decision = refused.result.decision;
        reason = refused.result.reason;
        escalationId = refused.result.escalation_id ?? escalationId;
        dispatched = refused.result.dispatched;
      } catch (err) {
        // Settled meanwhile by a reconciliation: the task stands where that left it.
        if (!(isEoaError(err) && err.code === "TASK_CHANGED")) throw err;
        reason = `${reason}; the merge was refused (${merge.error ?? "unknown error"}) and the task has moved on since`;
      }
    }
  }
  const finalState = await rt.store.read();
  const record = finalState.reviews[reviewKey(pullView(pr))]!;
  const judging = decision === "awaiting_assessment" || decision === "human_review";
  // Gate 1 is judged from the code: the diff's first page rides in the packet.
  const diff = judging ? await rt.git.diff(pr.baseRef, pr.headSha).catch(() => null) : null;
  return outcome(finalState.tasks[task.task_id]!, pr, record, {
    decision,
    reason,
    cached,
    mergedSha,
    dispatched,
    escalationId,
    fixRound: applied.fix_round,
    warnings,
    packet: judging ? packet(task, pr, mech, diff) : null,
  });
}

/** What the client said about a failed merge, in the protocol's terms. */
function refusalOf(code: string | undefined, details: Record<string, unknown> | undefined): MergeRefusal {
  if (code === "GITHUB_NOT_MERGEABLE") {
    const reason = details?.reason;
    if (reason === "base_moved") return "head_moved";
    return reason === "conflict" || reason === "checks" || reason === "approvals" ? reason : "unknown";
  }
  return code === "GITHUB_HEAD_CHANGED" ? "head_moved" : "failed";
}

/** After a merge: done, capacity freed, issue closed, next task and dependents dispatched. */
async function completeMerge(
  rt: Runtime,
  taskId: string,
  pr: GitHubPull,
  sha: string | null,
): Promise<string[]> {
  const out = await rt.step({
    type: "merge-observed",
    task_id: taskId,
    pr_number: pr.number,
    head_sha: pr.headSha,
    merge_sha: sha,
    method: rt.config.review.merge_method,
  });
  await rt.outbox.flush(out.effects);
  return out.result.dispatched;
}

/** Whether GitHub shows the PR merged; false when it cannot be asked. */
async function isMerged(rt: Runtime, number: number): Promise<boolean> {
  try {
    return (await rt.github.getPull(number)).merged;
  } catch {
    return false;
  }
}

async function recordAlreadyMerged(rt: Runtime, task: TaskRecord, pr: GitHubPull): Promise<ReviewOutcome> {
  const dispatched = await completeMerge(rt, task.task_id, pr, null);
  const state = await rt.store.read();
  return outcome(
    state.tasks[task.task_id]!,
    pr,
    { gate1: "pass", gate2: "pass", findings: [] },
    {
      decision: "already_merged",
      reason: "the PR was already merged (by a person or an earlier call): task marked done",
      cached: false,
      dispatched,
    },
  );
}

async function prNotFound(rt: Runtime, task: TaskRecord, number: number): Promise<ReviewOutcome> {
  const repo = rt.config.github.repo ?? "the repository";
  const { result, effects } = await rt.step({
    type: "pr-missing",
    task_id: task.task_id,
    pr_number: number,
    repo,
  });
  const flushed = await rt.outbox.flush(effects);
  const after = (await rt.store.read()).tasks[task.task_id]!;
  return {
    pr_number: number,
    task_id: task.task_id,
    head_sha: "",
    decision: "pr_not_found",
    gate1: "fail",
    gate2: "pending",
    reason: result.escalation_id
      ? `PR #${number} does not exist in ${repo}, reported a second time: ${task.task_id} blocked, ${result.escalation_id} for the user`
      : `PR #${number} does not exist in ${repo}: ${task.assignee} was told and ${task.task_id} is back in progress`,
    findings: [],
    task_status: after.status,
    tests: null,
    coverage: null,
    merged_sha: null,
    fix_round: null,
    escalation_id: result.escalation_id,
    dispatched: [],
    cached: false,
    packet: null,
    warnings: flushed
      .filter((f) => !f.ok)
      .map((f) => `message to the agent not delivered yet, retried: ${f.error}`),
  };
}

function findTask(state: Readonly<State>, args: ReviewArgs): TaskRecord {
  if (args.task_id) {
    const task = state.tasks[args.task_id];
    if (!task) {
      throw new EoaError("TASK_NOT_FOUND", `no task ${args.task_id}`, "read eoa://tasks for the task ids");
    }
    if (task.pr_number && task.pr_number !== args.pr_number) {
      throw new EoaError(
        "TASK_PR_MISMATCH",
        `${task.task_id} is linked to PR #${task.pr_number}, not #${args.pr_number}`,
        `review PR #${task.pr_number} for ${task.task_id}, or pass the task_id that PR #${args.pr_number} implements`,
      );
    }
    return checkTask(task);
  }
  const linked = Object.values(state.tasks).filter(
    (t) => t.pr_number === args.pr_number && t.status !== "done",
  );
  if (linked.length !== 1) {
    throw new EoaError(
      "PR_NOT_LINKED",
      linked.length
        ? `PR #${args.pr_number} is linked to several tasks`
        : `no task is linked to PR #${args.pr_number}`,
      "pass task_id: the task this PR implements",
    );
  }
  return checkTask(linked[0]!);
}

function checkTask(task: TaskRecord): TaskRecord {
  if (task.status === "done") {
    throw new EoaError("TASK_DONE", `${task.task_id} is already done`, "nothing to review; read eoa://tasks");
  }
  if (task.status === "blocked") {
    throw new EoaError(
      "TASK_BLOCKED",
      `${task.task_id} is blocked: ${task.blocked_reason ?? "no reason recorded"}`,
      task.parked_by
        ? `resolve escalation ${task.parked_by} first`
        : "clear what blocks it (eoa://tasks/" + task.task_id + ") first",
    );
  }
  if (!task.assignee) {
    throw new EoaError("TASK_NOT_ASSIGNED", `${task.task_id} has no agent`, "assign it first (assign_task)");
  }
  return task;
}

async function getPull(rt: Runtime, number: number): Promise<GitHubPull> {
  try {
    return await rt.github.getPull(number);
  } catch (err) {
    if (err instanceof EoaError && err.code === "GITHUB_NOT_FOUND") {
      throw new EoaError(
        "PR_NOT_FOUND",
        `PR #${number} does not exist in ${rt.config.github.repo}`,
        "check the number the agent reported (its completion message) and call review_pr again",
      );
    }
    throw err;
  }
}

function checkPull(rt: Runtime, pr: GitHubPull, task: TaskRecord): void {
  if (pr.baseRepoFullName.toLowerCase() !== (rt.config.github.repo ?? "").toLowerCase()) {
    throw new EoaError(
      "PR_WRONG_REPO",
      `PR #${pr.number} targets ${pr.baseRepoFullName}, not ${rt.config.github.repo}`,
      "review only PRs of the configured repository",
    );
  }
  if (pr.state === "closed" && !pr.merged) {
    throw new EoaError(
      "PR_CLOSED",
      `PR #${pr.number} is closed without being merged`,
      `ask ${task.assignee} to reopen it or open a new PR`,
    );
  }
  try {
    assertRefName(pr.headRef);
    assertRefName(pr.baseRef);
    // GitMirror.revision strips `refs/heads/` from the base: what is left must be safe as well.
    if (pr.baseRef.startsWith("refs/heads/")) assertRefName(pr.baseRef.slice("refs/heads/".length));
  } catch (err) {
    throw new EoaError(
      "PR_BAD_BRANCH",
      `PR #${pr.number} has a branch name that is not safe to use (${JSON.stringify(pr.headRef)}): ${(err as Error).message}`,
      `ask ${task.assignee} to push the work to a plain branch name and open a new PR`,
    );
  }
}

function outcome(
  task: TaskRecord,
  pr: GitHubPull,
  record: Pick<ReviewRecord, "gate1" | "gate2" | "findings" | "tests" | "coverage">,
  extra: {
    decision: ReviewOutcome["decision"];
    reason: string;
    cached: boolean;
    mergedSha?: string | null;
    dispatched?: string[];
    escalationId?: string | null | undefined;
    fixRound?: number | null | undefined;
    warnings?: string[];
    packet?: ReviewPacket | null;
  },
): ReviewOutcome {
  return {
    pr_number: pr.number,
    task_id: task.task_id,
    head_sha: pr.headSha,
    decision: extra.decision,
    gate1: record.gate1,
    gate2: record.gate2,
    reason: extra.reason,
    findings: record.findings,
    task_status: task.status,
    tests: record.tests ?? null,
    coverage: record.coverage ?? null,
    merged_sha: extra.mergedSha ?? null,
    fix_round: extra.fixRound ?? null,
    escalation_id: extra.escalationId ?? null,
    dispatched: extra.dispatched ?? [],
    cached: extra.cached,
    packet: extra.packet ?? null,
    warnings: extra.warnings ?? [],
  };
}

function packet(
  task: TaskRecord,
  pr: GitHubPull,
  mech: MechanicalResults,
  diff: DiffText | null,
): ReviewPacket {
  const pages = diff ? diffPages(diff.text) : null;
  return {
    pr: {
      number: pr.number,
      title: oneLine(pr.title, 300),
      url: pr.htmlUrl,
      head_sha: pr.headSha,
      base: pr.baseRef,
      body: cap(pr.body, 4000),
    },
    diff_stat: {
      files: mech.files.length,
      ...diffTotals(mech.files),
    },
    files: mech.files.slice(0, 300),
    diff: pages
      ? {
          page: 1,
          pages: pages.length,
          text: pages[0]!,
          next: pages.length > 1 ? `eoa://reviews/${pr.number}/diff/2` : null,
          truncated: diff!.truncated,
        }
      : null,
    completion_criteria: task.completion_criteria,
    test_requirements: task.test_requirements,
    files_in_scope: task.files_in_scope,
    instructions: cap(task.instructions, 4000),
  };
}

function diffTotals(files: ReadonlyArray<{ additions: number; deletions: number }>) {
  return {
    additions: files.reduce((n, f) => n + f.additions, 0),
    deletions: files.reduce((n, f) => n + f.deletions, 0),
  };
}
