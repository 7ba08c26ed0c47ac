import type { Draft } from "immer";
import type { Config } from "../../config.js";
import { EoaError } from "../../errors.js";
import type {
  AgentRecord,
  DecisionRecord,
  EffectKind,
  EffectPayloads,
  EffectRecord,
  IncidentRecord,
  OutboundMessage,
  State,
  TaskRecord,
} from "../../state/schema.js";
import { heldNow } from "../../state/records.js";
import { OCCUPYING } from "../assignment.js";
import { oneLine } from "../text.js";
import { HISTORY_DETAIL } from "./history.js";

/**
 * One step of the state machine: the state being changed, the time and config it runs under, and
 * what it produced. Every record written here has the same shape and id scheme; every side effect
 * names the decision that called for it.
 */
export interface Step {
  readonly draft: Draft<State>;
  readonly now: Date;
  readonly config: Config;
  /** The process that will make the step's effects (`host:pid:nonce`). */
  readonly owner: string;
  readonly out: StepOutput;
}

export interface StepOutput {
  /** Ids of the side effects recorded in the outbox, in order. */
  effects: string[];
  /** Ids of the decisions recorded in the decision log, in order. */
  decisions: string[];
  incidents: string[];
}

const pad = (n: number, width: number) => String(n).padStart(width, "0");

export function decide(s: Step, d: Omit<DecisionRecord, "id" | "at">): string {
  const id = `dec-${pad(++s.draft.counters.decision, 4)}`;
  s.draft.decisions.push({ id, at: s.now.toISOString(), ...d } as Draft<DecisionRecord>);
  s.out.decisions.push(id);
  return id;
}

export function incident(s: Step, i: Omit<IncidentRecord, "id" | "at">): string {
  const id = `inc-${pad(++s.draft.counters.incident, 3)}`;
  s.draft.incidents.push({ id, at: s.now.toISOString(), ...i });
  s.out.incidents.push(id);
  return id;
}

export function nextEscalationId(s: Step): string {
  return `esc-${pad(++s.draft.counters.escalation, 3)}`;
}

/**
 * Records a side effect before it is made, claimed by the step's process, which makes it after the
 * transaction commits; other processes leave it alone unless that one dies.
 */
export function effect<K extends EffectKind>(
  s: Step,
  decision: string,
  kind: K,
  payload: EffectPayloads[K],
): string {
  const id = `eff-${pad(++s.draft.counters.effect, 5)}`;
  const at = s.now.toISOString();
  s.draft.outbox.push({
    id,
    kind,
    status: "pending",
    decision,
    payload,
    created_at: at,
    attempts: 0,
    claimed_by: s.owner,
    claimed_at: at,
  } as Draft<EffectRecord>);
  s.out.effects.push(id);
  return id;
}

/** Rule 7: the task's labels (and project status) follow its record. */
export function syncLabels(s: Step, decision: string, taskId: string): string {
  return effect(s, decision, "labels", { task_id: taskId });
}

/**
 * A note on GitHub about a task (rule 7, the seed's "add notes to cards"): one comment on its issue,
 * and on its PR too when it is about the PR; made once through the outbox.
 */
export function noteOnGitHub(
  s: Step,
  decision: string,
  t: Pick<TaskRecord, "issue_number" | "pr_number">,
  body: string,
  onPr = false,
): void {
  if (t.issue_number) effect(s, decision, "comment", { issue_number: t.issue_number, body });
  if (onPr && t.pr_number && t.pr_number !== t.issue_number)
    effect(s, decision, "comment", { issue_number: t.pr_number, body });
}

/** A message to an agent about a task (reminder, fix request, stop, decision, instructions). */
export function notice(s: Step, decision: string, taskId: string, message: OutboundMessage): string {
  return effect(s, decision, "message", { purpose: "notice", task_id: taskId, message });
}

export function note(s: Step, task: Draft<TaskRecord>, event: string, detail?: string): void {
  const at = s.now.toISOString();
  task.history.push({ at, event, ...(detail ? { detail: oneLine(detail, HISTORY_DETAIL) } : {}) });
  task.updated_at = at;
}

export function requireTask(state: Draft<State> | State, taskId: string): Draft<TaskRecord> {
  const task = state.tasks[taskId];
  if (!task) {
    throw new EoaError(
      "TASK_NOT_FOUND",
      `no task ${taskId} in this state directory`,
      'add it with start_session (tasks: ["GH-<n>"] or an inline spec), or read eoa://tasks for the known ids',
    );
  }
  return task as Draft<TaskRecord>;
}

export function requireAgent(state: Draft<State> | State, agentId: string): Draft<AgentRecord> {
  const agent = state.agents[agentId];
  if (!agent) {
    throw new EoaError(
      "UNKNOWN_AGENT",
      `${agentId} is not on the roster`,
      `use one of: ${Object.keys(state.agents).join(", ") || "(the roster is empty: configure roster or rosterFile)"}`,
    );
  }
  return agent as Draft<AgentRecord>;
}

/** Every agent's load as the transaction stands: its tasks in an occupying column (rule 1). */
export function loadsNow(draft: Draft<State>): Map<string, number> {
  return heldNow(draft, OCCUPYING);
}
