import { mkdtemp, rm, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Draft } from "immer";
import { assertRefName } from "../clients/git.js";
import type { GitHubPull } from "../clients/github.js";
import { EoaError } from "../errors.js";
import {
  ciState,
  countersForHead,
  decideReview,
  gate1,
  gate2Local,
  type DecisionResult,
  type SpecAssessment,
} from "../protocol/gates.js";
import { blockTransition } from "../protocol/kanban.js";
import { findingLine, fixRequestMessage } from "../protocol/messages.js";
import { scanDiffForSecrets } from "../protocol/secrets.js";
import { cap, oneLine } from "../protocol/text.js";
import { COVERAGE_FILES, parseTestCounts, readCoverage } from "../review/coverage.js";
import { runCommand, scrubbedEnv } from "../review/run-command.js";
import { enqueueEffect, history, plain, recordDecision, recordIncident } from "../state/records.js";
import type { Finding, MechanicalResults, ReviewRecord, State, TaskRecord } from "../state/schema.js";
import { autoDispatchInDraft } from "./dispatch.js";
import { enqueueNotice, flushEffects } from "./effects.js";
import { escalateInDraft } from "./escalation.js";
import type { Runtime } from "./runtime.js";

/**
 * Phase 4: the two-gate review of a PR in an ephemeral worktree (rule 6) and what follows from it:
 * merge and dispatch of dependents, a fix request, a CI retry, a block, or an escalation. The
 * mechanical results (files, commands, coverage, secrets, conflicts) are cached by head SHA; CI and
 * the orchestrator's assessment are taken afresh on every call.
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
  completion_criteria: string[];
  test_requirements: string[];
  files_in_scope: string[];
  instructions: string;
}

export interface ReviewOutcome {
  pr_number: number;
  task_id: string;
  head_sha: string;
  decision: DecisionResult["decision"] | "already_merged" | "fix_request_pending";
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
  const state = await rt.store.read();
  const task = findTask(state, args);
  const gh = rt.github;
  await ctx.progress(`reading PR #${args.pr_number}`);
  const pr = await getPull(rt, args.pr_number);
  checkPull(rt, pr, task);

  if (pr.merged) return recordAlreadyMerged(rt, task, pr);

  const key = `${pr.number}@${pr.headSha}`;
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
  await ctx.progress("Gate 1: spec compliance");
  const g1 = gate1({
    taskId: task.task_id,
    issueNumber: task.issue_number,
    pr: { title: pr.title, body: pr.body, headRef: pr.headRef },
    files: mechanical.files.map((f) => f.path),
    filesInScope: task.files_in_scope,
    protectedPaths: rt.config.review.protected_paths,
    completionCriteria: task.completion_criteria,
    assessment: args.spec_assessment,
  });
  await ctx.progress("Gate 2: CI checks on the head");
  const [runs, workflows] = await Promise.all([gh.listCheckRuns(pr.headSha), gh.listWorkflows()]);
  const ci = ciState(
    runs.map((r) => ({
      name: r.name,
      status: r.status,
      conclusion: r.conclusion,
      url: r.htmlUrl ?? r.detailsUrl,
      summary: r.output?.summary ?? null,
    })),
    workflows.some((w) => w.state === "active"),
  );
  const conflict = mechanical.conflicts.length > 0 || pr.mergeable === false || pr.mergeableState === "dirty";
  const result = decideReview({
    gate1: g1,
    gate2Findings: mechanical.gate2_findings,
    ci,
    conflict,
    mergeableUnknown: pr.mergeable === null && !conflict,
    effort: task.effort,
    merge: args.merge ?? rt.config.review.auto_merge,
    counters: countersForHead(task, pr.headSha),
    limits: rt.config.limits,
  });
  await ctx.progress(`decision: ${result.decision}`);
  return apply(rt, task, pr, mechanical, result, cached, args.spec_assessment);
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

/** Files, worktree commands, coverage, secrets and conflicts for one head SHA. */
async function runMechanical(rt: Runtime, pr: GitHubPull, ctx: ReviewContext): Promise<MechanicalResults> {
  const git = rt.git;
  await ctx.progress("fetching the PR head into the cached mirror");
  const sha = await git.fetchPullHead(pr.number, ctx.signal);
  if (sha !== pr.headSha) {
    throw new EoaError(
      "PR_HEAD_MOVED",
      `PR #${pr.number} moved while it was being read (GitHub says ${pr.headSha.slice(0, 12)}, git fetched ${sha.slice(0, 12)})`,
      "call review_pr again: it reviews the newest head",
    );
  }
  const [stat, diff, merge] = await Promise.all([
    git.diffStat(pr.baseRef, sha),
    git.diff(pr.baseRef, sha),
    git.mergeCheck(pr.baseRef, sha),
  ]);
  const secrets = scanDiffForSecrets(diff.text);
  const { commands, coverage, tests } = await git.withWorktree(
    pr.number,
    sha,
    async (wt) => {
      await ctx.progress(`checked out ${sha.slice(0, 12)} in an ephemeral worktree`);
      // A PR could commit a flattering report: only what the commands write now counts.
      for (const f of COVERAGE_FILES) await unlink(join(wt.path, f)).catch(() => undefined);
      const home = await mkdtemp(join(tmpdir(), "eoa-review-home-"));
      try {
        const results: MechanicalResults["commands"] = [];
        const tails: string[] = [];
        let tests: MechanicalResults["tests"];
        for (const name of ["test", "lint", "coverage"] as const) {
          const command = rt.config.review.commands[name];
          if (!command) continue;
          await ctx.progress(`running ${name}: ${command}`);
          const started = Date.now();
          const ticker = setInterval(
            () => void ctx.progress(`still running ${name} (${Math.round((Date.now() - started) / 1000)} s)`),
            10_000,
          );
          try {
            const r = await runCommand(command, {
              cwd: wt.path,
              timeoutMs: rt.config.review.command_timeout_minutes * 60_000,
              signal: ctx.signal,
              env: scrubbedEnv({ HOME: home }),
            });
            if (r.aborted)
              throw new EoaError("CANCELLED", "the review was cancelled", "call review_pr again when ready");
            results.push({
              name,
              command,
              exit_code: r.exitCode,
              timed_out: r.timedOut,
              duration_ms: r.durationMs,
            });
            tails.push(r.outputTail);
            if (name === "test") tests = parseTestCounts(r.outputTail) ?? undefined;
          } finally {
            clearInterval(ticker);
          }
        }
        const coverage = await readCoverage(wt.path);
        return { commands: results.map((r, i) => ({ ...r, tail: tails[i]! })), coverage, tests };
      } finally {
        await rm(home, { recursive: true, force: true });
      }
    },
    ctx.signal,
    pr.baseRef, // the reused checkout is reset to it afterwards
  );
  const hasCoverageSource = !!(rt.config.review.commands.coverage || rt.config.review.commands.test);
  const gate2 = gate2Local({
    commands: commands.map((c) => ({
      name: c.name,
      command: c.command,
      exitCode: c.exit_code,
      timedOut: c.timed_out,
      outputTail: rt.redact(c.tail),
    })),
    coverage,
    coverageThreshold: rt.config.review.coverage_threshold,
    coverageRequired: hasCoverageSource,
    secrets,
    diffTruncated: diff.truncated,
  });
  return {
    files: stat.files.map((f) => ({ path: f.path, additions: f.additions, deletions: f.deletions })),
    gate2_findings: gate2,
    commands: commands.map(({ tail: _tail, ...c }) => c),
    conflicts: merge.clean ? [] : merge.conflicts,
    ...(tests ? { tests } : {}),
    ...(coverage ? { coverage } : {}),
  };
}

