import { EoaError } from "../../errors.js";
import type { EscalationRules, Priority } from "../../state/schema.js";
import { missingCapabilities } from "../assignment.js";
import { findCycle } from "../dependencies.js";
import { dispatch, type DispatchOutcome } from "./dispatch.js";
import { note, requireAgent, requireTask, type Step } from "./records.js";

/** Phase 1–2 for one task: the orchestrator's plan for it applied, then dispatched now or queued. */

export interface AssignRequest {
  task_id: string;
  agent?: string | undefined;
  priority?: Priority | undefined;
  instructions?: string | undefined;
  completion_criteria?: string[] | undefined;
  test_requirements?: string[] | undefined;
  escalation_rules?: Partial<EscalationRules> | undefined;
  next_task_on_complete?: string | undefined;
  depends_on?: string[] | undefined;
}

export function assignRequested(s: Step, args: AssignRequest): DispatchOutcome {
  const { draft } = s;
  const task = requireTask(draft, args.task_id);
  const session = draft.sessions.find((x) => x.id === task.session_id);
  if (!session || session.status === "awaiting_approval" || session.status === "complete") {
    throw new EoaError(
      "SESSION_NOT_RUNNING",
      `the session of ${task.task_id} is ${session?.status ?? "missing"}`,
      session?.status === "awaiting_approval"
        ? `approve it first: start_session { session_id: "${session.id}", approve: true }`
        : "start a new session with start_session",
    );
  }
  if (task.status === "done") {
    throw new EoaError("TASK_DONE", `${task.task_id} is already done`, "nothing to assign; read eoa://tasks");
  }
  // Checked first: a parked task may still name its agent, and the answer is the escalation.
  if (task.parked_by) {
    throw new EoaError(
      "TASK_PARKED",
      `${task.task_id} is parked by escalation ${task.parked_by}`,
      `it is dispatched by itself once resolve_escalation ${task.parked_by} records the user's answer`,
    );
  }
  if (task.assignee && task.status !== "todo") {
    throw new EoaError(
      "TASK_ALREADY_ASSIGNED",
      `${task.task_id} is held by ${task.assignee} (${task.status})`,
      "to move it, use mark_agent_offline on that agent, or wait for its completion report",
    );
  }
  if (task.status === "blocked") {
    throw new EoaError(
      "TASK_BLOCKED",
      `${task.task_id} is blocked: ${task.blocked_reason ?? "no reason recorded"}`,
      "resolve what blocks it first (eoa://escalations)",
    );
  }
  if (args.agent) {
    const agent = requireAgent(draft, args.agent);
    const missing = missingCapabilities(agent, task);
    if (missing.length) {
      throw new EoaError(
        "AGENT_INCAPABLE",
        `${agent.id} lacks ${missing.join(", ")}, which ${task.task_id} requires`,
        "pick an agent whose capabilities cover the task (eoa://roster), or omit agent to let the server choose",
      );
    }
  }
  for (const ref of [
    ...(args.depends_on ?? []),
    ...(args.next_task_on_complete ? [args.next_task_on_complete] : []),
  ]) {
    if (ref === task.task_id) {
      throw new EoaError(
        "BAD_DEPENDENCY",
        `${task.task_id} cannot refer to itself`,
        "remove it from depends_on / next_task_on_complete",
      );
    }
    requireTask(draft, ref);
  }
  if (args.depends_on) {
    const graph = Object.create(null) as Record<string, string[]>;
    for (const t of Object.values(draft.tasks)) graph[t.task_id] = [...t.depends_on];
    graph[task.task_id] = args.depends_on;
    const cycle = findCycle(graph);
    if (cycle) {
      throw new EoaError(
        "DEPENDENCY_CYCLE",
        `these dependencies would form a cycle: ${cycle.join(" → ")}`,
        "drop one of them; nothing was changed",
        { cycle },
      );
    }
    task.depends_on = args.depends_on;
  }
  if (args.priority) task.priority = args.priority;
  if (args.instructions) task.instructions = args.instructions;
  if (args.completion_criteria) task.completion_criteria = args.completion_criteria;
  if (args.test_requirements) task.test_requirements = args.test_requirements;
  if (args.escalation_rules) task.escalation_rules = { ...task.escalation_rules, ...args.escalation_rules };
  if (args.next_task_on_complete) task.next_task_on_complete = args.next_task_on_complete;
  note(s, task, "assign-requested", args.agent ? `agent ${args.agent}` : "server picks the agent");
  return dispatch(s, task.task_id, { preferred: args.agent });
}
