import type { Draft } from "immer";
import { copyOut, draftOf } from "./draft.js";
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
  const copy = copyOut(value) as T;
  return Object.isFrozen(copy) ? structuredClone(copy) : copy;
}

/**
 * The tasks as they stand inside a transaction: untouched ones as they are (frozen), changed or
 * added ones copied. Walking `Object.values(draft.tasks)` instead would make a draft of every
 * task it reads a nested value of. Change a task through `draft.tasks[id]`.
 */
export function tasksNow(draft: S): TaskRecord[] {
  return draftOf(draft.tasks)?.values() ?? (Object.values(draft.tasks) as TaskRecord[]);
}
