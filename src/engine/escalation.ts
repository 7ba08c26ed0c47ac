import type { Draft } from "immer";
import { EoaError } from "../errors.js";
import { escalationLevel, findDuplicate, holdAfterAnswer, parksTask } from "../protocol/escalation.js";
import { blockTransition, unblockTransition } from "../protocol/kanban.js";
import { decisionMessage, escalationMessage } from "../protocol/messages.js";
import { policyFromDirective } from "../protocol/escalation.js";
import { agentLoad, eligibility } from "../protocol/assignment.js";
import {
  enqueueEffect,
  history,
  nextEscalationId,
  plain,
  recordDecision,
  tasksNow,
} from "../state/records.js";
import type { EscalationCategory, EscalationRecord, State } from "../state/schema.js";
import type { Config } from "../config.js";
import { autoDispatchInDraft, requireTask } from "./dispatch.js";
import { enqueueNotice, flushEffects, type MessagePayload } from "./effects.js";
import type { Runtime } from "./runtime.js";

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
}

export interface EscalateOutcome {
  escalation: EscalationRecord;
  merged: boolean;
  effects: string[];
}

type S = Draft<State>;

export function escalateInDraft(draft: S, now: Date, config: Config, input: EscalateInput): EscalateOutcome {
  if (input.task_id) requireTask(draft, input.task_id);
  const session = draft.sessions.find((s) => s.id === draft.current_session_id);
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
    recordDecision(draft, now, {
      action: "escalate",
      rule: "rule 8: an open escalation of the same task and category absorbs a new one",
      ...(input.task_id ? { task_id: input.task_id } : {}),
      inputs: { category: input.category, raised_by: input.raised_by, issue: input.issue },
      outcome: `merged into ${dup.id} (${dup.occurrences} occurrences)`,
    });
    return { escalation: plain(dup) as EscalationRecord, merged: true, effects: [] };
  }
  const level = escalationLevel(input.category, policy);
  const esc: EscalationRecord = {
    id: nextEscalationId(draft),
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
  const labelEffects: string[] = [];
  if (input.task_id && parksTask(level, input.category, input.current_action)) {
    const task = draft.tasks[input.task_id]!;
    if (task.status !== "done") {
      if (task.status !== "blocked") Object.assign(task, blockTransition(task.status));
      // A task already parked by another escalation is held by both; this one, the newest, speaks.
      task.blocked_reason = parkedReason(esc);
      task.parked_by = esc.id;
      delete task.queue;
      esc.parked_tasks.push(task.task_id);
      history(task, now, "blocked", task.blocked_reason);
      labelEffects.push(enqueueEffect(draft, now, "labels", { task_id: task.task_id }));
    }
  }
  draft.escalations.push(esc);
  const payload: MessagePayload = {
    message: escalationMessage(esc),
    purpose: "escalation",
    escalation_id: esc.id,
  };
  const effect = enqueueEffect(draft, now, "message", payload as unknown as Record<string, unknown>);
  recordDecision(draft, now, {
    action: "escalate",
    rule:
      level === "immediate"
        ? `rule 8: ${input.category} is immediate under ${policy.source}`
        : `rule 8: ${input.category} is deferred under ${policy.source}`,
    ...(input.task_id ? { task_id: input.task_id } : {}),
    inputs: { category: input.category, raised_by: input.raised_by, issue: input.issue },
    outcome: `${esc.id} ${level} to ${esc.channel}${esc.parked_tasks.length ? `; parked ${esc.parked_tasks.join(", ")}` : ""}`,
  });
  return { escalation: plain(esc), merged: false, effects: [effect, ...labelEffects] };
}

function parkedReason(esc: Pick<EscalationRecord, "id" | "category" | "issue">): string {
  return `escalation ${esc.id} (${esc.category}): ${esc.issue}`;
}

