import { current, type Draft } from "immer";
import { EoaError } from "../errors.js";
import { agentLoads, chooseAgent, dispatchBlocker, dispatchOrder, moveLoad } from "../protocol/assignment.js";
import { assignedStatus } from "../protocol/kanban.js";
import { assignmentMessage, handoffMessage } from "../protocol/messages.js";
import { enqueueEffect, history, recordDecision, tasksNow } from "../state/records.js";
import type { State, TaskRecord } from "../state/schema.js";
import type { MessagePayload } from "./effects.js";
import type { Runtime } from "./runtime.js";

/**
 * Dispatch: rules 1 and 2. A task goes out only when its dependencies are done, it is not parked by
 * an escalation, and an eligible agent exists; otherwise it waits in the queue and the server sends
 * it itself as soon as it can (after a merge, an agent freeing up, an agent returning).
 */

export type DispatchOutcome =
  | { status: "dispatched"; task_id: string; agent: string; epoch: number; effects: string[] }
  | { status: "queued"; task_id: string; reason: string };

type S = Draft<State>;

/** Inside a transaction: dispatch the task now if the rules allow, else (re)queue it with the reason. */
export function dispatchInDraft(
  draft: S,
  now: Date,
  taskId: string,
  opts: {
    preferred?: string | undefined;
    handoffFrom?: string | undefined;
    /** The rule that chose `preferred` (e.g. "first eligible backup agent of X"), for the decision log. */
    rule?: string | undefined;
    /**
     * Every agent's load, when a pass dispatches or hands over many tasks: computed once and kept
     * up to date here, instead of one walk over all tasks per task.
     */
    loads?: Map<string, number> | undefined;
  } = {},
): DispatchOutcome {
  const task = draft.tasks[taskId]!;
  const preferred = opts.preferred ?? task.queue?.preferred_agent;
  const session = draft.sessions.find((s) => s.id === task.session_id);
  const queue = (reason: string): DispatchOutcome => {
    const changed = task.queue?.reason !== reason;
    // Written only when it differs: every queued task is tried on every pass, and a rewrite, even
    // of equal values, would copy the task and journal it each time.
    if (changed || !task.queue || task.queue.preferred_agent !== preferred) {
      task.queue = {
        since: task.queue?.since ?? now.toISOString(),
        reason,
        ...(preferred ? { preferred_agent: preferred } : {}),
      };
    }
    if (task.status !== "todo") task.status = "todo";
    if (changed) {
      history(task, now, "queued", reason);
      recordDecision(draft, now, {
        action: "queue",
        rule: "rule 1: dispatch only when dependencies are done and an eligible agent has room",
        task_id: taskId,
        ...(preferred ? { agent: preferred } : {}),
        inputs: { depends_on: [...task.depends_on], preferred_agent: preferred ?? null },
        outcome: `queued: ${reason}`,
      });
    }
    return { status: "queued", task_id: taskId, reason };
  };

  if (!session || session.status === "awaiting_approval") return queue("the session is not approved yet");
  if (session.status === "halted")
    return queue(`assignment is halted: ${session.halted_reason ?? "no agent left"}`);
  const statusOf = (id: string) => draft.tasks[id]?.status;
  const blocker = dispatchBlocker(task, statusOf);
  if (blocker) return queue(blocker);

  const agents = Object.values(draft.agents);
  const loads = opts.loads ?? agentLoads(tasksNow(draft));
  const choice = chooseAgent(task, agents, loads, preferred);
  if (choice.agent === null) return queue(choice.reason);

  const agent = draft.agents[choice.agent]!;
  const before = current(task) as TaskRecord;
  const previousAssignee = task.assignee;
  task.assignment_epoch += 1;
  task.assignee = agent.id;
  task.assigned_at = now.toISOString();
  task.status = assignedStatus(before.status, !!opts.handoffFrom);
  delete task.previous_status;
  delete task.blocked_reason;
  delete task.acked_at;
  delete task.ack_reminder_at;
  delete task.assignment_message_id;
  delete task.queue;
  if (
    previousAssignee &&
    previousAssignee !== agent.id &&
    !task.previous_assignees.includes(previousAssignee)
  ) {
    task.previous_assignees.push(previousAssignee);
  }
  if (opts.loads) {
    moveLoad(
      loads,
      { agent: previousAssignee, status: before.status },
      { agent: agent.id, status: task.status },
    );
  }
  const epoch = task.assignment_epoch;
  const snapshot = current(task) as TaskRecord;
  const message = opts.handoffFrom
    ? handoffMessage(snapshot, agent.session, epoch, opts.handoffFrom)
    : assignmentMessage(snapshot, agent.session, epoch);
  const payload: MessagePayload = {
    message,
    purpose: "assignment",
    task_id: taskId,
    epoch,
    // Undelivered, the task goes back where it was; a handoff goes back to the queue.
    revert: {
      status: before.status === "in-progress" ? "todo" : before.status,
      ...(before.queue || opts.handoffFrom
        ? { queue: before.queue ?? { since: now.toISOString(), reason: "handoff message not delivered" } }
        : {}),
    },
  };
  const msgEffect = enqueueEffect(draft, now, "message", payload as unknown as Record<string, unknown>);
  const labelEffect = enqueueEffect(draft, now, "labels", { task_id: taskId });
  history(task, now, opts.handoffFrom ? "handoff" : "assigned", `to ${agent.id} (epoch ${epoch})`);
  recordDecision(draft, now, {
    action: opts.handoffFrom ? "reassign" : "assign",
    rule: opts.handoffFrom ? `rule 5: ${opts.rule ?? choice.rule}` : `rule 1: ${choice.rule}`,
    task_id: taskId,
    agent: agent.id,
    inputs: {
      required_capabilities: [...task.required_capabilities],
      preferred_agent: preferred ?? null,
      ...(opts.handoffFrom ? { from: opts.handoffFrom } : {}),
    },
    outcome: `dispatched to ${agent.id}`,
  });
  return { status: "dispatched", task_id: taskId, agent: agent.id, epoch, effects: [msgEffect, labelEffect] };
}

