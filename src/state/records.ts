import { current, isDraft, type Draft } from "immer";
import type { State, TaskRecord } from "./schema.js";

/** Reading records inside a transaction (the writers are the state machine's: protocol/machine). */

type S = Draft<State>;

/** A plain copy of a record read inside a transaction (drafts are revoked when it ends). */
export function plain<T>(value: T): T {
  return isDraft(value) ? (current(value as Draft<T>) as T) : structuredClone(value);
}

/** Immer's per-draft bookkeeping, under a registered symbol it shares across immer versions. */
const DRAFT_STATE = Symbol.for("immer-state");
interface DraftState {
  base_: Record<string, TaskRecord>;
  copy_?: Record<string, TaskRecord | Draft<TaskRecord>> | null;
}

/**
 * The tasks as they stand inside a transaction. Neither `Object.values(draft.tasks)` nor
 * `current(draft.tasks)` will do at thousands of tasks: both walk the map through the proxy's
 * traps, and that walk was most of a transaction's time and garbage. Immer's own record of the map
 * holds each task either as it was (frozen, returned as is) or as this transaction made it (a
 * draft, or a new object: copied). Change a task through `draft.tasks[id]`.
 */
export function tasksNow(draft: S): TaskRecord[] {
  const tasks = draft.tasks as unknown as Record<PropertyKey, unknown>;
  if (!isDraft(tasks)) return Object.values(tasks) as TaskRecord[];
  const state = tasks[DRAFT_STATE] as DraftState;
  const source = state.copy_ ?? state.base_;
  const out: TaskRecord[] = [];
  for (const id of Object.keys(source)) out.push(copyNow(source[id]) as TaskRecord);
  return out;
}

/**
 * What `current()` would give for one value of the map: a task as it was (frozen) is returned as
 * is; a draft, or a plain object this transaction put in (which may hold drafts), is copied.
 */
function copyNow(value: unknown): unknown {
  if (value === null || typeof value !== "object" || Object.isFrozen(value)) return value;
  if (isDraft(value)) return current(value);
  if (Array.isArray(value)) return value.map(copyNow);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = copyNow(v);
  return out;
}
