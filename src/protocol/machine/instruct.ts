import { EoaError } from "../../errors.js";
import { plain } from "../../state/records.js";
import type { TaskRecord } from "../../state/schema.js";
import { chooseAgent, OCCUPYING } from "../assignment.js";
import { instructionsMessage, stopNoticeMessage } from "../messages.js";
import { oneLine } from "../text.js";
import { dispatch } from "./dispatch.js";
import { decide, loadsNow, note, notice, requireAgent, requireTask, type Step } from "./records.js";

/**
 * Phase 3's moves on one task: instructions to the agent that holds it ("make judgment, document
 * it"; fix instructions after an error), and moving it to another agent ("reassign to a different
 * agent if agent issue"). Rule 5b in docs/PROTOCOL.md.
 */

/** The task, held by an agent right now (dispatched and not finished). */
function heldTask(s: Step, taskId: string) {
  const t = requireTask(s.draft, taskId);
  if (!t.assignee || !OCCUPYING.includes(t.status)) {
    throw new EoaError(
      "TASK_NOT_HELD",
      `${taskId} is not held by an agent (${t.status}${t.assignee ? `, last held by ${t.assignee}` : ""})`,
      t.status === "todo"
        ? `it is waiting to be dispatched: assign_task ${taskId} (its instructions can be given there)`
        : "read eoa://tasks/" + taskId + " for where it stands",
    );
  }
  return t;
}

export interface InstructionsOutcome {
  task_id: string;
  agent: string;
  epoch: number;
  effect: string;
}

export function instructionsSent(
  s: Step,
  e: { task_id: string; instructions: string; in_reply_to?: string | undefined },
): InstructionsOutcome {
  const t = heldTask(s, e.task_id);
  const agent = s.draft.agents[t.assignee!]!;
  // The question or error it answers is answered; an error's incident says how.
  if (t.awaiting?.kind === "error") settleAgentError(s, t.task_id, `fix instructions sent to ${agent.id}`);
  delete t.awaiting;
  const decision = decide(s, {
    action: "instruct",
    rule: "rule 5b: the orchestrator judges and answers the agent holding the task, and it is documented",
    task_id: t.task_id,
    agent: agent.id,
    inputs: {
      epoch: t.assignment_epoch,
      in_reply_to: e.in_reply_to ?? null,
      instructions: oneLine(e.instructions, 300),
    },
    outcome: `instructions sent to ${agent.id}`,
  });
  note(
    s,
    t,
    "instructions",
    `to ${agent.id}${e.in_reply_to ? ` (re ${oneLine(e.in_reply_to, 60)})` : ""}: ${oneLine(e.instructions, 200)}`,
  );
  const effect = notice(
    s,
    decision,
    t.task_id,
    instructionsMessage(
      plain(t) as TaskRecord,
      agent.session,
      t.assignment_epoch,
      e.instructions,
      e.in_reply_to,
    ),
  );
  return { task_id: t.task_id, agent: agent.id, epoch: t.assignment_epoch, effect };
}

export interface ReassignOutcome {
  task_id: string;
  from: string;
  to: string;
  epoch: number;
  effects: string[];
}

/**
 * One task moves: to the named agent if it is eligible (rule 1), else to the best eligible agent
 * other than its holder; refused (nothing changes) when there is none. Stop notice to the old
 * holder, handoff to the new one, a new epoch.
 */
export function reassignRequested(
  s: Step,
  e: { task_id: string; agent?: string | undefined; reason: string },
): ReassignOutcome {
  const t = heldTask(s, e.task_id);
  const from = t.assignee!;
  if (e.agent === from) {
    throw new EoaError(
      "SAME_AGENT",
      `${e.task_id} is already held by ${from}`,
      "name another agent, or omit agent to let the server choose one other than the holder",
    );
  }
  if (e.agent) requireAgent(s.draft, e.agent);
  const others = Object.values(s.draft.agents).filter((a) => a.id !== from);
  const choice = chooseAgent(t, others, loadsNow(s.draft), e.agent);
  if (choice.agent === null) {
    throw new EoaError(
      "NO_ELIGIBLE_AGENT",
      `${e.task_id} cannot move from ${from}: ${choice.reason}`,
      e.agent
        ? "name an agent that is active, capable and has room (eoa://roster), or omit agent"
        : "bring an agent back or wait for one to free up; the task stays with its holder meanwhile",
    );
  }
  const old = s.draft.agents[from]!;
  const stop = stopNoticeMessage(
    plain(t) as TaskRecord,
    old.session,
    `reassigned to another agent: ${oneLine(e.reason, 200)}`,
  );
  const out = dispatch(s, t.task_id, {
    preferred: choice.agent,
    handoffFrom: from,
    rule: `the orchestrator moved it (${oneLine(e.reason, 200)}): ${choice.rule}`,
    excluded: new Set([from]),
  });
  if (out.status !== "dispatched") {
    // chooseAgent said it may go there; dispatch disagreeing is a bug, and the transaction is undone.
    throw new Error(`reassign of ${e.task_id}: dispatch queued it (${out.reason})`);
  }
  const stopEffect = notice(s, out.decision, t.task_id, stop);
  if (t.awaiting?.kind === "error") settleAgentError(s, t.task_id, `reassigned from ${from} to ${out.agent}`);
  delete t.awaiting;
  return { task_id: t.task_id, from, to: out.agent, epoch: out.epoch, effects: [...out.effects, stopEffect] };
}

/**
 * The open agent-error incident of a task gets the orchestrator's move as its action taken. Its
 * resolution waits for the work itself: a later commit through both gates (review), or nothing.
 */
export function settleAgentError(s: Step, taskId: string, action: string): void {
  const open = s.draft.incidents.findLast(
    (i) => i.task_id === taskId && i.kind === "agent-error" && !i.resolution,
  );
  if (open) open.action = action;
}
