import type { Draft } from "immer";
import type { Config } from "../../config.js";
import { plain, tasksWhere } from "../../state/records.js";
import type { AgentRecord, MessageOutcome, TaskRecord } from "../../state/schema.js";
import { chooseReplacement } from "../assignment.js";
import { errorKind, type Classified } from "../classify.js";
import { ackVerdict, heartbeatVerdict } from "../liveness.js";
import { ackReminderMessage, stopNoticeMessage } from "../messages.js";
import { cap, oneLine } from "../text.js";
import { autoDispatch, dispatch, requeue } from "./dispatch.js";
import { block, escalate } from "./escalation.js";
import { agentBack, markOffline, type OfflineOutcome } from "./offline.js";
import { decide, effect, incident, loadsNow, note, notice, syncLabels, type Step } from "./records.js";
import { forgetOld } from "./retention.js";

/**
 * Phase 3, one poll cycle (rules 2-5): the inbox's messages applied in order (never an id twice),
 * then the level-triggered checks: missed heartbeats, ack deadlines, auto-dispatch.
 */

/** A message read from the inbox, already classified (untrusted text, capped). */
export interface InboxMessage {
  id: string;
  from: string;
  subject: string;
  classified: Classified;
}

export interface PollCycleEvidence {
  messages: readonly InboxMessage[];
  /** AI Maestro names shown online; null when the hub could not be asked (nobody misses a beat). */
  online: ReadonlySet<string> | null;
  /** The inbox was read: without it no heartbeat or ack deadline is judged blind. */
  inbox_read: boolean;
  /** Messages still unread in the inbox after this cycle (beyond the limit, unreadable); null: unknown. */
  unread?: number | null | undefined;
}

export interface AppliedMessage {
  id: string;
  outcome: MessageOutcome | "already-processed";
  note: string;
}

export interface CycleOutcome {
  count: number;
  /** Whether this cycle counted (heartbeats, ack deadlines): at most one per poll interval. */
  counted: boolean;
  applied: AppliedMessage[];
  offline: OfflineOutcome[];
  changes: string[];
}

export function pollCycle(s: Step, e: PollCycleEvidence): CycleOutcome {
  const { draft, now, config } = s;
  const changes: string[] = [];
  const senders = new Set<string>();
  const applied: AppliedMessage[] = [];
  const rosterIds = senderIndex(draft.agents);
  for (const m of e.messages) {
    if (draft.messages[m.id]) {
      applied.push({ id: m.id, outcome: "already-processed", note: "processed before" });
      continue;
    }
    const a = applyMessage(s, m, rosterIds.get(m.from));
    if (a.agent) senders.add(a.agent);
    applied.push({ id: m.id, outcome: a.outcome, note: a.note });
    if (a.outcome === "applied") changes.push(`${m.id}: ${a.note}`);
  }
  if (e.unread !== undefined && e.unread !== null && draft.cycle.unread !== e.unread)
    draft.cycle.unread = e.unread;
  const counted = countCycle(s);
  const offline: OfflineOutcome[] = [];
  const leaving: Array<{ id: string; missed: number }> = [];
  if (counted && e.online && e.inbox_read) {
    for (const agent of Object.values(draft.agents)) {
      const v = heartbeatVerdict(
        {
          availability: agent.availability,
          missed: agent.missed_heartbeats,
          online: e.online.has(agent.session.toLowerCase()),
          messaged: senders.has(agent.id),
        },
        config.limits.heartbeat_missed_threshold,
      );
      if (v.missed !== agent.missed_heartbeats) agent.missed_heartbeats = v.missed;
      if (v.missed === 0) agent.last_seen = now.toISOString(); // once per interval at most
      if (v.comesBack) {
        agentBack(s, agent.id, senders.has(agent.id) ? "sent a message" : "online in AI Maestro");
        changes.push(`${agent.id} is back online`);
      }
      if (v.goesOffline) leaving.push({ id: agent.id, missed: v.missed });
    }
  }
  // Every agent that goes offline this cycle is known before any work is handed over, so that no
  // task is handed to an agent that is leaving too.
  const leavingIds = new Set(leaving.map((l) => l.id));
  for (const l of leaving) {
    const out = markOffline(s, l.id, `missed ${l.missed} consecutive heartbeats`, leavingIds);
    offline.push(out);
    changes.push(describeOffline(out));
  }
  // The ack may be in the inbox that could not be read: no deadline is judged blind.
  if (counted && e.inbox_read) ackChecks(s, changes);
  if (counted) dueReruns(s, changes);
  for (const o of autoDispatch(s)) {
    if (o.status === "dispatched") changes.push(`dispatched ${o.task_id} to ${o.agent}`);
  }
  return { count: draft.cycle.count, counted, applied, offline, changes };
}

