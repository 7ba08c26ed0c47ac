import { current, isDraft, type Draft } from "immer";
import { PROCESS_ID } from "../owner.js";
import type {
  DecisionRecord,
  EffectKind,
  EffectRecord,
  IncidentRecord,
  State,
  TaskRecord,
} from "./schema.js";

/** Small writers used inside transactions, so that every record has the same shape and id scheme. */

type S = Draft<State>;

const pad = (n: number, width: number) => String(n).padStart(width, "0");

export function recordDecision(draft: S, at: Date, d: Omit<DecisionRecord, "id" | "at">): string {
  const id = `dec-${pad(++draft.counters.decision, 4)}`;
  draft.decisions.push({ id, at: at.toISOString(), ...d } as Draft<DecisionRecord>);
  return id;
}

export function recordIncident(draft: S, at: Date, i: Omit<IncidentRecord, "id" | "at">): string {
  const id = `inc-${pad(++draft.counters.incident, 3)}`;
  draft.incidents.push({ id, at: at.toISOString(), ...i });
  return id;
}

export function nextEscalationId(draft: S): string {
  return `esc-${pad(++draft.counters.escalation, 3)}`;
}

/**
 * Records a side effect before it is made, claimed by this process, which performs it after the
 * transaction commits; other processes leave it alone unless this one dies.
 */
export function enqueueEffect(
  draft: S,
  at: Date,
  kind: EffectKind,
  payload: Record<string, unknown>,
): string {
  const id = `eff-${pad(++draft.counters.effect, 5)}`;
  draft.outbox.push({
    id,
    kind,
    status: "pending",
    payload: payload as Draft<EffectRecord["payload"]>,
    created_at: at.toISOString(),
    attempts: 0,
    claimed_by: PROCESS_ID,
    claimed_at: at.toISOString(),
  });
  return id;
}

export function history(task: Draft<TaskRecord>, at: Date, event: string, detail?: string): void {
  task.history.push({ at: at.toISOString(), event, ...(detail ? { detail } : {}) });
  task.updated_at = at.toISOString();
}

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