/** Inside a transaction: every queued task that can go now, in priority order. */
export function autoDispatchInDraft(draft: S, now: Date): DispatchOutcome[] {
  const running = new Set(draft.sessions.filter((s) => s.status === "running").map((s) => s.id));
  const tasks = tasksNow(draft);
  const queued = dispatchOrder(tasks.filter((t) => t.queue && running.has(t.session_id)));
  const loads = agentLoads(tasks);
  return queued.map((t) => dispatchInDraft(draft, now, t.task_id, { loads }));
}

/** After flushing: an assignment whose message failed was reverted, so report it as queued. */
export async function confirmDelivery(rt: Runtime, outcomes: DispatchOutcome[]): Promise<DispatchOutcome[]> {
  const state = await rt.store.read();
  return outcomes.map((o) => {
    if (o.status !== "dispatched") return o;
    const t = state.tasks[o.task_id];
    if (t && t.assignee === o.agent && t.assignment_epoch === o.epoch) return o;
    const err =
      state.outbox.find((e) => e.id === o.effects[0])?.error ?? "the assignment message was not delivered";
    return { status: "queued", task_id: o.task_id, reason: `sending to ${o.agent} failed: ${err}` };
  });
}

export function requireTask(draft: S | State, taskId: string): TaskRecord {
  const task = draft.tasks[taskId];
  if (!task) {
    throw new EoaError(
      "TASK_NOT_FOUND",
      `no task ${taskId} in this state directory`,
      'add it with start_session (tasks: ["GH-<n>"] or an inline spec), or read eoa://tasks for the known ids',
    );
  }
  return task as TaskRecord;
}

export function requireAgent(draft: S | State, agentId: string) {
  const agent = draft.agents[agentId];
  if (!agent) {
    throw new EoaError(
      "UNKNOWN_AGENT",
      `${agentId} is not on the roster`,
      `use one of: ${Object.keys(draft.agents).join(", ") || "(the roster is empty: configure roster or rosterFile)"}`,
    );
  }
  return agent;
}
