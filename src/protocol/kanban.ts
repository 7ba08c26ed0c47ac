import type { KanbanColumn } from "../state/schema.js";

/**
 * Rule 7: the kanban lives in `status:<column>` labels (exactly one) and `assign:<agent>` labels
 * (at most one, none once the task is done).
 */

export const STATUS_PREFIX = "status:";
export const ASSIGN_PREFIX = "assign:";

/** The label set an issue should carry: its other labels kept, status and assignee replaced. */
export function kanbanLabels(
  current: readonly string[],
  status: KanbanColumn,
  assignee: string | undefined,
): string[] {
  const kept = current.filter((l) => !l.startsWith(STATUS_PREFIX) && !l.startsWith(ASSIGN_PREFIX));
  const out = [...kept, `${STATUS_PREFIX}${status}`];
  if (assignee && status !== "done") out.push(`${ASSIGN_PREFIX}${assignee}`);
  return out;
}

/**
 * The column of a task just assigned: in progress, except that a handoff of work already reported
 * keeps its column (the PR still awaits review or merge).
 */
export function assignedStatus(before: KanbanColumn, handoff: boolean): KanbanColumn {
  return handoff && (before === "ai-review" || before === "merge-release") ? before : "in-progress";
}

/**
 * Where a task rests for the night: merged, waiting for a person, or blocked. A session whose tasks
 * all rest is finished (the report's "complete"); a task that is missing does not rest.
 */
export function settled(status: KanbanColumn | undefined): boolean {
  return status === "done" || status === "human-review" || status === "blocked";
}

/** Matches a project's Status option to a column, tolerating "In progress", "In-Progress", "AI Review". */
export function matchStatusOption<T extends { name: string }>(
  options: readonly T[],
  column: KanbanColumn,
): T | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[^a-z]/g, "");
  return options.find((o) => norm(o.name) === norm(column));
}

/** Blocking records where the task was; unblocking goes back there. */
export function blockTransition(status: KanbanColumn): {
  status: KanbanColumn;
  previous_status: KanbanColumn;
} {
  return { status: "blocked", previous_status: status === "blocked" ? "todo" : status };
}

export function unblockTransition(previous: KanbanColumn | undefined): KanbanColumn {
  return previous && previous !== "blocked" ? previous : "todo";
}
