import type { Draft } from "immer";
import { EoaError, errorMessage, isEoaError } from "../errors.js";
import { kanbanLabels, matchStatusOption } from "../protocol/kanban.js";
import type { OutboundMessage } from "../protocol/messages.js";
import { PROCESS_ID, processGone } from "../owner.js";
import { enqueueEffect, history, plain, recordDecision } from "../state/records.js";
import type { EffectRecord, QueueEntry, State, TaskRecord } from "../state/schema.js";
import type { Runtime } from "./runtime.js";

/**
 * The outbox (SPEC §5). A transaction records an effect as `pending` together with the state change
 * that calls for it; the effect is made after the commit and then marked `done` (or `failed`, to be
 * retried on the next poll cycle). At start-up, effects left pending by a crash are reconciled:
 * a message that already reached its recipient is marked done rather than sent twice.
 */

export const MAX_EFFECT_ATTEMPTS = 8;

/** What a message effect is for, so that its completion or failure updates the right record. */
export type MessagePurpose =
  | {
      purpose: "assignment";
      task_id: string;
      epoch: number;
      revert: { status: TaskRecord["status"]; queue?: QueueEntry };
    }
  | { purpose: "escalation"; escalation_id: string }
  | { purpose: "notice"; task_id?: string };

export type MessagePayload = { message: OutboundMessage } & MessagePurpose;

/** Records a message to an agent about a task (reminder, fix request, stop, decision), sent after commit. */
export function enqueueNotice(
  draft: Draft<State>,
  now: Date,
  taskId: string,
  message: OutboundMessage,
): string {
  const payload: MessagePayload = { purpose: "notice", task_id: taskId, message };
  return enqueueEffect(draft, now, "message", payload as unknown as Record<string, unknown>);
}

export interface EffectOutcome {
  id: string;
  kind: string;
  ok: boolean;
  error?: string;
  code?: string;
  /** The request may have reached its target although it failed (a timeout after sending). */
  uncertain?: boolean;
  /** Made, but its outcome could not be written to the state file. */
  unrecorded?: boolean;
  result?: Record<string, unknown>;
}

/** Effects this process is making right now (its own claims that are not in flight are its to make). */
const inFlight = new Set<string>();
/** Effects made whose outcome could not be recorded (the state write failed): they may have happened. */
const unrecorded = new Set<string>();
/**
 * Sends that timed out may still land at the hub a moment later: they are looked for (and resent
 * if absent) only after this wall-clock time, so that a late arrival is found rather than doubled.
 */
const settleUntil = new Map<string, number>();

/** Done effects kept in the state file for inspection; older ones are dropped. */
const DONE_KEPT = 200;
/** A claim older than this is abandoned even if its process looks alive (a hung process). */
const CLAIM_STALE_MS = 2 * 60_000;

/**
 * Performs effects and records their outcomes in one transaction. With `ids`: the effects this
 * process just recorded (already claimed by it). Without: every retryable effect nobody else is
 * making (claimed first, in one transaction, so two processes never make the same one), each
 * checked against what may already have happened before it is made again.
 * Never throws for a failed effect.
 */
