import type { Draft } from "immer";
import { errorMessage, isEoaError } from "../errors.js";
import type { FullMessage, InboxEntry } from "../clients/aimaestro.js";
import { normalizeMessageId } from "../clients/aimaestro.js";
import { agentLoads, chooseReplacement } from "../protocol/assignment.js";
import { classifyMessage, type Classified } from "../protocol/classify.js";
import { blockTransition, settled as settledStatus } from "../protocol/kanban.js";
import { ackVerdict, heartbeatVerdict } from "../protocol/liveness.js";
import { ackReminderMessage, stopNoticeMessage } from "../protocol/messages.js";
import { cap, oneLine } from "../protocol/text.js";
import { enqueueEffect, history, plain, recordDecision, recordIncident, tasksNow } from "../state/records.js";
import type { AgentRecord, MessageOutcome, State, TaskRecord, ReviewRecord } from "../state/schema.js";
import { autoDispatchInDraft, dispatchInDraft } from "./dispatch.js";
import { enqueueNotice, flushEffects } from "./effects.js";
import { escalateInDraft } from "./escalation.js";
import { agentBackInDraft, finishOffline, markOfflineInDraft, type OfflineOutcome } from "./offline.js";
import type { Runtime } from "./runtime.js";

/**
 * Phase 3, one poll cycle: read the orchestrator's inbox, apply each message to state (marking it
 * read only after its effect is committed, never processing an id twice), then run the
 * level-triggered checks: ack deadlines, missed heartbeats, auto-dispatch, undelivered side effects.
 */

type S = Draft<State>;

export interface ReadMessage {
  id: string;
  from: string;
  subject: string;
  kind: string;
  task_id: string | null;
  outcome: MessageOutcome | "would-apply" | "already-processed";
  note: string;
}

export interface ActionDue {
  tool: string;
  task_id: string | null;
  why: string;
  arguments: Record<string, unknown>;
}

export interface CycleResult {
  cycle: number | null;
  peek: boolean;
  read: ReadMessage[];
  changes: string[];
  actions_due: ActionDue[];
  /** Actions due beyond the ones listed (see ACTIONS_DUE_LIMIT). */
  actions_more: number;
  warnings: string[];
}

