import type { Draft } from "immer";
import { EoaError } from "../../errors.js";
import { plain } from "../../state/records.js";
import type { EscalationCategory, EscalationRecord, TaskRecord } from "../../state/schema.js";
import { eligibility } from "../assignment.js";
import {
  escalationLevel,
  findDuplicate,
  holdAfterAnswer,
  parksTask,
  policyFromDirective,
} from "../escalation.js";
import { blockTransition, unblockTransition } from "../kanban.js";
import { decisionMessage, escalationMessage } from "../messages.js";
import { autoDispatch, requeue, type DispatchOutcome } from "./dispatch.js";
import {
  decide,
  effect,
  incident,
  loadsNow,
  nextEscalationId,
  note,
  notice,
  noteOnGitHub,
  requireTask,
  syncLabels,
  type Step,
} from "./records.js";

/**
 * Rule 8: immediate escalations page the user on `user_channel` and block their task; deferred ones
 * go to `review_queue` while work goes on. The session directive narrows what is immediate
 * (security always is). An open escalation of the same task and category absorbs a new one. An
 * undelivered escalation is kept and retried on every poll cycle.
 */

export interface EscalateInput {
  category: EscalationCategory;
  issue: string;
  task_id?: string | undefined;
  risk?: string | undefined;
  context?: string | undefined;
  current_action?: string | undefined;
  reversible?: boolean | undefined;
  action_required?: string | undefined;
  /** Who raised it (the orchestrator, an agent, a server rule), for the decision log. */
  raised_by: string;
  /** Pages the user whatever the directive says (rule 5's critical-infrastructure case). */
  always_immediate?: { rule: string } | undefined;
}

export interface EscalateOutcome {
  escalation: EscalationRecord;
  merged: boolean;
  /** The message effect that delivers it; null when merged into an open one. */
  delivery_effect: string | null;
  /** The decision that records it (or its merge into an open one). */
  decision: string;
}

/** On a blocked task's PR while it is blocked (rule 7). */
export const BLOCKED_LABEL = "eoa:blocked";

/**
 * Rule 7: blocks the task (its column kept for when it is unblocked) and syncs its labels; newly
 * blocked, it says why on its issue and PR and labels the PR.
 */
export function block(s: Step, t: Draft<TaskRecord>, reason: string, decision: string): void {
  if (t.status !== "blocked") {
    Object.assign(t, blockTransition(t.status));
    noteOnGitHub(s, decision, t, `eoa-mcp: ${t.task_id} is blocked: ${reason}`, true);
    if (t.pr_number)
      effect(s, decision, "pr_label", { pr_number: t.pr_number, label: BLOCKED_LABEL, present: true });
  }
  t.blocked_reason = reason;
  note(s, t, "blocked", reason);
  syncLabels(s, decision, t.task_id);
}