type S = Draft<State>;

async function apply(
  rt: Runtime,
  task: TaskRecord,
  pr: GitHubPull,
  mech: MechanicalResults,
  result: DecisionResult,
  cached: boolean,
  assessment: SpecAssessment | undefined,
): Promise<ReviewOutcome> {
  const now = rt.now();
  const key = `${pr.number}@${pr.headSha}`;
  const warnings: string[] = [];
  const decided = await rt.store.transact((draft) => {
    const t = draft.tasks[task.task_id]!;
    if (t.assignment_epoch !== task.assignment_epoch || t.status === "done" || t.status === "blocked") {
      throw new EoaError(
        "TASK_CHANGED",
        `${task.task_id} changed while its PR was reviewed (now ${t.status}, held by ${t.assignee ?? "nobody"})`,
        "read eoa://tasks/" + task.task_id + " and call review_pr again if it still applies",
      );
    }
    t.pr_number = pr.number;
    Object.assign(t, countersForHead(t, pr.headSha));
    t.review_head = pr.headSha;
    const { additions, deletions } = diffTotals(mech.files);
    const record: ReviewRecord = {
      key,
      pr_number: pr.number,
      head_sha: pr.headSha,
      task_id: t.task_id,
      at: now.toISOString(),
      gate1: result.gate1,
      gate2: result.gate2,
      decision: result.decision,
      findings: result.findings,
      files_changed: mech.files.length,
      additions,
      deletions,
      ...(mech.tests ? { tests: mech.tests } : {}),
      ...(mech.coverage ? { coverage: mech.coverage.percent } : {}),
      mechanical: mech,
    };
    draft.reviews[key] = record;
    history(
      t,
      now,
      "review",
      `PR #${pr.number}@${pr.headSha.slice(0, 12)}: ${result.decision} (${result.reason})`,
    );
    recordDecision(draft, now, {
      action: "review",
      rule: `rule 6: ${result.reason}`,
      task_id: t.task_id,
      ...(t.assignee ? { agent: t.assignee } : {}),
      inputs: {
        pr_number: pr.number,
        head_sha: pr.headSha,
        gate1: result.gate1,
        gate2: result.gate2,
        findings: result.findings.length,
        spec_assessment: assessment ?? null,
      },
      outcome: result.decision,
    });
    return applyDecision(draft, now, rt, t, pr, result);
  });
  const flushed = await flushEffects(rt, decided.effects);
  for (const f of flushed.filter((x) => !x.ok && x.kind !== "merge"))
    warnings.push(`${f.kind} failed (retried next cycle): ${f.error}`);

  let escalationId = decided.escalationId;
  let mergedSha: string | null = null;
  let dispatched: string[] = [];
  let decision: ReviewOutcome["decision"] = result.decision;
  let reason = result.reason;
  if (decided.mergeEffect) {
    const merge = flushed.find((f) => f.id === decided.mergeEffect);
    // A merge GitHub made but answered with a 5xx is retried by the client, and the retry is refused
    // as not mergeable: look at the PR before calling the failure a conflict.
    const mergedAnyway = !merge?.ok && (await isMerged(rt, pr.number));
    if (merge?.ok || mergedAnyway) {
      mergedSha = (merge?.result?.sha as string | undefined) ?? null;
      dispatched = await completeMerge(rt, task.task_id, pr, mergedSha);
    } else {
      const after = await mergeFailed(rt, task.task_id, pr, merge?.code, merge?.error ?? "unknown error");
      decision = after.decision;
      reason = after.reason;
      escalationId = after.escalationId ?? escalationId;
    }
  }
  const finalState = await rt.store.read();
  const record = finalState.reviews[key]!;
  return outcome(finalState.tasks[task.task_id]!, pr, record, {
    decision,
    reason,
    cached,
    mergedSha,
    dispatched,
    escalationId,
    fixRound: decided.fixRound,
    warnings,
    packet: decision === "awaiting_assessment" || decision === "human_review" ? packet(task, pr, mech) : null,
  });
}