/** Whether a poll cycle would count now: the first, or one a whole interval after the last. */
export function cycleDue(cycle: { last_at?: string | undefined }, now: Date, config: Config): boolean {
  const last = cycle.last_at;
  return !last || now.getTime() - new Date(last).getTime() >= config.limits.poll_interval_seconds * 1000;
}

/** Most poll cycles recorded as gaps (the report names each). */
const MAX_GAPS = 50;

/**
 * Rule 4: a cycle counts at most once per poll interval, however often it is asked for, so that quick
 * calls never take an agent offline. A counted cycle more than two intervals after the last one
 * records the gap: nobody looked in between.
 */
function countCycle(s: Step): boolean {
  const { draft, now, config } = s;
  const interval = config.limits.poll_interval_seconds * 1000;
  const last = draft.cycle.last_at;
  if (!cycleDue(draft.cycle, now, config)) return false;
  if (last && now.getTime() - new Date(last).getTime() > 2 * interval) {
    const gaps = (draft.cycle.gaps ??= []);
    gaps.push({ from: last, to: now.toISOString() });
    if (gaps.length > MAX_GAPS) gaps.splice(0, gaps.length - MAX_GAPS);
  }
  draft.cycle.count += 1;
  draft.cycle.last_at = now.toISOString();
  forgetOld(s);
  return true;
}

interface Applied {
  outcome: MessageOutcome;
  note: string;
  agent: string | undefined;
}

/**
 * The roster agent each sender name stands for: its AI Maestro session or its id, lower-cased (the
 * first agent to claim a name keeps it). Built once a cycle, not searched for each message.
 */
function senderIndex(agents: Record<string, AgentRecord>): Map<string, string> {
  const index = new Map<string, string>();
  for (const a of Object.values(agents)) {
    for (const name of [a.session.toLowerCase(), a.id.toLowerCase()])
      if (!index.has(name)) index.set(name, a.id);
  }
  return index;
}