export async function flushEffects(rt: Runtime, ids?: readonly string[]): Promise<EffectOutcome[]> {
  const now = rt.now();
  let due: EffectRecord[];
  const uncertain = new Set<string>();
  if (ids) {
    const state = await rt.store.read();
    due = state.outbox.filter(
      (e) => ids.includes(e.id) && e.status !== "done" && e.claimed_by === PROCESS_ID && !inFlight.has(e.id),
    );
    // Claimed in the same tick as the check: a concurrent flush in this process cannot take them too.
    for (const e of due) inFlight.add(e.id);
  } else {
    // Most cycles have nothing to retry: look before taking the lock.
    const state = await rt.store.read();
    if (!state.outbox.some((e) => retryable(state, e) && claimable(e, now))) return [];
    const added: string[] = [];
    try {
      due = await rt.store.transact((draft) => {
        const claimed: EffectRecord[] = [];
        const seenLabels = new Set<string>();
        for (const e of draft.outbox) {
          if (!retryable(draft as State, e as EffectRecord) || !claimable(e as EffectRecord, now)) continue;
          // Labels are level-triggered: one sync per task brings them up to date.
          if (e.kind === "labels") {
            const task = String(e.payload.task_id);
            if (seenLabels.has(task)) {
              e.status = "done";
              e.done_at = now.toISOString();
              e.result = { superseded: true };
              delete e.claimed_by;
              delete e.claimed_at;
              continue;
            }
            seenLabels.add(task);
          }
          // Tried before, claimed by a process that died, or made without its outcome recorded: it may
          // have happened already.
          if (e.attempts > 0 || e.claimed_by !== PROCESS_ID || unrecorded.has(e.id)) uncertain.add(e.id);
          inFlight.add(e.id);
          added.push(e.id);
          e.claimed_by = PROCESS_ID;
          e.claimed_at = now.toISOString();
          claimed.push(plain(e) as EffectRecord);
        }
        return claimed;
      });
    } catch (err) {
      for (const id of added) inFlight.delete(id);
      throw err;
    }
  }
  if (!due.length) return [];
  const outcomes: EffectOutcome[] = [];
  try {
    await performAll(rt, due, uncertain, outcomes);
    try {
      await record(rt, outcomes, now);
      for (const o of outcomes) unrecorded.delete(o.id);
      for (const o of outcomes) {
        if (o.uncertain) settleUntil.set(o.id, Date.now() + 2 * rt.config.aimaestro.timeout_ms);
        else settleUntil.delete(o.id);
      }
    } catch (err) {
      // Made but not recorded: the next flush checks before making any of them again.
      for (const o of outcomes) unrecorded.add(o.id);
      rt.logger.error("side effect outcomes not recorded", {
        error: errorMessage(err),
        effects: outcomes.map((o) => o.id),
      });
      for (const o of outcomes) o.unrecorded = true;
    }
  } finally {
    for (const e of due) inFlight.delete(e.id);
  }
  return outcomes;
}

async function performAll(
  rt: Runtime,
  due: EffectRecord[],
  uncertain: Set<string>,
  outcomes: EffectOutcome[],
): Promise<void> {
  for (const eff of due) {
    try {
      const result = await perform(rt, eff, uncertain.has(eff.id));
      outcomes.push({ id: eff.id, kind: eff.kind, ok: true, result });
    } catch (err) {
      const error = rt.redact(errorMessage(err));
      const code = isEoaError(err) ? err.code : undefined;
      const maybe = isEoaError(err) && err.details?.may_have_arrived === true && eff.kind === "message";
      rt.logger.warn("side effect failed", {
        effect: eff.id,
        kind: eff.kind,
        error,
        may_have_arrived: maybe,
      });
      outcomes.push({
        id: eff.id,
        kind: eff.kind,
        ok: false,
        error,
        ...(code ? { code } : {}),
        ...(maybe ? { uncertain: true } : {}),
      });
    }
  }
}

async function record(rt: Runtime, outcomes: EffectOutcome[], now: Date): Promise<void> {
  await rt.store.transact((draft) => {
    for (const o of outcomes) {
      const e = draft.outbox.find((x) => x.id === o.id);
      if (!e) continue;
      e.attempts++;
      delete e.claimed_by;
      delete e.claimed_at;
      if (o.ok) {
        e.status = "done";
        e.done_at = now.toISOString();
        e.result = o.result!;
        delete e.error;
        delete e.error_code;
        onDone(draft, e as EffectRecord, o.result!);
      } else {
        e.status = "failed";
        e.error = o.error!;
        if (o.code) e.error_code = o.code;
        // A merge is decided by a review of a known head: never retried behind the reviewer's back.
        if (e.kind === "merge") e.attempts = MAX_EFFECT_ATTEMPTS;
        // A send that may have arrived is not undone: the next cycle finds it or sends it again.
        if (!o.uncertain) onFail(draft, e as EffectRecord, o.error!, now);
      }
    }
    pruneOutbox(draft);
  });
}

function retryable(state: Readonly<State>, e: EffectRecord): boolean {
  if (e.status === "done") return false;
  return e.attempts < MAX_EFFECT_ATTEMPTS || e.kind === "labels" || openEscalation(state, e);
}