function diffTotals(files: ReadonlyArray<{ additions: number; deletions: number }>) {
  return {
    additions: files.reduce((n, f) => n + f.additions, 0),
    deletions: files.reduce((n, f) => n + f.deletions, 0),
  };
}

/** Blocks the task (its column kept for when it is unblocked) and returns the label sync. */
function blockTask(draft: S, now: Date, t: Draft<TaskRecord>, reason: string): string {
  if (t.status !== "blocked") Object.assign(t, blockTransition(t.status));
  t.blocked_reason = reason;
  history(t, now, "blocked", reason);
  return enqueueEffect(draft, now, "labels", { task_id: t.task_id });
}

/**
 * What review cannot settle itself (a merge conflict, fix rounds exhausted): an incident, and a
 * blocker escalation, which parks the task itself (labels included); one merged into an open
 * escalation leaves the blocking to us.
 */
function escalateBlocker(
  draft: S,
  now: Date,
  rt: Runtime,
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
): { effects: string[]; escalationId: string } {
  recordIncident(draft, now, {
    task_id: t.task_id,
    kind: c.kind,
    occurrence: c.occurrence,
    description: c.description,
    action: c.action,
  });
  const esc = escalateInDraft(draft, now, rt.config, {
    category: "blocker",
    task_id: t.task_id,
    issue: c.issue,
    ...(c.context ? { context: c.context } : {}),
    ...(c.current_action ? { current_action: c.current_action, reversible: true } : {}),
    raised_by: c.raisedBy,
  });
  const effects = [...esc.effects];
  if (t.status !== "blocked") effects.push(blockTask(draft, now, t, `${c.reason}; ${esc.escalation.id}`));
  return { effects, escalationId: esc.escalation.id };
}

