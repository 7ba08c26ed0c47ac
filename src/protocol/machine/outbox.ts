import type { Draft } from "immer";
import type { EffectRecord, EscalationRecord, MessagePayload, State } from "../../state/schema.js";
import { decide, note, type Step } from "./records.js";

/**
 * The outcomes of side effects (docs/PROTOCOL.md, Durability), as state changes: an effect made is `done`, one that
 * failed is `failed` and retried on a later cycle; a delivered escalation is marked delivered; an
 * assignment whose message never reached the agent is not an assignment, and the task goes back.
 */

export const MAX_EFFECT_ATTEMPTS = 8;
/** Done effects kept in the state file for inspection; older ones are dropped. */
const DONE_KEPT = 200;

export interface EffectOutcome {
  id: string;
  kind: string;
  ok: boolean;
  error?: string;
  code?: string;
  /** The client's details of the failure (e.g. why GitHub refused a merge). */
  details?: Record<string, unknown>;
  /** Refused for good by its target: retrying cannot change the answer. */
  final?: boolean;
  /** The request may have reached its target although it failed (a timeout after sending). */
  uncertain?: boolean;
  /** Made, but its outcome could not be written to the state file. */
  unrecorded?: boolean;
  result?: Record<string, unknown>;
  /** When its target answered (the runtime's clock): recording the outcome may come later. */
  at?: string;
}

export function effectsSettled(s: Step, outcomes: readonly EffectOutcome[]): void {
  const { draft, now } = s;
  for (const o of outcomes) {
    const e = draft.outbox.find((x) => x.id === o.id);
    if (!e) continue;
    e.attempts++;
    delete e.claimed_by;
    delete e.claimed_at;
    if (o.ok) {
      e.status = "done";
      e.done_at = now.toISOString();
      e.result = o.result ?? {};
      delete e.error;
      delete e.error_code;
      onDone(draft, e as EffectRecord, o.result ?? {}, o.at ? new Date(o.at) : now);
    } else {
      e.status = "failed";
      e.error = o.error ?? "unknown error";
      if (o.code) e.error_code = o.code;
      // A merge is decided by a review of a known head: never retried behind the reviewer's back.
      if (e.kind === "merge") e.attempts = MAX_EFFECT_ATTEMPTS;
      if (o.final) {
        e.refused = true;
        e.attempts = Math.max(e.attempts, MAX_EFFECT_ATTEMPTS);
      }
      // A send that may have arrived is not undone: the next cycle finds it or sends it again.
      if (!o.uncertain) onFail(s, e as EffectRecord, e.error);
    }
  }
  pruneOutbox(draft);
}

/**
 * Labels are level-triggered: of several pending syncs of one task, one brings them up to date and
 * the others are done without being made.
 */
export function supersede(e: Draft<EffectRecord>, at: Date): void {
  e.status = "done";
  e.done_at = at.toISOString();
  e.result = { superseded: true };
  delete e.claimed_by;
  delete e.claimed_at;
}

/** Rule 8: an undelivered escalation is retried every cycle while it is open, however long the outage. */
export function retryable(state: Readonly<State>, e: EffectRecord): boolean {
  if (e.status === "done" || e.refused) return false;
  return e.attempts < MAX_EFFECT_ATTEMPTS || e.kind === "labels" || openEscalation(state.escalations, e);
}

function openEscalation(escalations: readonly EscalationRecord[], eff: EffectRecord): boolean {
  return (
    eff.kind === "message" &&
    eff.payload.purpose === "escalation" &&
    escalations.some(
      (x) => x.id === (eff.payload as { escalation_id: string }).escalation_id && x.status === "open",
    )
  );
}

/**
 * Done effects past DONE_KEPT are dropped this many at a time: taking entries off the front of the
 * outbox journals it whole (65 KB a transaction when it was done on every call), so once a batch.
 */
const DONE_DROP_BATCH = 100;

/** Keeps the hot document small: the newest done effects stay, without their message bodies. */
function pruneOutbox(draft: Draft<State>): void {
  // Walked with `some`, which immer (enableArrayMethods) hands the values as they are: only the
  // effects changed below are drafted, not every effect in the outbox on every call.
  let done = 0;
  const bodies: number[] = [];
  draft.outbox.some((e, i) => {
    if (e.status !== "done") return false;
    done++;
    if (e.kind === "message" && e.payload.message.content) bodies.push(i);
    return false;
  });
  for (const i of bodies) {
    const e = draft.outbox[i]!;
    if (e.kind !== "message") continue;
    const m = e.payload.message;
    (e.payload as { message: unknown }).message = { to: m.to, subject: m.subject, priority: m.priority };
  }
  if (done <= DONE_KEPT + DONE_DROP_BATCH) return;
  const drop = new Set<string>();
  let extra = done - DONE_KEPT;
  draft.outbox.some((e) => {
    if (e.status === "done") {
      drop.add(e.id);
      extra--;
    }
    return extra === 0;
  });
  draft.outbox = draft.outbox.filter((e) => !drop.has(e.id));
}

function onDone(draft: Draft<State>, eff: EffectRecord, result: Record<string, unknown>, now: Date): void {
  if (eff.kind !== "message") return;
  const p: MessagePayload = eff.payload;
  if (p.purpose === "assignment") {
    const t = draft.tasks[p.task_id];
    if (t && t.assignment_epoch === p.epoch) t.assignment_message_id = result.message_id as string;
  } else if (p.purpose === "escalation") {
    const esc = draft.escalations.find((e) => e.id === p.escalation_id);
    if (esc) {
      esc.delivery.status = "delivered";
      esc.delivery.attempts++;
      esc.delivery.message_id = result.message_id as string;
      esc.delivery.delivered_at = now.toISOString();
      delete esc.delivery.last_error;
    }
  }
}

function onFail(s: Step, eff: EffectRecord, error: string): void {
  if (eff.kind !== "message") return;
  const { draft } = s;
  const p: MessagePayload = eff.payload;
  if (p.purpose === "assignment") {
    // An assignment that never reached the agent is not an assignment: put the task back.
    const t = draft.tasks[p.task_id];
    const e = draft.outbox.find((x) => x.id === eff.id);
    if (e) e.attempts = MAX_EFFECT_ATTEMPTS; // never resent later: the task is re-dispatched instead
    // Only while nothing shows the agent has it: a task its holder acknowledged or reported on
    // (acked_at is set by any of its messages), or one past review, is its whatever the send said.
    if (
      t &&
      t.assignment_epoch === p.epoch &&
      t.assignee &&
      draft.agents[t.assignee]?.session === p.message.to &&
      (t.status === "in-progress" || t.status === "ai-review") &&
      !t.acked_at
    ) {
      const agent = t.assignee;
      delete t.assignee;
      delete t.assigned_at;
      t.status = p.revert.status;
      if (p.revert.queue) t.queue = p.revert.queue;
      else delete t.queue;
      note(s, t, "assignment-failed", `message to ${agent} failed: ${error}`);
      decide(s, {
        action: "revert-assignment",
        rule: "rule 2: an assignment whose message was not delivered is not an assignment",
        task_id: p.task_id,
        agent,
        inputs: { error, effect_id: eff.id },
        outcome: t.queue ? "back in the queue" : `back to ${t.status}`,
      });
    }
  } else if (p.purpose === "escalation") {
    const esc = draft.escalations.find((x) => x.id === p.escalation_id);
    if (esc) {
      esc.delivery.status = "failed";
      esc.delivery.attempts++;
      esc.delivery.last_error = error;
    }
  }
}
