import type { Draft } from "immer";
import { copyOut, draftOf } from "./draft.js";
import type { State, TaskRecord } from "./schema.js";

/** Reading records inside a transaction (the writers are the state machine's: protocol/machine). */

type S = Draft<State>;

/** A plain copy of a record read inside a transaction (drafts are revoked when it ends). */
export function plain<T>(value: T): T {
  const copy = copyOut(value) as T;
  return Object.isFrozen(copy) ? structuredClone(copy) : copy;
}

/**
 * The tasks as they stand inside a transaction: untouched ones as they are (frozen), changed or
 * added ones copied. In a store transaction this walks the task map without drafting anything
 * (see StateDraft); on a plain immer draft (the state machine's pure `step`) it copies each task.
 * Change a task through `draft.tasks[id]`.
 */
export function tasksNow(draft: S): TaskRecord[] {
  return draftOf(draft.tasks)?.values() ?? Object.values(draft.tasks).map((t) => copyOut(t) as TaskRecord);
}