function claimable(e: EffectRecord, now: Date): boolean {
  if ((settleUntil.get(e.id) ?? 0) > Date.now()) return false;
  if (!e.claimed_by) return true;
  if (e.claimed_by === PROCESS_ID) return !inFlight.has(e.id);
  if (now.getTime() - new Date(e.claimed_at ?? 0).getTime() > CLAIM_STALE_MS) return true;
  return processGone(e.claimed_by);
}

/** Keeps the hot document small: the newest done effects stay, without their message bodies. */
function pruneOutbox(draft: Draft<State>): void {
  const done = draft.outbox.filter((e) => e.status === "done");
  for (const e of done) {
    if (e.kind === "message" && (e.payload as { message?: { content?: unknown } }).message?.content) {
      const m = (e.payload as unknown as MessagePayload).message;
      (e.payload as Record<string, unknown>).message = { to: m.to, subject: m.subject, priority: m.priority };
    }
  }
  if (done.length > DONE_KEPT) {
    const drop = new Set(done.slice(0, done.length - DONE_KEPT).map((e) => e.id));
    draft.outbox = draft.outbox.filter((e) => !drop.has(e.id));
  }
}

/** Rule 8: an undelivered escalation is retried every cycle while it is open, however long the outage. */
function openEscalation(state: Readonly<State>, eff: EffectRecord): boolean {
  if (eff.kind !== "message") return false;
  const p = eff.payload as unknown as MessagePayload;
  return (
    p.purpose === "escalation" &&
    state.escalations.some((x) => x.id === p.escalation_id && x.status === "open")
  );
}

async function perform(
  rt: Runtime,
  eff: EffectRecord,
  mayHaveHappened: boolean,
): Promise<Record<string, unknown>> {
  const p = eff.payload;
  switch (eff.kind) {
    case "message": {
      const { message } = p as unknown as MessagePayload;
      // Failures before the send itself are certain: nothing was sent.
      try {
        await rt.orchestratorReady();
        if (mayHaveHappened) {
          const found = await findDelivered(rt, eff.id, message);
          if (found) return { message_id: found, reconciled: true };
        }
      } catch (err) {
        if (isEoaError(err) && err.details?.may_have_arrived) {
          throw new EoaError(err.code, err.message, err.nextStep, {
            ...err.details,
            may_have_arrived: false,
          });
        }
        throw err;
      }
      const sent = await rt.aimaestro.send({
        from: rt.config.orchestrator,
        to: message.to,
        subject: message.subject,
        priority: message.priority,
        content: { ...message.content, context: { ...message.content.context, effect_id: eff.id } },
      });
      return { message_id: sent.id };
    }
    case "labels":
      return syncKanban(rt, p.task_id as string);
    case "review": {
      const r = await rt.github.createReview(p.pr_number as number, {
        event: p.event as "APPROVE" | "REQUEST_CHANGES" | "COMMENT",
        body: p.body as string,
        commitId: p.sha as string,
      });
      return { review_id: r.id };
    }
    case "merge": {
      // A merge that may have happened (before a crash, or an attempt whose outcome was lost) is
      // not repeated; a fresh one goes straight to GitHub, which the review read a moment ago.
      if (mayHaveHappened && (await rt.github.getPull(p.pr_number as number)).merged) {
        return { merged: true, reconciled: true };
      }
      const m = await rt.github.merge(p.pr_number as number, {
        method: p.method as "merge" | "squash" | "rebase",
        sha: p.sha as string,
        title: p.title as string,
      });
      return { merged: m.merged, sha: m.sha };
    }
    case "rerun": {
      const r = await rt.github.rerunFailedChecks(p.sha as string);
      return { workflow_runs: r.workflowRuns, check_runs: r.checkRuns, skipped: r.skipped.length };
    }
    case "comment":
      await rt.github.comment(p.issue_number as number, p.body as string);
      return {};
    case "close_issue":
      await rt.github.closeIssue(p.issue_number as number);
      return {};
    default:
      throw new Error(`effect kind ${eff.kind} is performed by its own engine`);
  }
}

