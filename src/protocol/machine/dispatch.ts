import { current, type Draft } from "immer";
import { tasksFiled } from "../../state/records.js";
import type { AgentRecord, MessagePayload, TaskRecord } from "../../state/schema.js";
import { chooseAgent, dispatchBlocker, dispatchOrder, moveLoad } from "../assignment.js";
import { assignedStatus } from "../kanban.js";
import { assignmentMessage, handoffMessage } from "../messages.js";
import { decide, effect, loadsNow, note, syncLabels, type Step } from "./records.js";

/**
 * Dispatch: rules 1 and 2. A task goes out only when its dependencies are done, it is not parked by
 * an escalation, and an eligible agent exists; otherwise it waits in the queue and the server sends
 * it itself as soon as it can (after a merge, an agent freeing up, an agent returning).
 */

export type DispatchOutcome =
  | {
      status: "dispatched";
      task_id: string;
      agent: string;
      epoch: number;
      effects: string[];
      decision: string;
    }
  | { status: "queued"; task_id: string; reason: string };

export interface DispatchOptions {
  preferred?: string | undefined;
  handoffFrom?: string | undefined;
  /** The rule that chose `preferred` (e.g. "first eligible backup agent of X"), for the decision log. */
  rule?: string | undefined;
  /** Agents that may not take it (going offline this cycle, or the one that never answered). */
  excluded?: ReadonlySet<string> | undefined;
  /**
   * Every agent's load, when a pass dispatches or hands over many tasks: computed once and kept
   * up to date here, instead of one walk over all tasks per task.
   */
  loads?: Map<string, number> | undefined;
}

/** Dispatch the task now if the rules allow, else (re)queue it with the reason. */
export function dispatch(s: Step, taskId: string, opts: DispatchOptions = {}): DispatchOutcome {
  const { draft, now } = s;
  const task = draft.tasks[taskId]!;
  const preferred = opts.preferred ?? task.queue?.preferred_agent;
  const session = draft.sessions.find((x) => x.id === task.session_id);
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
      note(s, task, "queued", reason);
      decide(s, {
        action: "queue",
        rule: "rule 1: dispatch only when dependencies are done and an eligible agent has room",
        task_id: taskId,
        ...(preferred ? { agent: preferred } : {}),
        inputs: { depends_on: [...task.depends_on], preferred_agent: preferred ?? null },
        // Every queue line names the agent it waits for, or says that none is chosen and why.
        outcome: preferred ? `queued for ${preferred}: ${reason}` : `queued, no agent chosen: ${reason}`,
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

  // Read, not drafted: a draft of every agent on every dispatch cost more than the choice.
  const agents = Object.values(current(draft.agents) as Record<string, AgentRecord>).map((a) =>
    opts.excluded?.has(a.id) ? { ...a, availability: "offline" as const } : a,
  );
  const loads = opts.loads ?? loadsNow(draft);
  const choice = chooseAgent(task, agents, loads, preferred);
  if (choice.agent === null) return queue(choice.reason);

  const agent = agents.find((a) => a.id === choice.agent)!;
  // The task as it was: a dispatch changes none of what the message says.
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
  note(s, task, opts.handoffFrom ? "handoff" : "assigned", `to ${agent.id} (epoch ${epoch})`);
  const decision = decide(s, {
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
  const message = opts.handoffFrom
    ? handoffMessage(before, agent.session, epoch, opts.handoffFrom)
    : assignmentMessage(before, agent.session, epoch);
  const payload: MessagePayload = {
    message,
    purpose: "assignment",
    task_id: taskId,
    epoch,
    // Undelivered, the task goes back where it was; a handoff goes back to the queue (as todo:
    // a queued task waits for dispatch, whatever column its old holder had reached).
    revert: {
      status: opts.handoffFrom || before.status === "in-progress" ? "todo" : before.status,
      ...(before.queue || opts.handoffFrom
        ? { queue: before.queue ?? { since: now.toISOString(), reason: "handoff message not delivered" } }
        : {}),
    },
  };
  const msgEffect = effect(s, decision, "message", payload);
  const labelEffect = syncLabels(s, decision, taskId);
  return {
    status: "dispatched",
    task_id: taskId,
    agent: agent.id,
    epoch,
    effects: [msgEffect, labelEffect],
    decision,
  };
}

/** Every queued task that can go now, in priority order. */
export function autoDispatch(s: Step): DispatchOutcome[] {
  const running = new Set(s.draft.sessions.filter((x) => x.status === "running").map((x) => x.id));
  // Read in place, before any of them is dispatched: the tasks a cycle has changed are not copied.
  const queued = dispatchOrder(tasksFiled(s.draft, ["queued"]).filter((t) => running.has(t.session_id))).map(
    (t) => t.task_id,
  );
  const loads = loadsNow(s.draft);
  return queued.map((id) => dispatch(s, id, { loads }));
}

/**
 * Takes a task off its agent and puts it in the queue, where rule 1 dispatches it as soon as it
 * can. `prefer` keeps the agent as the one to go back to (a parked task resuming); otherwise the
 * agent is remembered as a previous assignee.
 */
export function requeue(
  s: Step,
  task: Draft<TaskRecord>,
  reason: string,
  decision: string,
  opts: { prefer?: string | undefined } = {},
): void {
  if (task.assignee && !opts.prefer && !task.previous_assignees.includes(task.assignee)) {
    task.previous_assignees.push(task.assignee);
  }
  delete task.assignee;
  task.status = "todo";
  task.queue = {
    since: s.now.toISOString(),
    reason,
    ...(opts.prefer ? { preferred_agent: opts.prefer } : {}),
  };
  note(s, task, "queued", reason);
  syncLabels(s, decision, task.task_id);
}
