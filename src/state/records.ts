import type { Draft } from "immer";
import { copyOut, draftOf } from "./draft.js";
import type { KanbanColumn, State, TaskRecord } from "./schema.js";
import { bump, filedUnder, type TaskKey } from "./task-index.js";

/** Reading records inside a transaction (the writers are the state machine's: protocol/machine). */

type S = Draft<State>;

/** A plain copy of a record read inside a transaction (drafts are revoked when it ends). */
export function plain<T>(value: T): T {
  const copy = copyOut(value) as T;
  return Object.isFrozen(copy) ? structuredClone(copy) : copy;
}

/**
 * The tasks as they stand inside a transaction, read in place: a task the transaction changed is
 * its draft, not a copy, so read what is needed at once (a count, a choice) and keep nothing of it
 * across a write. In a store transaction this walks the task map without drafting or copying
 * anything (see StateDraft), however many tasks the transaction has changed.
 */
export function tasksInPlace(draft: S): readonly TaskRecord[] {
  return draftOf(draft.tasks)?.inPlace() ?? Object.values(draft.tasks);
}

/**
 * The tasks `pick` holds for (it reads each in place), as they stand inside a transaction:
 * untouched ones as they are (frozen), changed or added ones copied, so that what the transaction
 * does next does not reach them. Only the picked ones are copied. Change a task through
 * `draft.tasks[id]`.
 */
export function tasksWhere(draft: S, pick: (task: TaskRecord) => boolean): TaskRecord[] {
  return tasksInPlace(draft)
    .filter(pick)
    .map((t) => copyOut(t) as TaskRecord);
}

/**
 * The tasks filed under any of `keys` (a column, or "queued"), read in place as `tasksInPlace`
 * reads them: in a store transaction through the store's index, without walking every task. In
 * no particular order: sort where the order decides anything.
 */
export function tasksFiled(draft: S, keys: readonly TaskKey[]): readonly TaskRecord[] {
  return draftOf(draft.tasks)?.under(keys) ?? tasksInPlace(draft).filter((t) => filedUnder(t, keys));
}

/**
 * How many tasks each agent holds (is the assignee of) in `columns`, as the transaction stands:
 * in a store transaction from the store's index, in O(tasks the transaction changed).
 */
export function heldNow(draft: S, columns: readonly KanbanColumn[]): Map<string, number> {
  const indexed = draftOf(draft.tasks)?.heldIn(columns);
  if (indexed) return indexed;
  const held = new Map<string, number>();
  for (const t of tasksFiled(draft, columns)) if (t.assignee) bump(held, t.assignee, 1);
  return held;
}