/** A message sent before a crash carries its effect id in `content.context`: look for it. */
async function findDelivered(
  rt: Runtime,
  effectId: string,
  message: OutboundMessage,
): Promise<string | null> {
  const inbox = await rt.aimaestro.listInbox(message.to, { limit: 0 });
  for (const entry of inbox) {
    if (entry.subject !== message.subject) continue;
    const full = await rt.aimaestro.getMessage(message.to, entry.id);
    const ctx = full?.content.context as Record<string, unknown> | undefined;
    if (ctx?.effect_id === effectId) return full!.id;
  }
  return null;
}

/** Labels (exactly one `status:`, at most one `assign:`) and the Projects v2 Status, from the task as it is now. */
async function syncKanban(rt: Runtime, taskId: string): Promise<Record<string, unknown>> {
  const task = (await rt.store.read()).tasks[taskId];
  if (!task?.issue_number || !rt.hasGithub) return { skipped: "no issue" };
  const gh = rt.github;
  const issue = await gh.getIssue(task.issue_number);
  const labels = kanbanLabels(issue.labels, task.status, task.assignee);
  const same = labels.length === issue.labels.length && labels.every((l) => issue.labels.includes(l));
  if (!same) await gh.setLabels(task.issue_number, labels);
  let project: string | undefined;
  const number = rt.config.github.project;
  if (number && rt.config.github.repo) {
    const owner = rt.config.github.repo.split("/")[0]!;
    const board = await gh.getProject(owner, number);
    const option = board.statusField ? matchStatusOption(board.statusField.options, task.status) : undefined;
    if (board.statusField && option) {
      const itemId = await gh.addIssueToProject(board.id, issue.nodeId);
      await gh.setProjectStatus(board.id, itemId, board.statusField.id, option.id);
      project = option.name;
    }
  }
  return { labels, ...(project ? { project_status: project } : {}) };
}

function onDone(draft: Draft<State>, eff: EffectRecord, result: Record<string, unknown>): void {
  if (eff.kind !== "message") return;
  const p = eff.payload as unknown as MessagePayload;
  if (p.purpose === "assignment") {
    const t = draft.tasks[p.task_id];
    if (t && t.assignment_epoch === p.epoch) t.assignment_message_id = result.message_id as string;
  } else if (p.purpose === "escalation") {
    const esc = draft.escalations.find((e) => e.id === p.escalation_id);
    if (esc) {
      esc.delivery.status = "delivered";
      esc.delivery.attempts++;
      esc.delivery.message_id = result.message_id as string;
      delete esc.delivery.last_error;
    }
  }
}

function onFail(draft: Draft<State>, eff: EffectRecord, error: string, now: Date): void {
  if (eff.kind !== "message") return;
  const p = eff.payload as unknown as MessagePayload;
  if (p.purpose === "assignment") {
    // An assignment that never reached the agent is not an assignment: put the task back.
    const t = draft.tasks[p.task_id];
    const e = draft.outbox.find((x) => x.id === eff.id);
    if (e) e.attempts = MAX_EFFECT_ATTEMPTS; // never resent later: the task is re-dispatched instead
    if (
      t &&
      t.assignment_epoch === p.epoch &&
      t.assignee &&
      draft.agents[t.assignee]?.session === p.message.to
    ) {
      const agent = t.assignee;
      delete t.assignee;
      delete t.assigned_at;
      t.status = p.revert.status;
      if (p.revert.queue) t.queue = p.revert.queue;
      else delete t.queue;
      history(t, now, "assignment-failed", `message to ${agent} failed: ${error}`);
      recordDecision(draft, now, {
        action: "revert-assignment",
        rule: "an assignment whose message was not delivered is not an assignment",
        task_id: p.task_id,
        agent,
        inputs: { error },
        outcome: t.queue ? "back in the queue" : `back to ${t.status}`,
      });
    }
  } else if (p.purpose === "escalation") {
    const esc = draft.escalations.find((x) => x.id === p.escalation_id);
    if (esc) {
      esc.delivery.status = "failed";
      esc.delivery.attempts++;
      esc.delivery.last_error = error;
    }
  }
}

/**
 * At start-up: effects a crash left `pending` are made now. A message that already reached its
 * recipient is found by its effect id and marked done instead of being sent again.
 */
export async function reconcileOutbox(rt: Runtime): Promise<EffectOutcome[]> {
  return flushEffects(rt);
}