export function escalate(s: Step, input: EscalateInput): EscalateOutcome {
  const { draft, now, config } = s;
  if (input.task_id) requireTask(draft, input.task_id);
  const session = draft.sessions.find((x) => x.id === draft.current_session_id);
  const policy = session?.escalation_policy ?? policyFromDirective(undefined);
  const dup = findDuplicate(
    draft.escalations as EscalationRecord[],
    input.task_id,
    input.category,
    input.issue,
  );
  if (dup) {
    dup.occurrences += 1;
    dup.updated_at = now.toISOString();
    if (input.context && !dup.context?.includes(input.context))
      dup.context = [dup.context, input.context].filter(Boolean).join("\n");
    const decision = decide(s, {
      action: "escalate",
      rule: "rule 8: an open escalation of the same task and category absorbs a new one",
      ...(input.task_id ? { task_id: input.task_id } : {}),
      inputs: { category: input.category, raised_by: input.raised_by, issue: input.issue },
      outcome: `merged into ${dup.id} (${dup.occurrences} occurrences)`,
    });
    return { escalation: plain(dup) as EscalationRecord, merged: true, delivery_effect: null, decision };
  }
  const level = input.always_immediate ? "immediate" : escalationLevel(input.category, policy);
  const esc: EscalationRecord = {
    id: nextEscalationId(s),
    level,
    category: input.category,
    status: "open",
    ...(input.task_id ? { task_id: input.task_id } : {}),
    issue: input.issue,
    ...(input.risk ? { risk: input.risk } : {}),
    ...(input.context ? { context: input.context } : {}),
    ...(input.current_action ? { current_action: input.current_action } : {}),
    ...(input.reversible !== undefined ? { reversible: input.reversible } : {}),
    ...(input.action_required ? { action_required: input.action_required } : {}),
    occurrences: 1,
    created_at: now.toISOString(),
    updated_at: now.toISOString(),
    channel: level === "immediate" ? config.escalation.user_channel : config.escalation.review_queue,
    delivery: { status: "pending", attempts: 0 },
    parked_tasks: [],
  };
  const task = input.task_id ? draft.tasks[input.task_id]! : undefined;
  // A task whose merge is decided is not parked: the merge goes on (it may be made already), and a
  // blocked task would never see it completed (found by the crash test, seed 2436656047).
  const parks =
    !!task &&
    task.status !== "done" &&
    task.status !== "merge-release" &&
    parksTask(level, input.category, input.current_action);
  if (parks) esc.parked_tasks.push(task.task_id);
  draft.escalations.push(esc);
  const decision = decide(s, {
    action: "escalate",
    rule: input.always_immediate
      ? input.always_immediate.rule
      : level === "immediate"
        ? `rule 8: ${input.category} is immediate under ${policy.source}`
        : `rule 8: ${input.category} is deferred under ${policy.source}`,
    ...(input.task_id ? { task_id: input.task_id } : {}),
    inputs: { category: input.category, raised_by: input.raised_by, issue: input.issue },
    outcome: `${esc.id} ${level} to ${esc.channel}${parks ? `; parked ${task.task_id}` : ""}`,
  });
  // A security concern is an issue encountered in the night, found by an agent or by the orchestrator.
  if (input.category === "security")
    incident(s, {
      ...(input.task_id ? { task_id: input.task_id } : {}),
      kind: "security-finding",
      occurrence: `raised by ${input.raised_by}`,
      description: input.issue,
      escalation_id: esc.id,
      action: `escalated (${level})${parks ? `; ${task.task_id} parked` : ""}`,
    });
  const delivery = effect(s, decision, "message", {
    message: escalationMessage(esc),
    purpose: "escalation",
    escalation_id: esc.id,
  });
  if (parks) {
    // A task already parked by another escalation is held by both; this one, the newest, speaks.
    task.parked_by = esc.id;
    delete task.queue;
    block(s, task, parkedReason(esc), decision);
  }
  return { escalation: structuredClone(esc), merged: false, delivery_effect: delivery, decision };
}

function parkedReason(esc: Pick<EscalationRecord, "id" | "category" | "issue">): string {
  return `escalation ${esc.id} (${esc.category}): ${esc.issue}`;
}

export interface ResolveOutcome {
  escalation: EscalationRecord;
  unparked: string[];
  /** Tasks it held that another open escalation holds too: they wait for that answer. */
  still_parked: Array<{ task_id: string; escalation_id: string }>;
  dispatched: string[];
}

