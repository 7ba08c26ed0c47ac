import { produce, type Draft } from "immer";
import type { Config } from "../../config.js";
import type { State } from "../../state/schema.js";
import { assignRequested, type AssignRequest } from "./assign.js";
import { pollCycle, type CycleOutcome, type PollCycleEvidence } from "./cycle.js";
import type { DispatchOutcome } from "./dispatch.js";
import {
  escalate,
  resolve,
  type EscalateInput,
  type EscalateOutcome,
  type ResolveOutcome,
} from "./escalation.js";
import {
  instructionsSent,
  reassignRequested,
  type InstructionsOutcome,
  type ReassignOutcome,
} from "./instruct.js";
import { markOffline, type OfflineOutcome } from "./offline.js";
import { historyArchived } from "./history.js";
import { effectsSettled, type EffectOutcome } from "./outbox.js";
import type { Step, StepOutput } from "./records.js";
import {
  mergeObserved,
  mergeRefused,
  prMissing,
  reviewJudged,
  type MergeObserved,
  type MergeRefused,
  type MergeRefusedOutcome,
  type PrMissing,
  type ReviewApplied,
  type ReviewEvidence,
} from "./review.js";
import { rosterSynced } from "./roster.js";
import { reportWritten, sessionApproved, sessionProposed, type TaskSpec } from "./session.js";

/**
 * The protocol as one state machine (docs/PROTOCOL.md). Given the state, one event, the config and
 * the time, `step` returns the new state, the side effects to make and the decisions recorded; it
 * does no I/O. The engine gathers the evidence an event carries, runs `reduce` inside one store
 * transaction (the same function on a draft), commits, and hands the effects to the outbox.
 *
 * Events are what happens: a tool call, a poll cycle's inbox messages and presence readings, the
 * evidence gathered for a review, the outcome of a side effect.
 */
export type ProtocolEvent =
  | { type: "roster-synced" }
  | { type: "session-proposed"; specs: readonly TaskSpec[]; directive?: string | undefined }
  | { type: "session-approved"; session_id: string; directive?: string | undefined }
  | { type: "assign-requested"; request: AssignRequest }
  | ({ type: "poll-cycle" } & PollCycleEvidence)
  | { type: "agent-offline-reported"; agent: string; reason: string }
  | { type: "instructions-sent"; task_id: string; instructions: string; in_reply_to?: string | undefined }
  | { type: "reassign-requested"; task_id: string; agent?: string | undefined; reason: string }
  | { type: "escalation-raised"; input: EscalateInput }
  | { type: "escalation-answered"; escalation_id: string; decision: string }
  | ({ type: "review-judged" } & ReviewEvidence)
  | ({ type: "merge-observed" } & MergeObserved)
  | ({ type: "merge-refused" } & MergeRefused)
  | ({ type: "pr-missing" } & PrMissing)
  | { type: "effects-settled"; outcomes: readonly EffectOutcome[] }
  | { type: "history-archived"; task_id: string; from: number; count: number }
  | { type: "report-written"; session_id: string; path: string };

/** What each event answers, besides the state, effects and decisions. */
export interface EventResults {
  "roster-synced": void;
  "session-proposed": string;
  "session-approved": void;
  "assign-requested": DispatchOutcome;
  "poll-cycle": CycleOutcome;
  "agent-offline-reported": OfflineOutcome;
  "instructions-sent": InstructionsOutcome;
  "reassign-requested": ReassignOutcome;
  "escalation-raised": EscalateOutcome;
  "escalation-answered": ResolveOutcome;
  "review-judged": ReviewApplied;
  "merge-observed": { dispatched: string[] };
  "merge-refused": MergeRefusedOutcome;
  "pr-missing": { reported: number; escalation_id: string | null };
  "effects-settled": void;
  "history-archived": void;
  "report-written": { complete: boolean };
}

export type EventOf<T extends ProtocolEvent["type"]> = Extract<ProtocolEvent, { type: T }>;

export interface StepEnv {
  now: Date;
  config: Config;
  /** The process that will make the effects (`host:pid:nonce`). */
  owner: string;
}

export type Reduced<T extends ProtocolEvent["type"]> = StepOutput & { result: EventResults[T] };

/** One event applied to a draft of the state (inside a store transaction). A refusal throws and changes nothing. */
export function reduce<T extends ProtocolEvent["type"]>(
  draft: Draft<State>,
  event: EventOf<T>,
  env: StepEnv,
): Reduced<T> {
  const out: StepOutput = { effects: [], decisions: [], incidents: [] };
  const s: Step = { draft, now: env.now, config: env.config, owner: env.owner, out };
  const result = apply(s, event as ProtocolEvent) as EventResults[T];
  return { ...out, result };
}

/** The pure form: state in, new state out (the input is never changed). */
export function step<T extends ProtocolEvent["type"]>(
  state: State,
  event: EventOf<T>,
  env: StepEnv,
): Reduced<T> & { state: State } {
  let reduced: Reduced<T> | undefined;
  const next = produce(state, (draft) => {
    reduced = reduce(draft, event, env);
  });
  return { ...reduced!, state: next };
}

function apply(s: Step, e: ProtocolEvent): EventResults[ProtocolEvent["type"]] {
  switch (e.type) {
    case "roster-synced":
      return rosterSynced(s);
    case "session-proposed":
      return sessionProposed(s, e);
    case "session-approved":
      return sessionApproved(s, e);
    case "assign-requested":
      return assignRequested(s, e.request);
    case "poll-cycle":
      return pollCycle(s, e);
    case "agent-offline-reported":
      return markOffline(s, e.agent, e.reason);
    case "instructions-sent":
      return instructionsSent(s, e);
    case "reassign-requested":
      return reassignRequested(s, e);
    case "escalation-raised":
      return escalate(s, e.input);
    case "escalation-answered":
      return resolve(s, e.escalation_id, e.decision);
    case "review-judged":
      return reviewJudged(s, e);
    case "merge-observed":
      return mergeObserved(s, e);
    case "merge-refused":
      return mergeRefused(s, e);
    case "pr-missing":
      return prMissing(s, e);
    case "effects-settled":
      return effectsSettled(s, e.outcomes);
    case "history-archived":
      return historyArchived(s, e);
    case "report-written":
      return reportWritten(s, e);
  }
}

export type { AssignRequest } from "./assign.js";
export type { CycleOutcome, InboxMessage, PollCycleEvidence } from "./cycle.js";
export type { DispatchOutcome } from "./dispatch.js";
export type { EscalateInput, EscalateOutcome, ResolveOutcome } from "./escalation.js";
export type { OfflineOutcome } from "./offline.js";
export type { InstructionsOutcome, ReassignOutcome } from "./instruct.js";
export { HISTORY_KEPT, HISTORY_PAGE, historyToArchive } from "./history.js";
export { MAX_EFFECT_ATTEMPTS, retryable, supersede, type EffectOutcome } from "./outbox.js";
export {
  reviewKey,
  type MergeRefusal,
  type PullView,
  type ReviewApplied,
  type ReviewEvidence,
} from "./review.js";
export { DEFAULT_ESCALATION_RULES, type TaskSpec } from "./session.js";
export type { Step, StepOutput } from "./records.js";