export async function checkMessages(
  rt: Runtime,
  opts: { limit?: number | undefined; peek?: boolean | undefined },
): Promise<CycleResult> {
  const limit = opts.limit ?? 50;
  const warnings: string[] = [];
  const changes: string[] = [];
  const read: ReadMessage[] = [];
  const me = rt.config.orchestrator;

  let inbox: InboxEntry[] = [];
  let inboxOk = true;
  try {
    inbox = (await rt.aimaestro.listUnread(me, 0)).slice().reverse().slice(0, limit); // oldest first
  } catch (err) {
    inboxOk = false;
    warnings.push(`inbox not read (no heartbeat or ack deadline judged this cycle): ${errorMessage(err)}`);
  }

  // Every unread message is read in full first; all of them and the cycle's checks are then
  // applied in one transaction, and marked read only once that has committed.
  const fetched: Array<{
    entry: InboxEntry;
    id: string;
    full: FullMessage;
    classified: Classified;
    from: string;
  }> = [];
  for (const entry of inbox) {
    const id = normalizeMessageId(entry.id);
    let full: FullMessage | null;
    let classified: Classified | undefined;
    try {
      full = await rt.aimaestro.getMessage(me, entry.id);
    } catch (err) {
      if (!(isEoaError(err) && err.details?.too_large)) {
        warnings.push(`message ${id} not read: ${errorMessage(err)}`);
        continue;
      }
      // A body too large to read would be fetched again every cycle: record it from its list entry
      // (as unknown, never acted on) so that it is marked read like any other message.
      full = { ...entry, to: me, content: { type: "", message: "" } };
      classified = { kind: "unknown", reason: "message body too large to read: not acted on" };
    }
    if (!full) continue;
    classified ??= classifyMessage({
      id,
      from: full.from,
      subject: typeof full.subject === "string" ? full.subject : "",
      content: full.content ?? {},
    });
    fetched.push({ entry, id, full, classified, from: senderName(entry, full) });
  }

  if (opts.peek) {
    const state = await rt.store.read();
    for (const f of fetched) {
      read.push(
        describe(
          f.id,
          f.from,
          f.full.subject,
          f.classified,
          state.messages[f.id] ? "already-processed" : "would-apply",
        ),
      );
    }
    const due = actionsDue(state);
    return {
      cycle: null,
      peek: true,
      read,
      changes: [],
      actions_due: due.actions,
      actions_more: due.more,
      warnings,
    };
  }

  // Presence from AI Maestro; when the hub cannot be asked, nobody is counted as missing a beat.
  let online: Set<string> | null = null;
  try {
    online = new Set(
      (await rt.aimaestro.listAgents()).filter((a) => a.online).map((a) => a.name.toLowerCase()),
    );
  } catch (err) {
    warnings.push(`agent presence unknown, heartbeats not counted this cycle: ${errorMessage(err)}`);
  }

  const now = rt.now();
  const cycle = await rt.store.transact((draft) => {
    const senders = new Set<string>();
    const applied: Array<{ f: (typeof fetched)[number]; outcome: ReadMessage["outcome"]; note: string }> = [];
    for (const f of fetched) {
      if (draft.messages[f.id]) {
        applied.push({ f, outcome: "already-processed", note: "processed before" });
        continue;
      }
      const a = applyMessage(draft, now, rt, f.id, f.from, f.full.subject ?? "", f.classified);
      if (a.agent) senders.add(a.agent);
      applied.push({ f, outcome: a.outcome, note: a.note });
    }
    draft.cycle.count += 1;
    draft.cycle.last_at = now.toISOString();
    const offline: OfflineOutcome[] = [];
    const leaving: Array<{ id: string; missed: number }> = [];
    if (online && inboxOk) {
      for (const agent of Object.values(draft.agents)) {
        const v = heartbeatVerdict(
          {
            availability: agent.availability,
            missed: agent.missed_heartbeats,
            online: online.has(agent.session.toLowerCase()),
            messaged: senders.has(agent.id),
          },
          rt.config.limits.heartbeat_missed_threshold,
        );
        if (v.missed !== agent.missed_heartbeats) agent.missed_heartbeats = v.missed;
        if (v.missed === 0) agent.last_seen = now.toISOString();
        if (v.comesBack) {
          agentBackInDraft(
            draft,
            now,
            agent.id,
            senders.has(agent.id) ? "sent a message" : "online in AI Maestro",
          );
          changes.push(`${agent.id} is back online`);
        }
        if (v.goesOffline) leaving.push({ id: agent.id, missed: v.missed });
      }
    }
    // Every agent that goes offline this cycle is known before any work is handed over, so that no
    // task is handed to an agent that is leaving too.
    const leavingIds = new Set(leaving.map((l) => l.id));
    for (const l of leaving) {
      const out = markOfflineInDraft(
        draft,
        now,
        rt.config,
        l.id,
        `missed ${l.missed} consecutive heartbeats`,
        leavingIds,
      );
      offline.push(out);
      changes.push(describeOffline(out));
    }
    // The ack may be in the inbox that could not be read: no deadline is judged blind.
    if (inboxOk) ackChecks(draft, now, rt, changes);
    for (const o of autoDispatchInDraft(draft, now)) {
      if (o.status === "dispatched") changes.push(`dispatched ${o.task_id} to ${o.agent}`);
    }
    return { count: draft.cycle.count, offline, applied };
  });
  for (const { f, outcome, note } of cycle.applied) {
    try {
      await rt.aimaestro.markRead(me, f.entry.id);
    } catch (err) {
      // Harmless: the id is recorded, so the next cycle skips it and tries marking again.
      warnings.push(`message ${f.id} applied but not marked read: ${errorMessage(err)}`);
    }
    read.push(describe(f.id, f.from, f.full.subject, f.classified, outcome, note));
    if (outcome === "applied") changes.push(`${f.id}: ${note}`);
  }
  for (const o of cycle.offline) await finishOffline(rt, o);

  const flushed = await flushEffects(rt);
  for (const f of flushed.filter((x) => !x.ok))
    warnings.push(`side effect ${f.id} (${f.kind}) failed, will retry: ${f.error}`);

  const state = await rt.store.read();
  const due = actionsDue(state);
  return {
    cycle: cycle.count,
    peek: false,
    read,
    changes,
    actions_due: due.actions,
    actions_more: due.more,
    warnings,
  };
}

function senderName(entry: InboxEntry, full: FullMessage): string {
  const alias = (entry as { fromAlias?: string }).fromAlias;
  // Untrusted: a sender outside the roster may call itself anything, at any length (it is stored
  // in state and shown to the model). Roster names are at most 100 plain characters.
  return oneLine((alias || full.from || entry.from || "").toLowerCase(), 100);
}