/** The user's answer: the escalation closes and the tasks it parked resume (or wait for another). */
export function resolve(s: Step, escalationId: string, answer: string): ResolveOutcome {
  const { draft, now } = s;
  const esc = draft.escalations.find((e) => e.id === escalationId);
  if (!esc) {
    throw new EoaError(
      "ESCALATION_NOT_FOUND",
      `no escalation ${escalationId}`,
      "read eoa://escalations for the open escalations and their ids",
    );
  }
  if (esc.status !== "open") {
    throw new EoaError(
      "ESCALATION_NOT_OPEN",
      `${escalationId} was already resolved on ${esc.resolution?.at ?? "an earlier call"}: ${esc.resolution?.decision ?? ""}`,
      "nothing to do; read eoa://escalations for the open ones",
    );
  }
  esc.status = "resolved";
  esc.resolution = { decision: answer, at: now.toISOString() };
  esc.updated_at = now.toISOString();
  const unparked: string[] = [];
  const stillParked: ResolveOutcome["still_parked"] = [];
  // What each parked task will do is known before the decision is written, so that it says so.
  const plan = esc.parked_tasks.map((id) => {
    const task = draft.tasks[id];
    if (!task?.parked_by) return { id, hold: "untouched" as const };
    return { id, hold: holdAfterAnswer(draft.escalations, esc.id, id, task.parked_by) };
  });
  for (const p of plan) {
    if (p.hold === "resume") unparked.push(p.id);
    else if (p.hold !== "untouched") stillParked.push({ task_id: p.id, escalation_id: p.hold.heldBy.id });
  }
  const decision = decide(s, {
    action: "resolve-escalation",
    rule: "rule 8: the user's answer un-parks the tasks the escalation held",
    ...(esc.task_id ? { task_id: esc.task_id } : {}),
    inputs: { escalation_id: esc.id, decision: answer },
    outcome:
      [
        unparked.length ? `un-parked ${unparked.join(", ")}` : "",
        stillParked.length
          ? `still parked: ${stillParked.map((x) => `${x.task_id} by ${x.escalation_id}`).join(", ")}`
          : "",
      ]
        .filter(Boolean)
        .join("; ") || "no task was parked",
  });
  const tell = (agentId: string | undefined, taskId: string, stillParkedBy?: string) => {
    const agent = agentId ? draft.agents[agentId] : undefined;
    if (agent)
      notice(s, decision, taskId, decisionMessage(esc, taskId, agent.session, answer, stillParkedBy));
  };
  for (const p of plan) {
    if (p.hold === "untouched") continue;
    const task = draft.tasks[p.id]!;
    if (p.hold !== "resume") {
      // The task waits for that answer as well; its agent hears this one meanwhile.
      const other = p.hold.heldBy;
      if (task.parked_by !== other.id) {
        task.parked_by = other.id;
        task.blocked_reason = parkedReason(other);
      }
      note(s, task, "still-parked", `${esc.id} resolved: ${answer}; ${other.id} still holds it`);
      tell(task.assignee, p.id, other.id);
      continue;
    }
    delete task.parked_by;
    note(s, task, "unparked", `${esc.id} resolved: ${answer}`);
    if (task.status !== "blocked") {
      syncLabels(s, decision, p.id);
      continue;
    }
    const back = unblockTransition(task.previous_status);
    delete task.previous_status;
    delete task.blocked_reason;
    if (task.pr_number)
      effect(s, decision, "pr_label", { pr_number: task.pr_number, label: BLOCKED_LABEL, present: false });
    const holder = task.assignee ? draft.agents[task.assignee] : undefined;
    // Parked, the task stopped counting against its agent, who may have taken other work since:
    // it resumes there only while that agent may take it (rule 1), else it waits in the queue for it.
    const fits = holder !== undefined && eligibility(holder, task, loadsNow(draft).get(holder.id) ?? 0).ok;
    if (back === "todo" || !fits) {
      requeue(s, task, `unparked by ${esc.id}`, decision, { prefer: task.assignee });
    } else {
      task.status = back;
      tell(holder.id, p.id);
      syncLabels(s, decision, p.id);
    }
  }
  for (const x of draft.sessions.filter((y) => y.status === "halted" && y.halted_by === esc.id)) {
    // The user answered the page: assignment resumes if an agent is there to take work.
    delete x.halted_by;
    if (Object.values(draft.agents).some((a) => a.availability === "active")) {
      x.status = "running";
      delete x.halted_reason;
      decide(s, {
        action: "resume",
        rule: "rule 5: the user answered the all-agents-offline page and an agent is active",
        inputs: { escalation_id: esc.id },
        outcome: `session ${x.id} running`,
      });
    }
  }
  const dispatched = dispatchedIds(autoDispatch(s));
  return { escalation: plain(esc) as EscalationRecord, unparked, still_parked: stillParked, dispatched };
}

export function dispatchedIds(outcomes: readonly DispatchOutcome[]): string[] {
  return outcomes.filter((o) => o.status === "dispatched").map((o) => o.task_id);
}
