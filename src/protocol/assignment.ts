import type { AgentRecord, KanbanColumn, Priority, TaskRecord } from "../state/schema.js";
import { unmetDependencies } from "./dependencies.js";

/**
 * Rule 1 (assignment): an agent receives a task only if it is active, its capabilities cover the
 * task's, and it holds fewer than its limit of dispatched, unfinished tasks.
 */

/** Columns in which a task occupies its agent. Blocked and human-review work does not: the agent moved on. */
export const OCCUPYING: readonly KanbanColumn[] = ["in-progress", "ai-review", "merge-release"];

export const PRIORITY_RANK: Record<Priority, number> = { critical: 0, high: 1, normal: 2, low: 3 };

type AgentView = Pick<
  AgentRecord,
  "id" | "availability" | "capabilities" | "max_concurrent_tasks" | "backup"
>;
type TaskView = Pick<
  TaskRecord,
  "task_id" | "status" | "assignee" | "required_capabilities" | "depends_on" | "priority" | "parked_by"
> & { queue?: { since: string } | undefined };

/** Every agent's load in one pass over the tasks (an agent with none is absent: load 0). */
export function agentLoads(tasks: Iterable<TaskView>): Map<string, number> {
  const loads = new Map<string, number>();
  for (const t of tasks) {
    if (t.assignee && OCCUPYING.includes(t.status)) loads.set(t.assignee, (loads.get(t.assignee) ?? 0) + 1);
  }
  return loads;
}

/** Keeps `loads` (from `agentLoads`) current as a task moves from one holder and column to another. */
export function moveLoad(
  loads: Map<string, number>,
  from: { agent: string | undefined; status: KanbanColumn },
  to: { agent: string; status: KanbanColumn },
): void {
  if (from.agent && OCCUPYING.includes(from.status)) loads.set(from.agent, (loads.get(from.agent) ?? 1) - 1);
  if (OCCUPYING.includes(to.status)) loads.set(to.agent, (loads.get(to.agent) ?? 0) + 1);
}

export function missingCapabilities(
  agent: Pick<AgentView, "capabilities">,
  task: Pick<TaskView, "required_capabilities">,
): string[] {
  const have = new Set(agent.capabilities.map((c) => c.toLowerCase()));
  return task.required_capabilities.filter((c) => !have.has(c.toLowerCase()));
}

export type Eligibility =
  { ok: true } | { ok: false; reason: string; kind: "availability" | "capability" | "capacity" };

export function eligibility(agent: AgentView, task: TaskView, load: number): Eligibility {
  if (agent.availability !== "active") {
    return { ok: false, kind: "availability", reason: `${agent.id} is ${agent.availability}` };
  }
  const missing = missingCapabilities(agent, task);
  if (missing.length) {
    return { ok: false, kind: "capability", reason: `${agent.id} lacks ${missing.join(", ")}` };
  }
  if (load >= agent.max_concurrent_tasks) {
    return {
      ok: false,
      kind: "capacity",
      reason: `${agent.id} is at its limit (${load}/${agent.max_concurrent_tasks} tasks)`,
    };
  }
  return { ok: true };
}

export type AgentChoice = { agent: string; rule: string } | { agent: null; reason: string; kind: string };

/**
 * Picks the agent for a task, given every agent's load (`agentLoads`). A named agent gets it only
 * if eligible (no silent substitution). Otherwise: among eligible agents, the least loaded, then
 * roster order.
 */
export function chooseAgent(
  task: TaskView,
  agents: readonly AgentView[],
  loads: ReadonlyMap<string, number>,
  preferred?: string,
): AgentChoice {
  if (agents.length > 0 && agents.every((a) => a.availability === "offline")) {
    return { agent: null, kind: "halted", reason: "every agent is offline: assignment is halted" };
  }
  if (preferred) {
    const agent = agents.find((a) => a.id === preferred);
    if (!agent) return { agent: null, kind: "unknown-agent", reason: `${preferred} is not on the roster` };
    const e = eligibility(agent, task, loads.get(agent.id) ?? 0);
    return e.ok
      ? { agent: agent.id, rule: "requested agent is eligible" }
      : { agent: null, kind: e.kind, reason: e.reason };
  }
  const reasons: string[] = [];
  let best: { id: string; load: number; index: number } | undefined;
  agents.forEach((agent, index) => {
    const load = loads.get(agent.id) ?? 0;
    const e = eligibility(agent, task, load);
    if (!e.ok) {
      reasons.push(e.reason);
      return;
    }
    if (!best || load < best.load) best = { id: agent.id, load, index };
  });
  if (best) return { agent: best.id, rule: "capable, active, least loaded, then roster order" };
  const capable = agents.filter((a) => missingCapabilities(a, task).length === 0);
  const kind = !capable.length
    ? "capability"
    : capable.some((a) => a.availability === "active")
      ? "capacity"
      : "availability";
  return {
    agent: null,
    kind,
    reason: agents.length ? `no eligible agent: ${reasons.join("; ")}` : "the roster is empty",
  };
}

/** Why a task cannot be dispatched yet, apart from agent choice; null when it may go. */
export function dispatchBlocker(task: TaskView, statusOf: (id: string) => string | undefined): string | null {
  if (task.parked_by) return `parked until escalation ${task.parked_by} is resolved`;
  const unmet = unmetDependencies(task.depends_on, statusOf);
  if (unmet.length) return `waiting for ${unmet.join(", ")}`;
  return null;
}

/** Queued tasks in dispatch order: priority, then how long they waited. */
export function dispatchOrder<T extends TaskView>(queued: readonly T[]): T[] {
  return [...queued].sort(
    (a, b) =>
      PRIORITY_RANK[a.priority] - PRIORITY_RANK[b.priority] ||
      (a.queue?.since ?? "").localeCompare(b.queue?.since ?? "") ||
      a.task_id.localeCompare(b.task_id),
  );
}

/**
 * Rule 5: where an offline agent's task goes: the first backup that is active, capable and has
 * room, else the best other agent, else nobody (the task is queued).
 */
export function chooseReplacement(
  task: TaskView,
  from: AgentView,
  agents: readonly AgentView[],
  loads: ReadonlyMap<string, number>,
): { agent: string; rule: string } | { agent: null; reason: string } {
  for (const id of from.backup) {
    const b = agents.find((a) => a.id === id);
    if (b && eligibility(b, task, loads.get(b.id) ?? 0).ok) {
      return { agent: b.id, rule: `first eligible backup agent of ${from.id}` };
    }
  }
  const others = agents.filter((a) => a.id !== from.id);
  const choice = chooseAgent(task, others, loads);
  if (choice.agent !== null) return { agent: choice.agent, rule: "no eligible backup: best other agent" };
  return { agent: null, reason: choice.reason };
}