function describe(
  id: string,
  from: string,
  subject: string,
  c: Classified,
  outcome: ReadMessage["outcome"],
  note?: string,
): ReadMessage {
  return {
    id,
    from: oneLine(from, 100),
    subject: oneLine(subject ?? "", 200),
    kind: c.kind,
    task_id: "task_id" in c && c.task_id ? c.task_id : null,
    outcome,
    note: note ?? ("note" in c ? cap(c.note, 300) : c.kind === "unknown" ? c.reason : ""),
  };
}

interface Applied {
  outcome: MessageOutcome;
  note: string;
  agent: string | undefined;
  offline: OfflineOutcome | undefined;
}

/** Inside a transaction: one inbound message's effect on state, recorded with its outcome. */
function applyMessage(
  draft: S,
  now: Date,
  rt: Runtime,
  id: string,
  from: string,
  subject: string,
  c: Classified,
): Applied {
  const agent = Object.values(draft.agents).find(
    (a) => a.session.toLowerCase() === from || a.id.toLowerCase() === from,
  );
  const record = (outcome: MessageOutcome, note: string, taskId?: string): Applied => {
    draft.messages[id] = {
      id,
      at: now.toISOString(),
      from,
      subject: oneLine(subject, 200),
      kind: c.kind,
      ...(taskId ? { task_id: taskId } : {}),
      outcome,
      note: cap(note, 500),
    };
    return { outcome, note, agent: agent?.id, offline: undefined };
  };

  if (!agent) {
    recordDecision(draft, now, {
      action: "flag-sender",
      rule: "only roster agents are acted on",
      inputs: { from, message_id: id, kind: c.kind },
      outcome: "flagged, not acted on",
    });
    return record("flagged", `sender ${from} is not on the roster`);
  }
  if (agent.availability === "offline") agentBackInDraft(draft, now, agent.id, `message ${id}`);
  if (c.kind === "unknown") return record("ignored", c.reason);
  if (c.kind === "heartbeat") return record("applied", `heartbeat from ${agent.id}`);

  const taskId = c.task_id;
  const task = taskId ? draft.tasks[taskId] : undefined;
  if (taskId && !task) return record("ignored", `unknown task ${taskId}`, taskId);
  if (task && (task.assignee !== agent.id || (c.epoch !== undefined && c.epoch !== task.assignment_epoch))) {
    recordDecision(draft, now, {
      action: "quarantine",
      rule: "rule 2: a message about a task from an agent that no longer holds it is not acted on",
      task_id: task.task_id,
      agent: agent.id,
      inputs: {
        message_id: id,
        kind: c.kind,
        holder: task.assignee ?? null,
        epoch: c.epoch ?? null,
        current_epoch: task.assignment_epoch,
      },
      outcome: "quarantined",
    });
    return record(
      "quarantined",
      `${agent.id} does not hold ${task.task_id} (holder: ${task.assignee ?? "nobody"})`,
      task.task_id,
    );
  }

  if (task?.status === "done" && c.kind !== "escalation" && c.kind !== "error") {
    // Late news about finished work (a stale report, a [BLOCKED] after the merge) must not reopen it.
    return record("ignored", `${task.task_id} is already done`, task.task_id);
  }

  switch (c.kind) {
    case "ack":
      if (!task!.acked_at) {
        task!.acked_at = now.toISOString();
        history(task!, now, "acknowledged", `by ${agent.id}`);
      }
      return record("applied", `${agent.id} acknowledged ${taskId}`, taskId);
    case "progress":
      task!.acked_at ??= now.toISOString();
      if (c.percent !== undefined) task!.progress_percent = c.percent;
      task!.progress_note = cap(c.note, 500);
      if (c.branch) task!.branch = c.branch;
      history(task!, now, "progress", `${c.percent ?? "?"}% ${oneLine(c.note, 120)}`);
      return record("applied", `${taskId} at ${c.percent ?? "?"}%`, taskId);
    case "completion": {
      task!.acked_at ??= now.toISOString();
      if (c.branch) task!.branch = c.branch;
      if (!c.pr_number && !task!.pr_number) {
        history(task!, now, "completion-without-pr", oneLine(c.note, 200));
        return record("applied", `${agent.id} reports ${taskId} complete but names no PR`, taskId);
      }
      if (c.pr_number) task!.pr_number = c.pr_number;
      if (task!.status === "in-progress" || task!.status === "ai-review") task!.status = "ai-review";
      task!.progress_percent = 100;
      history(task!, now, "completion-report", `PR #${task!.pr_number}: ${oneLine(c.note, 200)}`);
      enqueueEffect(draft, now, "labels", { task_id: task!.task_id });
      return record("applied", `${taskId} reported complete with PR #${task!.pr_number}: review it`, taskId);
    }
    case "error":
      recordIncident(draft, now, {
        ...(taskId ? { task_id: taskId } : {}),
        kind: "agent-error",
        occurrence: `reported by ${agent.id}`,
        description: cap(c.note, 500),
        action: "reported to the orchestrator for analysis",
      });
      if (task) history(task, now, "error-report", oneLine(c.note, 200));
      return record("applied", `${agent.id} reports an error${taskId ? ` on ${taskId}` : ""}`, taskId);
    case "blocked": {
      const t = task!;
      if (t.status !== "blocked") Object.assign(t, blockTransition(t.status));
      t.blocked_reason = `${agent.id}: ${oneLine(c.note, 300)}`;
      history(t, now, "blocked", t.blocked_reason);
      enqueueEffect(draft, now, "labels", { task_id: t.task_id });
      const esc = escalateInDraft(draft, now, rt.config, {
        category: "blocker",
        task_id: t.task_id,
        issue: `${t.task_id} is blocked: ${oneLine(c.note, 300)}`,
        context: `reported by ${agent.id}`,
        raised_by: agent.id,
      });
      return record("applied", `${taskId} blocked; ${esc.escalation.id} queued for the user`, taskId);
    }
    case "escalation": {
      const esc = escalateInDraft(draft, now, rt.config, {
        category: c.category,
        ...(taskId ? { task_id: taskId } : {}),
        issue: oneLine(c.note, 500),
        context: `raised by ${agent.id} in message ${id}`,
        raised_by: agent.id,
      });
      return record(
        "applied",
        `${agent.id} escalated (${c.category}): ${esc.merged ? `merged into ${esc.escalation.id}` : `${esc.escalation.id} ${esc.escalation.level}`}`,
        taskId,
      );
    }
  }
}