/** A merge conflict is never resolved here: the PR is left open and the task blocked. */
const CONFLICT = {
  kind: "merge-conflict",
  action: "not resolved automatically; queued for the user",
  current_action: "PR left open; task blocked",
};

interface Applied {
  effects: string[];
  mergeEffect?: string | undefined;
  escalationId?: string | undefined;
  fixRound?: number | undefined;
}

function applyDecision(
  draft: S,
  now: Date,
  rt: Runtime,
  t: Draft<TaskRecord>,
  pr: GitHubPull,
  result: DecisionResult,
): Applied {
  const effects: string[] = [];
  const labels = () => effects.push(enqueueEffect(draft, now, "labels", { task_id: t.task_id }));
  const block = (reason: string) => effects.push(blockTask(draft, now, t, reason));
  switch (result.decision) {
    case "fix_request": {
      t.fix_rounds += 1;
      t.ci_polls = 0;
      t.status = "in-progress";
      const agent = draft.agents[t.assignee!]!;
      effects.push(
        enqueueNotice(
          draft,
          now,
          t.task_id,
          fixRequestMessage(
            plain(t) as TaskRecord,
            agent.session,
            t.assignment_epoch,
            result.findings,
            t.fix_rounds,
            rt.config.limits.max_fix_rounds,
          ),
        ),
      );
      effects.push(
        enqueueEffect(draft, now, "review", {
          pr_number: pr.number,
          sha: pr.headSha,
          event: "COMMENT",
          body: `eoa-mcp review (fix round ${t.fix_rounds}/${rt.config.limits.max_fix_rounds}):\n${result.findings.map(findingLine).join("\n")}`,
        }),
      );
      labels();
      return { effects, fixRound: t.fix_rounds };
    }
    case "escalate_fix_rounds": {
      const c = escalateBlocker(draft, now, rt, t, {
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
      });
      effects.push(...c.effects);
      return { effects, escalationId: c.escalationId };
    }
    case "ci_pending":
    case "mergeability_pending":
      t.ci_polls += 1;
      if (t.status !== "ai-review") {
        t.status = "ai-review";
        labels();
      }
      return { effects };
    case "ci_blocked":
      t.ci_polls += 1;
      recordIncident(draft, now, {
        task_id: t.task_id,
        kind: "ci-blocked",
        occurrence: `PR #${pr.number}`,
        description: `CI stayed pending for ${t.ci_polls} polls`,
        action: "task blocked (CI blocked); other work goes on",
      });
      block("CI blocked: checks still pending after the poll limit");
      return { effects };
    case "ci_rerun":
    case "ci_failed_blocked": {
      const rerun = result.decision === "ci_rerun";
      t.ci_failures += 1;
      recordIncident(draft, now, {
        task_id: t.task_id,
        kind: "ci-failure",
        occurrence: `PR #${pr.number} at ${pr.headSha.slice(0, 12)}`,
        description: result.findings.map((f) => f.message).join("; "),
        ...(rerun
          ? {
              resolution: "failed jobs re-run",
              action: `rerun ${t.ci_failures} of ${rt.config.limits.max_retry_attempts}`,
            }
          : { action: "task blocked after the retry limit; other work goes on" }),
      });
      if (rerun) {
        t.ci_polls = 0;
        effects.push(enqueueEffect(draft, now, "rerun", { sha: pr.headSha, pr_number: pr.number }));
      } else {
        block(`CI failed ${t.ci_failures} times: ${result.findings.map((f) => f.check).join(", ")}`);
      }
      return { effects };
    }
    case "merge_conflict": {
      const files = draft.reviews[`${pr.number}@${pr.headSha}`]?.mechanical?.conflicts ?? [];
      const where = files.length ? ` in ${files.join(", ")}` : "";
      const c = escalateBlocker(draft, now, rt, t, {
        ...CONFLICT,
        occurrence: `PR #${pr.number}`,
        description: `conflicts with ${pr.baseRef}${where}`,
        issue: `PR #${pr.number} for ${t.task_id} conflicts with ${pr.baseRef}${files.length ? ` (${files.join(", ")})` : ""}`,
        context: "merge conflicts are never resolved automatically",
        raisedBy: "server: merge conflict",
        reason: `merge conflict${where}`,
      });
      effects.push(...c.effects);
      return { effects, escalationId: c.escalationId };
    }
    case "awaiting_assessment":
      if (t.status !== "ai-review") {
        t.status = "ai-review";
        labels();
      }
      return { effects };
    case "human_review":
      if (t.status === "human-review") return { effects }; // asked already: no second comment
      t.status = "human-review";
      effects.push(
        enqueueEffect(draft, now, "comment", {
          issue_number: pr.number,
          body: `eoa-mcp: both review gates passed; ${result.reason}. Waiting for a human to merge.`,
        }),
      );
      labels();
      autoDispatchInDraft(draft, now);
      return { effects };
    case "approve":
    case "merge": {
      t.status = "merge-release";
      effects.push(
        enqueueEffect(draft, now, "review", {
          pr_number: pr.number,
          sha: pr.headSha,
          event: "APPROVE",
          body: "eoa-mcp: both review gates passed.",
        }),
      );
      labels();
      if (result.decision === "approve") return { effects };
      const mergeEffect = enqueueEffect(draft, now, "merge", {
        pr_number: pr.number,
        sha: pr.headSha,
        method: rt.config.review.merge_method,
        title: `${oneLine(pr.title, 200)} (#${pr.number})`,
      });
      effects.push(mergeEffect);
      return { effects, mergeEffect };
    }
  }
}