/** One inbound message's effect on state, recorded with its outcome; `agentId`: the roster agent it is from. */
function applyMessage(s: Step, m: InboxMessage, agentId: string | undefined): Applied {
  const { draft, now, config } = s;
  const { id, from, classified: c } = m;
  const agent = agentId === undefined ? undefined : draft.agents[agentId];
  const record = (outcome: MessageOutcome, text: string, taskId?: string): Applied => {
    draft.messages[id] = {
      id,
      at: now.toISOString(),
      from,
      subject: oneLine(m.subject, 200),
      kind: c.kind,
      ...(taskId ? { task_id: taskId } : {}),
      outcome,
      note: cap(text, 500),
    };
    return { outcome, note: text, agent: agent?.id };
  };

  if (!agent) {
    decide(s, {
      action: "flag-sender",
      rule: "rule 2: only roster agents are acted on",
      inputs: { from, message_id: id, kind: c.kind },
      outcome: "flagged, not acted on",
    });
    return record("flagged", `sender ${from} is not on the roster`);
  }
  if (agent.availability === "offline") agentBack(s, agent.id, `message ${id}`);
  if (c.kind === "unknown") return record("ignored", c.reason);
  if (c.kind === "heartbeat") return record("applied", `heartbeat from ${agent.id}`);

  const taskId = c.task_id;
  const task = taskId ? draft.tasks[taskId] : undefined;
  if (taskId && !task) return record("ignored", `unknown task ${taskId}`, taskId);
  if (task && (task.assignee !== agent.id || (c.epoch !== undefined && c.epoch !== task.assignment_epoch))) {
    decide(s, {
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
        note(s, task!, "acknowledged", `by ${agent.id}`);
      }
      return record("applied", `${agent.id} acknowledged ${taskId}`, taskId);
    case "progress":
      task!.acked_at ??= now.toISOString();
      if (c.percent !== undefined) task!.progress_percent = c.percent;
      task!.progress_note = cap(c.note, 500);
      task!.progress_claim = {
        by: agent.id,
        at: now.toISOString(),
        ...(c.percent !== undefined ? { percent: c.percent } : {}),
      };
      if (c.branch) task!.branch = c.branch;
      note(s, task!, "progress", `${c.percent ?? "?"}% ${oneLine(c.note, 120)}`);
      return record("applied", `${taskId} at ${c.percent ?? "?"}%`, taskId);
    case "completion": {
      const t = task!;
      t.acked_at ??= now.toISOString();
      if (c.branch) t.branch = c.branch;
      if (!c.pr_number && !t.pr_number) {
        note(s, t, "completion-without-pr", oneLine(c.note, 200));
        return record("applied", `${agent.id} reports ${taskId} complete but names no PR`, taskId);
      }
      if (c.pr_number) t.pr_number = c.pr_number;
      const toReview = t.status === "in-progress" || t.status === "ai-review";
      if (toReview) t.status = "ai-review";
      t.progress_percent = 100;
      note(s, t, "completion-report", `PR #${t.pr_number}: ${oneLine(c.note, 200)}`);
      const decision = decide(s, {
        action: "review-due",
        rule: "rule 6: a completion report with a PR is reviewed through both gates",
        task_id: t.task_id,
        agent: agent.id,
        inputs: { message_id: id, pr_number: t.pr_number ?? null },
        outcome: toReview ? `ai-review: review PR #${t.pr_number}` : `stays ${t.status}`,
      });
      syncLabels(s, decision, t.task_id);
      return record("applied", `${taskId} reported complete with PR #${t.pr_number}: review it`, taskId);
    }
    case "error": {
      const kind = errorKind(c.note);
      const repeated = recentErrors(s, from) + 1 >= config.limits.errors_before_offline;
      const next = repeated
        ? `mark_agent_offline ${agent.id} due (${config.limits.errors_before_offline} errors within ${config.limits.ack_timeout_minutes} min)`
        : kind === "environment"
          ? "reassign_task due: the agent's environment, not the task"
          : "send_instructions due: fix instructions for the task's own failure";
      incident(s, {
        ...(taskId ? { task_id: taskId } : {}),
        kind: "agent-error",
        agent: agent.id,
        occurrence: `reported by ${agent.id}`,
        description: cap(c.note, 500),
        action: next,
      });
      decide(s, {
        action: "error-report",
        rule: "rule 5b: an error report is read for its kind and the orchestrator's move is due",
        ...(taskId ? { task_id: taskId } : {}),
        agent: agent.id,
        inputs: { message_id: id, kind, repeated },
        outcome: next,
      });
      if (repeated) agent.failing = { errors: config.limits.errors_before_offline, since: now.toISOString() };
      if (task && task.assignee === agent.id) {
        note(s, task, "error-report", oneLine(c.note, 200));
        task.awaiting = {
          kind: "error",
          message_id: id,
          agent: agent.id,
          epoch: task.assignment_epoch,
          at: now.toISOString(),
          note: cap(c.note, 500),
          error_kind: kind,
        };
      }
      return record(
        "applied",
        `${agent.id} reports an error${taskId ? ` on ${taskId}` : ""}: ${next}`,
        taskId,
      );
    }
    case "blocked": {
      const t = task!;
      const esc = escalate(s, {
        category: "blocker",
        task_id: t.task_id,
        issue: `${t.task_id} is blocked: ${oneLine(c.note, 300)}`,
        context: `reported by ${agent.id}`,
        raised_by: agent.id,
      });
      // The agent's report is in the history either way; parked by a new escalation the task is
      // blocked already (the escalation is its reason), merged into an open one it is blocked here.
      const report = `${agent.id}: ${oneLine(c.note, 300)}`;
      // Its merge is decided: the merge goes on, and the report waits for the user as an escalation.
      if (t.status === "merge-release") note(s, t, "blocked-report", report);
      else if (esc.merged || t.parked_by !== esc.escalation.id) block(s, t, report, esc.decision);
      else note(s, t, "blocked", report);
      return record("applied", `${taskId} blocked; ${esc.escalation.id} queued for the user`, taskId);
    }
    case "escalation": {
      // A question (architecture, dependency) is the orchestrator's to judge now and the user's to
      // see later: the task is parked only if the agent says it stopped.
      const question = c.category === "architecture" || c.category === "dependency";
      const going = question && !c.stopped;
      const esc = escalate(s, {
        category: c.category,
        ...(taskId ? { task_id: taskId } : {}),
        issue: oneLine(c.note, 500),
        context: `raised by ${agent.id} in message ${id}`,
        raised_by: agent.id,
        ...(c.current_action || going
          ? { current_action: c.current_action ?? `${agent.id} goes on while the orchestrator judges` }
          : {}),
      });
      if (question && task && task.assignee === agent.id) {
        task.awaiting = {
          kind: "question",
          message_id: id,
          agent: agent.id,
          epoch: task.assignment_epoch,
          at: now.toISOString(),
          note: cap(c.note, 500),
          escalation_id: esc.escalation.id,
        };
      }
      return record(
        "applied",
        `${agent.id} escalated (${c.category}): ${esc.merged ? `merged into ${esc.escalation.id}` : `${esc.escalation.id} ${esc.escalation.level}`}`,
        taskId,
      );
    }
  }
}

/** Rule 3: one reminder after `ack_timeout_minutes`, then the task moves on. */
function ackChecks(s: Step, changes: string[]): void {
  const timeout = s.config.limits.ack_timeout_minutes;
  const late = tasksWhere(
    s.draft,
    (t) => t.status === "in-progress" && ackVerdict(t, s.now, timeout) !== "ok",
  );
  // Counted only when a task moves on (a reminder moves none), then kept current by dispatch.
  let loads: Map<string, number> | undefined;
  for (const seen of late) {
    if (!seen.assignee) continue;
    const verdict = ackVerdict(seen, s.now, timeout);
    const task = s.draft.tasks[seen.task_id]!;
    const agent = s.draft.agents[seen.assignee]!;
    if (verdict === "remind") {
      task.ack_reminder_at = s.now.toISOString();
      note(s, task, "ack-reminder", `to ${agent.id}`);
      const decision = decide(s, {
        action: "ack-reminder",
        rule: "rule 3: no acknowledgement within ack_timeout_minutes: one reminder",
        task_id: task.task_id,
        agent: agent.id,
        inputs: { assigned_at: task.assigned_at ?? null },
        outcome: "reminded",
      });
      notice(
        s,
        decision,
        task.task_id,
        ackReminderMessage(plain(task) as TaskRecord, agent.session, task.assignment_epoch),
      );
      changes.push(`reminded ${agent.id} to acknowledge ${task.task_id}`);
      continue;
    }
    reassignUnresponsive(s, task, agent, (loads ??= loadsNow(s.draft)), changes);
  }
}

function reassignUnresponsive(
  s: Step,
  task: Draft<TaskRecord>,
  agent: Draft<AgentRecord>,
  loads: Map<string, number>,
  changes: string[],
): void {
  incident(s, {
    task_id: task.task_id,
    kind: "no-ack",
    occurrence: "after assignment",
    description: `${agent.id} did not acknowledge ${task.task_id} after a reminder`,
    action: "reassigned",
  });
  const others = Object.values(s.draft.agents).filter((a) => a.id !== agent.id);
  const choice = chooseReplacement(task, agent, others, loads);
  if (choice.agent === null) {
    // Back to the same agent only when no other may take it, and the decision says so: a fresh
    // assignment (new epoch, new message, new deadline), not a silent requeue it would get anyway.
    const decision = decide(s, {
      action: "reassign",
      rule: `rule 3: no acknowledgement after the reminder window, and no other eligible agent (${choice.reason})`,
      task_id: task.task_id,
      agent: agent.id,
      inputs: { assigned_at: task.assigned_at ?? null, reminder_at: task.ack_reminder_at ?? null },
      outcome: `sent again to ${agent.id}, the only agent that may take it`,
    });
    requeue(s, task, `${agent.id} did not acknowledge; ${choice.reason}`, decision, { prefer: agent.id });
    const out = dispatch(s, task.task_id, { preferred: agent.id, loads });
    changes.push(
      out.status === "dispatched"
        ? `sent ${task.task_id} again to ${agent.id}: no other agent may take it`
        : `queued ${task.task_id}: ${out.reason}`,
    );
    return;
  }
  const decision = decide(s, {
    action: "reassign",
    rule: "rule 3: no acknowledgement after the reminder window: the agent is unresponsive for this task",
    task_id: task.task_id,
    agent: agent.id,
    inputs: { assigned_at: task.assigned_at ?? null, reminder_at: task.ack_reminder_at ?? null },
    outcome: `to ${choice.agent}`,
  });
  if (!task.previous_assignees.includes(agent.id)) task.previous_assignees.push(agent.id);
  // Should the silent agent wake up, it must know the task is no longer its own.
  notice(
    s,
    decision,
    task.task_id,
    stopNoticeMessage(plain(task) as TaskRecord, agent.session, "no acknowledgement after the reminder"),
  );
  // Never back to the agent that did not answer, even if the chosen one turns out not to fit.
  const out = dispatch(s, task.task_id, { preferred: choice.agent, loads, excluded: new Set([agent.id]) });
  changes.push(
    out.status === "dispatched"
      ? `reassigned ${task.task_id} from unresponsive ${agent.id} to ${out.agent}`
      : `queued ${task.task_id}: ${out.reason}`,
  );
}

function describeOffline(o: OfflineOutcome): string {
  const parts = [`${o.agent} marked offline`];
  for (const r of o.reassigned) parts.push(`${r.task_id} → ${r.to}`);
  for (const q of o.queued) parts.push(`${q.task_id} queued`);
  if (o.halted)
    parts.push(
      `every agent offline: assignment halted until the user answers ${o.escalation_id ?? "the page"} (urgent page queued)`,
    );
  return parts.join("; ");
}

/**
 * Rule 6: a failed CI seen by a review is re-run on the next counted poll cycle after it, by name,
 * and only while the task still waits on that head in review.
 */
function dueReruns(s: Step, changes: string[]): void {
  const now = s.now.toISOString();
  for (const seen of tasksWhere(
    s.draft,
    (t) => t.ci_rerun_due !== undefined && t.ci_rerun_due.seen_at < now,
  )) {
    const due = seen.ci_rerun_due!;
    const t = s.draft.tasks[seen.task_id]!;
    delete t.ci_rerun_due;
    if (t.status !== "ai-review" || t.review_head !== due.sha) continue;
    const names = due.checks.map((c) => c.name).join(", ");
    const decision = decide(s, {
      action: "ci-rerun",
      rule: "rule 6: a failed check a re-run can clear is re-run on the next poll cycle",
      task_id: t.task_id,
      ...(t.assignee ? { agent: t.assignee } : {}),
      inputs: { pr_number: due.pr_number, sha: due.sha, checks: names },
      outcome: `re-run ${names} on PR #${due.pr_number}`,
    });
    effect(s, decision, "rerun", { sha: due.sha, pr_number: due.pr_number, checks: due.checks });
    changes.push(`${t.task_id}: CI re-run of ${names} on PR #${due.pr_number}`);
  }
}

/** Error reports already recorded from this sender within the ack window. */
function recentErrors(s: Step, from: string): number {
  const since = s.now.getTime() - s.config.limits.ack_timeout_minutes * 60_000;
  let n = 0;
  for (const m of Object.values(s.draft.messages))
    if (m.kind === "error" && m.from === from && new Date(m.at).getTime() >= since) n++;
  return n;
}