export async function escalate(
  rt: Runtime,
  input: EscalateInput,
): Promise<EscalateOutcome & { delivered: boolean; delivery_error?: string }> {
  const now = rt.now();
  const out = await rt.store.transact((draft) => escalateInDraft(draft, now, rt.config, input));
  if (!out.effects.length) return { ...out, delivered: out.escalation.delivery.status === "delivered" };
  const result = (await flushEffects(rt, out.effects)).find((o) => o.id === out.effects[0]);
  const esc = (await rt.store.read()).escalations.find((e) => e.id === out.escalation.id) ?? out.escalation;
  return {
    ...out,
    escalation: structuredClone(esc) as EscalationRecord,
    delivered: result?.ok ?? false,
    ...(result && !result.ok ? { delivery_error: result.error! } : {}),
  };
}

export interface ResolveOutcome {
  escalation: EscalationRecord;
  unparked: string[];
  /** Tasks it held that another open escalation holds too: they wait for that answer. */
  still_parked: Array<{ task_id: string; escalation_id: string }>;
  dispatched: string[];
}

export async function resolveEscalation(
  rt: Runtime,
  escalationId: string,
  decision: string,
): Promise<ResolveOutcome> {
  const now = rt.now();
  const out = await rt.store.transact((draft) => {
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
    esc.resolution = { decision, at: now.toISOString() };
    esc.updated_at = now.toISOString();
    const unparked: string[] = [];
    const stillParked: ResolveOutcome["still_parked"] = [];
    const tell = (agentId: string | undefined, taskId: string, stillParkedBy?: string) => {
      const agent = agentId ? draft.agents[agentId] : undefined;
      if (agent)
        enqueueNotice(
          draft,
          now,
          taskId,
          decisionMessage(esc, taskId, agent.session, decision, stillParkedBy),
        );
    };
    for (const id of esc.parked_tasks) {
      const task = draft.tasks[id];
      if (!task?.parked_by) continue;
      const hold = holdAfterAnswer(draft.escalations, esc.id, id, task.parked_by);
      if (hold === "untouched") continue;
      if (hold !== "resume") {
        // The task waits for that answer as well; its agent hears this one meanwhile.
        const other = hold.heldBy;
        if (task.parked_by !== other.id) {
          task.parked_by = other.id;
          task.blocked_reason = parkedReason(other);
        }
        history(task, now, "still-parked", `${esc.id} resolved: ${decision}; ${other.id} still holds it`);
        stillParked.push({ task_id: id, escalation_id: other.id });
        tell(task.assignee, id, other.id);
        continue;
      }
      delete task.parked_by;
      if (task.status === "blocked") {
        const back = unblockTransition(task.previous_status);
        delete task.previous_status;
        delete task.blocked_reason;
        const holder = task.assignee ? draft.agents[task.assignee] : undefined;
        // Parked, the task stopped counting against its agent, who may have taken other work since:
        // it resumes there only while that agent may take it (rule 1), else it waits in the queue for it.
        const fits =
          holder !== undefined && eligibility(holder, task, agentLoad(holder.id, tasksNow(draft))).ok;
        if (back === "todo" || !fits) {
          // Not held by a working agent with room: it goes back through dispatch.
          task.status = "todo";
          task.queue = {
            since: now.toISOString(),
            reason: `unparked by ${esc.id}`,
            ...(task.assignee ? { preferred_agent: task.assignee } : {}),
          };
          delete task.assignee;
        } else {
          task.status = back;
          tell(holder.id, id);
        }
      }
      history(task, now, "unparked", `${esc.id} resolved: ${decision}`);
      enqueueEffect(draft, now, "labels", { task_id: id });
      unparked.push(id);
    }
    recordDecision(draft, now, {
      action: "resolve-escalation",
      rule: "the user's answer un-parks the tasks the escalation held",
      ...(esc.task_id ? { task_id: esc.task_id } : {}),
      inputs: { escalation_id: esc.id, decision },
      outcome:
        [
          unparked.length ? `un-parked ${unparked.join(", ")}` : "",
          stillParked.length
            ? `still parked: ${stillParked.map((p) => `${p.task_id} by ${p.escalation_id}`).join(", ")}`
            : "",
        ]
          .filter(Boolean)
          .join("; ") || "no task was parked",
    });
    const dispatched = autoDispatchInDraft(draft, now)
      .filter((o) => o.status === "dispatched")
      .map((o) => o.task_id);
    return { escalation: plain(esc) as EscalationRecord, unparked, still_parked: stillParked, dispatched };
  });
  await flushEffects(rt);
  return out;
}
