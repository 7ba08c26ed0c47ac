import type { KanbanColumn, TaskRecord } from "./schema.js";

/**
 * The committed tasks by what the rules look them up by: their column, and whether they wait in
 * the queue (issue 16). A dispatch needs every agent's load and a cycle the queued tasks; walking
 * all tasks for them made each call cost O(tasks) (half of `assign_task` at 10,000 tasks).
 *
 * Only the store's own task maps are indexed: it builds the index when it loads a map and tells it
 * of every change it makes to one (`taskChanged`), the one place those maps change. Any other map
 * (a test's, the machine run on a plain object) has none, and its readers walk it.
 */

export type TaskKey = KanbanColumn | "queued";

const keysOf = (t: TaskRecord): TaskKey[] => (t.queue ? [t.status, "queued"] : [t.status]);

class TaskIndex {
  private readonly ids = new Map<TaskKey, Set<string>>();
  /** How many tasks each agent holds, by column: an agent's load is a sum of these (rule 1). */
  private readonly held = new Map<KanbanColumn, Map<string, number>>();
  /** Where each task is filed, to take it out when it changes. */
  private readonly filed = new Map<
    string,
    { keys: TaskKey[]; holder: string | undefined; status: KanbanColumn }
  >();

  constructor(tasks: Record<string, TaskRecord>) {
    for (const id of Object.keys(tasks)) this.file(id, tasks[id]);
  }

  file(id: string, task: TaskRecord | undefined): void {
    const was = this.filed.get(id);
    if (was) {
      for (const k of was.keys) this.ids.get(k)?.delete(id);
      if (was.holder) count(this.held, was.status, was.holder, -1);
      this.filed.delete(id);
    }
    if (!task) return;
    const keys = keysOf(task);
    for (const k of keys) {
      let set = this.ids.get(k);
      if (!set) this.ids.set(k, (set = new Set()));
      set.add(id);
    }
    if (task.assignee) count(this.held, task.status, task.assignee, 1);
    this.filed.set(id, { keys, holder: task.assignee, status: task.status });
  }

  with(key: TaskKey): ReadonlySet<string> {
    return this.ids.get(key) ?? EMPTY;
  }

  heldIn(columns: readonly KanbanColumn[]): Map<string, number> {
    const out = new Map<string, number>();
    for (const c of columns) for (const [agent, n] of this.held.get(c) ?? []) bump(out, agent, n);
    return out;
  }
}

function count(
  held: Map<KanbanColumn, Map<string, number>>,
  column: KanbanColumn,
  agent: string,
  by: number,
): void {
  let agents = held.get(column);
  if (!agents) held.set(column, (agents = new Map()));
  bump(agents, agent, by);
}

/** Adds `by` to a count kept by agent, dropping an agent whose count comes to 0 (it holds none). */
export function bump(counts: Map<string, number>, agent: string, by: number): void {
  const n = (counts.get(agent) ?? 0) + by;
  if (n) counts.set(agent, n);
  else counts.delete(agent);
}

const EMPTY: ReadonlySet<string> = new Set();
const indexes = new WeakMap<object, TaskIndex>();

/** Indexes a task map the store has just loaded or made: from here on it reports each change. */
export function indexTasks(tasks: Record<string, TaskRecord>): void {
  indexes.set(tasks, new TaskIndex(tasks));
}

/** The store set (or, with undefined, removed) task `id` of an indexed map. */
export function taskChanged(tasks: object, id: string, task: TaskRecord | undefined): void {
  indexes.get(tasks)?.file(id, task);
}

/** The ids filed under any of `keys` in an indexed map; undefined for a map without an index. */
export function idsUnder(tasks: object, keys: readonly TaskKey[]): ReadonlySet<string> | undefined {
  const index = indexes.get(tasks);
  if (!index) return undefined;
  if (keys.length === 1) return index.with(keys[0]!);
  const out = new Set<string>();
  for (const k of keys) for (const id of index.with(k)) out.add(id);
  return out;
}

/**
 * How many tasks of an indexed map each agent holds (is the assignee of) in `columns`; an agent
 * holding none is absent. Undefined for a map without an index.
 */
export function heldIn(tasks: object, columns: readonly KanbanColumn[]): Map<string, number> | undefined {
  return indexes.get(tasks)?.heldIn(columns);
}

/** Whether a task (as it stands, a draft included) is filed under one of `keys`. */
export function filedUnder(task: TaskRecord, keys: readonly TaskKey[]): boolean {
  return keysOf(task).some((k) => keys.includes(k));
}

/** Tasks in their ids' natural order (GH-2 before GH-10): the index keeps no order of its own. */
export const byTaskId = (a: TaskRecord, b: TaskRecord) =>
  a.task_id.localeCompare(b.task_id, "en", { numeric: true });

/**
 * The tasks of a committed map filed under any of `keys`: through the index when the map has one,
 * else by walking it. In no particular order: sort (`byTaskId`) where the order decides anything.
 */
export function tasksUnder(
  tasks: Readonly<Record<string, TaskRecord>>,
  keys: readonly TaskKey[],
): TaskRecord[] {
  const ids = idsUnder(tasks, keys);
  if (!ids) return Object.values(tasks).filter((t) => filedUnder(t, keys));
  return [...ids].map((id) => tasks[id]!);
}