/** Rule 3: one reminder after `ack_timeout_minutes`, then the task moves on. */
function ackChecks(draft: S, now: Date, rt: Runtime, changes: string[]): void {
  const tasks = tasksNow(draft);
  // Counted only when a task moves on, then kept current by dispatch.
  let loads: Map<string, number> | undefined;
  for (const seen of tasks) {
    if (seen.status !== "in-progress" || !seen.assignee) continue;
    const verdict = ackVerdict(seen, now, rt.config.limits.ack_timeout_minutes);
    if (verdict === "ok") continue;
    const task = draft.tasks[seen.task_id]!;
    const agent = draft.agents[seen.assignee]!;
    if (verdict === "remind") {
      task.ack_reminder_at = now.toISOString();
      enqueueNotice(
        draft,
        now,
        task.task_id,
        ackReminderMessage(plain(task) as TaskRecord, agent.session, task.assignment_epoch),
      );
      history(task, now, "ack-reminder", `to ${agent.id}`);
      changes.push(`reminded ${agent.id} to acknowledge ${task.task_id}`);
      continue;
    }
    reassignUnresponsive(draft, now, task, agent, (loads ??= agentLoads(tasks)), changes);
  }
}

function reassignUnresponsive(
  draft: S,
  now: Date,
  task: Draft<TaskRecord>,
  agent: Draft<AgentRecord>,
  loads: Map<string, number>,
  changes: string[],
): void {
  recordIncident(draft, now, {
    task_id: task.task_id,
    kind: "no-ack",
    occurrence: "after assignment",
    description: `${agent.id} did not acknowledge ${task.task_id} after a reminder`,
    action: "reassigned",
  });
  const others = Object.values(draft.agents).filter((a) => a.id !== agent.id);
  const choice = chooseReplacement(task, agent, others, loads);
  recordDecision(draft, now, {
    action: "reassign",
    rule: "rule 3: no acknowledgement after the reminder window: the agent is unresponsive for this task",
    task_id: task.task_id,
    agent: agent.id,
    inputs: { assigned_at: task.assigned_at ?? null, reminder_at: task.ack_reminder_at ?? null },
    outcome: choice.agent !== null ? `to ${choice.agent}` : `queued: ${choice.reason}`,
  });
  if (!task.previous_assignees.includes(agent.id)) task.previous_assignees.push(agent.id);
  // Should the silent agent wake up, it must know the task is no longer its own.
  enqueueNotice(
    draft,
    now,
    task.task_id,
    stopNoticeMessage(plain(task) as TaskRecord, agent.session, "no acknowledgement after the reminder"),
  );
  if (choice.agent !== null) {
    const out = dispatchInDraft(draft, now, task.task_id, { preferred: choice.agent, loads });
    changes.push(
      out.status === "dispatched"
        ? `reassigned ${task.task_id} from unresponsive ${agent.id} to ${out.agent}`
        : `queued ${task.task_id}: ${out.reason}`,
    );
    return;
  }
  delete task.assignee;
  task.status = "todo";
  task.queue = { since: now.toISOString(), reason: `${agent.id} did not acknowledge; ${choice.reason}` };
  history(task, now, "queued", task.queue.reason);
  enqueueEffect(draft, now, "labels", { task_id: task.task_id });
  changes.push(`queued ${task.task_id}: ${task.queue.reason}`);
}

