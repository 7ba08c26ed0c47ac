import type { Draft } from "immer";
import { errorMessage, isEoaError } from "../errors.js";
import { kanbanLabels, matchStatusOption } from "../protocol/kanban.js";
import type { OutboundMessage } from "../protocol/messages.js";
import { history, recordDecision } from "../state/records.js";
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

export interface EffectOutcome {
  id: string;
  kind: string;
  ok: boolean;
  error?: string;
  code?: string;
  result?: Record<string, unknown>;
}

/** Performs the given effects (or every retryable one) in order; never throws for a failed effect. */
export async function flushEffects(rt: Runtime, ids?: readonly string[]): Promise<EffectOutcome[]> {
  const state = await rt.store.read();
  const due = state.outbox.filter((e) =>
    ids ? ids.includes(e.id) && e.status !== "done" : e.status !== "done" && e.attempts < MAX_EFFECT_ATTEMPTS,
  );
  const outcomes: EffectOutcome[] = [];
  for (const eff of due) outcomes.push(await performEffect(rt, eff));
  return outcomes;
}

async function performEffect(rt: Runtime, eff: EffectRecord): Promise<EffectOutcome> {
  const attempted = eff.attempts;
  await rt.store.transact((draft) => {
    const e = draft.outbox.find((x) => x.id === eff.id);
    if (e) e.attempts++;
  });
  try {
    const result = await perform(rt, eff, attempted > 0);
    await rt.store.transact((draft) => {
      const e = draft.outbox.find((x) => x.id === eff.id);
      if (!e) return;
      e.status = "done";
      e.done_at = rt.now().toISOString();
      e.result = result;
      delete e.error;
      onDone(draft, eff, result);
    });
    return { id: eff.id, kind: eff.kind, ok: true, result };
  } catch (err) {
    const error = rt.redact(errorMessage(err));
    const code = isEoaError(err) ? err.code : undefined;
    rt.logger.warn("side effect failed", { effect: eff.id, kind: eff.kind, error });
    await rt.store.transact((draft) => {
      const e = draft.outbox.find((x) => x.id === eff.id);
      if (!e) return;
      e.status = "failed";
      e.error = error;
      if (code) e.error_code = code;
      // A merge is decided by a review of a known head: never retried behind the reviewer's back.
      if (e.kind === "merge") e.attempts = MAX_EFFECT_ATTEMPTS;
      onFail(draft, eff, error, rt.now());
    });
    return { id: eff.id, kind: eff.kind, ok: false, error, ...(code ? { code } : {}) };
  }
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
      await rt.orchestratorReady();
      if (mayHaveHappened) {
        const found = await findDelivered(rt, eff.id, message);
        if (found) return { message_id: found, reconciled: true };
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
      // A merge that happened before a crash is not repeated.
      const pr = await rt.github.getPull(p.pr_number as number);
      if (pr.merged) return { merged: true, reconciled: true };
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
    if (t && t.assignment_epoch === p.epoch && t.assignee === p.message.to) {
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
  const state = await rt.store.read();
  const pending = state.outbox.filter((e) => e.status === "pending").map((e) => e.id);
  return pending.length ? flushEffects(rt, pending) : [];
}