/** After a merge: done, capacity freed, issue closed, next task and dependents dispatched. */
async function completeMerge(
  rt: Runtime,
  taskId: string,
  pr: GitHubPull,
  sha: string | null,
): Promise<string[]> {
  const now = rt.now();
  const out = await rt.store.transact((draft) => {
    const t = draft.tasks[taskId]!;
    t.status = "done";
    t.merged_at = now.toISOString();
    if (sha) t.merge_sha = sha;
    t.completed_at = now.toISOString();
    t.progress_percent = 100;
    history(t, now, "merged", `PR #${pr.number}${sha ? ` as ${sha.slice(0, 12)}` : ""}`);
    recordDecision(draft, now, {
      action: "merge",
      rule: "rule 6: both gates pass",
      task_id: taskId,
      ...(t.assignee ? { agent: t.assignee } : {}),
      inputs: { pr_number: pr.number, head_sha: pr.headSha, method: rt.config.review.merge_method },
      outcome: `merged${sha ? ` as ${sha.slice(0, 12)}` : ""}`,
    });
    const effects = [enqueueEffect(draft, now, "labels", { task_id: taskId })];
    if (t.issue_number)
      effects.push(enqueueEffect(draft, now, "close_issue", { issue_number: t.issue_number }));
    const next = t.next_task_on_complete ? draft.tasks[t.next_task_on_complete] : undefined;
    if (next && next.status === "todo" && !next.assignee && !next.parked_by) {
      next.queue = {
        since: next.queue?.since ?? now.toISOString(),
        reason: `next task after ${taskId}`,
        ...(t.assignee ? { preferred_agent: t.assignee } : {}),
      };
    }
    const dispatched = autoDispatchInDraft(draft, now);
    for (const d of dispatched) if (d.status === "dispatched") effects.push(...d.effects);
    return { effects, dispatched: dispatched.filter((d) => d.status === "dispatched").map((d) => d.task_id) };
  });
  await flushEffects(rt, out.effects);
  return out.dispatched;
}