function describeOffline(o: OfflineOutcome): string {
  const parts = [`${o.agent} marked offline`];
  for (const r of o.reassigned) parts.push(`${r.task_id} → ${r.to}`);
  for (const q of o.queued) parts.push(`${q.task_id} queued`);
  if (o.halted) parts.push("every agent offline: assignment halted, user paged");
  return parts.join("; ");
}

/**
 * At most this many actions are listed per cycle: the orchestrator works through a handful at a
 * time, and a night with thousands of unassigned tasks must not put thousands of lines into every
 * answer. The rest are counted (`actions_more`) and come up in later cycles.
 */
export const ACTIONS_DUE_LIMIT = 20;

/**
 * What the orchestrator should do next, most urgent first: undelivered escalations, reviews
 * (which free an agent), the report when every task is settled, then tasks waiting to be assigned.
 */
export function actionsDue(state: Readonly<State>): { actions: ActionDue[]; more: number } {
  const session = state.sessions.find((s) => s.id === state.current_session_id);
  if (!session) {
    return {
      actions: [{ tool: "start_session", task_id: null, why: "no session yet", arguments: {} }],
      more: 0,
    };
  }
  if (session.status === "awaiting_approval") {
    const approve: ActionDue = {
      tool: "start_session",
      task_id: null,
      why: "the confirmation awaits the user's approval",
      arguments: { session_id: session.id, approve: true },
    };
    return { actions: [approve], more: 0 };
  }
  // One entry for all of them: a hub that is down must not crowd the reviews out of the list.
  const undelivered = state.escalations.filter(
    (e) => e.status === "open" && e.delivery.status !== "delivered",
  );
  const ids = undelivered.slice(0, 5).map((e) => e.id);
  if (undelivered.length > ids.length) ids.push(`${undelivered.length - ids.length} more`);
  const escalations: ActionDue[] = undelivered.length
    ? [
        {
          tool: "check_messages",
          task_id: undelivered.length === 1 ? (undelivered[0]!.task_id ?? null) : null,
          why:
            `escalation ${ids.join(", ")} ${undelivered.length === 1 ? "is" : "are"} not delivered yet ` +
            `(${undelivered[0]!.delivery.last_error ?? "pending"}); it is retried every cycle`,
          arguments: {},
        },
      ]
    : [];
  const reviews: ActionDue[] = [];
  const assigns: ActionDue[] = [];
  let settled = true;
  const latestReview = latestReviews(state);
  for (const id of session.task_ids) {
    const t = state.tasks[id];
    if (!settledStatus(t?.status)) settled = false;
    if (!t) continue;
    if (t.status === "ai-review" && t.pr_number) {
      const awaiting = latestReview.get(`${id}#${t.pr_number}`)?.decision === "awaiting_assessment";
      reviews.push({
        tool: "review_pr",
        task_id: id,
        why: awaiting
          ? `PR #${t.pr_number} passed the mechanical checks so far: give your spec_assessment`
          : `review PR #${t.pr_number} for ${id}`,
        arguments: { pr_number: t.pr_number, task_id: id },
      });
    } else if (t.status === "todo" && !t.queue && !t.parked_by) {
      assigns.push({
        tool: "assign_task",
        task_id: id,
        why: `${id} is approved but not assigned`,
        arguments: { task_id: id },
      });
    }
  }
  const report: ActionDue[] =
    session.status !== "complete" && settled
      ? [
          {
            tool: "write_report",
            task_id: null,
            why: "every task is done, at human review or blocked",
            arguments: { session_id: session.id },
          },
        ]
      : [];
  const all = [...escalations, ...reviews, ...report, ...assigns];
  return { actions: all.slice(0, ACTIONS_DUE_LIMIT), more: Math.max(0, all.length - ACTIONS_DUE_LIMIT) };
}

/** The newest review of each task's PR, keyed `task#pr`. */
function latestReviews(state: Readonly<State>): Map<string, Readonly<ReviewRecord>> {
  const out = new Map<string, Readonly<ReviewRecord>>();
  for (const r of Object.values(state.reviews)) {
    const key = `${r.task_id}#${r.pr_number}`;
    const seen = out.get(key);
    if (!seen || r.at > seen.at) out.set(key, r);
  }
  return out;
}