/** Whether GitHub shows the PR merged; false when it cannot be asked. */
async function isMerged(rt: Runtime, number: number): Promise<boolean> {
  try {
    return (await rt.github.getPull(number)).merged;
  } catch {
    return false;
  }
}

async function mergeFailed(
  rt: Runtime,
  taskId: string,
  pr: GitHubPull,
  code: string | undefined,
  error: string,
): Promise<{ decision: ReviewOutcome["decision"]; reason: string; escalationId?: string }> {
  const now = rt.now();
  const conflict = code === "GITHUB_NOT_MERGEABLE";
  const out = await rt.store.transact((draft) => {
    const t = draft.tasks[taskId]!;
    if (conflict) {
      const c = escalateBlocker(draft, now, rt, t, {
        ...CONFLICT,
        occurrence: `merging PR #${pr.number}`,
        description: error,
        issue: `PR #${pr.number} for ${taskId} could not be merged: ${error}`,
        raisedBy: "server: merge refused",
        reason: `merge refused: ${error}`,
      });
      return {
        effects: c.effects,
        decision: "merge_conflict" as const,
        reason: `merge refused: ${error}; ${c.escalationId}`,
        escalationId: c.escalationId,
      };
    }
    // Head moved or GitHub failed: the review stands for a head that may no longer be the PR's.
    t.status = "ai-review";
    history(t, now, "merge-failed", error);
    recordDecision(draft, now, {
      action: "merge",
      rule: "rule 6: merge only the reviewed head",
      task_id: taskId,
      inputs: { pr_number: pr.number, head_sha: pr.headSha, error },
      outcome: "not merged; review again",
    });
    return {
      effects: [enqueueEffect(draft, now, "labels", { task_id: taskId })],
      decision: "mergeability_pending" as const,
      reason: `merge failed (${error}): call review_pr again`,
    };
  });
  await flushEffects(rt, out.effects);
  return {
    decision: out.decision,
    reason: out.reason,
    ...("escalationId" in out && out.escalationId ? { escalationId: out.escalationId } : {}),
  };
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
    escalationId?: string | undefined;
    fixRound?: number | undefined;
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

function packet(task: TaskRecord, pr: GitHubPull, mech: MechanicalResults): ReviewPacket {
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
    completion_criteria: task.completion_criteria,
    test_requirements: task.test_requirements,
    files_in_scope: task.files_in_scope,
    instructions: cap(task.instructions, 4000),
  };
}
