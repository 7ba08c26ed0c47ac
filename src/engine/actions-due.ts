import { settled as settledStatus } from "../protocol/kanban.js";
import type { ReviewRecord, State, TaskRecord } from "../state/schema.js";

export interface ActionDue {
  tool: string;
  task_id: string | null;
  why: string;
  arguments: Record<string, unknown>;
}

/**
 * At most this many actions are listed per cycle: the orchestrator works through a handful at a
 * time, and a night with thousands of unassigned tasks must not put thousands of lines into every
 * answer. The rest are counted (`actions_more`) and come up in later cycles.
 */
export const ACTIONS_DUE_LIMIT = 20;

/**
 * What the orchestrator should do next, most urgent first: undelivered escalations, reviews
 * (which free an agent), the report when every task is settled, then tasks waiting to be assigned.
 */
export function actionsDue(state: Readonly<State>): { actions: ActionDue[]; more: number } {
  const session = state.sessions.find((s) => s.id === state.current_session_id);
  if (!session) {
    return {
      actions: [{ tool: "start_session", task_id: null, why: "no session yet", arguments: {} }],
      more: 0,
    };
  }
  if (session.status === "awaiting_approval") {
    const approve: ActionDue = {
      tool: "start_session",
      task_id: null,
      why: "the confirmation awaits the user's approval",
      arguments: { session_id: session.id, approve: true },
    };
    return { actions: [approve], more: 0 };
  }
  // One entry for all of them: a hub that is down must not crowd the reviews out of the list.
  const undelivered = state.escalations.filter(
    (e) => e.status === "open" && e.delivery.status !== "delivered",
  );
  const ids = undelivered.slice(0, 5).map((e) => e.id);
  if (undelivered.length > ids.length) ids.push(`${undelivered.length - ids.length} more`);
  const escalations: ActionDue[] = undelivered.length
    ? [
        {
          tool: "check_messages",
          task_id: undelivered.length === 1 ? (undelivered[0]!.task_id ?? null) : null,
          why:
            `escalation ${ids.join(", ")} ${undelivered.length === 1 ? "is" : "are"} not delivered yet ` +
            `(${undelivered[0]!.delivery.last_error ?? "pending"}); it is retried every cycle`,
          arguments: {},
        },
      ]
    : [];
  const reviews: ActionDue[] = [];
  // Ids only: at 10,000 unassigned tasks, an entry each would be built for 20 to be listed.
  const unassigned: string[] = [];
  const judgments: ActionDue[] = [];
  for (const a of Object.values(state.agents)) {
    if (!a.failing || a.availability === "offline") continue;
    judgments.push({
      tool: "mark_agent_offline",
      task_id: null,
      why: `${a.id} reported ${a.failing.errors} errors within ack_timeout_minutes: take it offline (its tasks go to backups)`,
      arguments: { agent: a.id, reason: `${a.failing.errors} error reports in a short time` },
    });
  }
  let settled = true;
  const latestReview = latestReviews(state);
  for (const id of session.task_ids) {
    const t = state.tasks[id];
    if (!settledStatus(t?.status)) settled = false;
    if (!t) continue;
    const w = t.awaiting;
    if (w && w.agent === t.assignee && w.epoch === t.assignment_epoch) judgments.push(judgment(id, w));
    if (t.status === "ai-review" && t.pr_number) {
      const awaiting = latestReview.get(`${id}#${t.pr_number}`)?.decision === "awaiting_assessment";
      reviews.push({
        tool: "review_pr",
        task_id: id,
        why: awaiting
          ? `PR #${t.pr_number} passed the mechanical checks so far: give your spec_assessment`
          : `review PR #${t.pr_number} for ${id}`,
        arguments: { pr_number: t.pr_number, task_id: id },
      });
    } else if (t.status === "merge-release" && t.pr_number) {
      // Its completion is pending: a merge decided (made, or left by a process that is gone) is
      // finished by the next cycle; an approval without a merge waits for a person to merge.
      const merging = t.merge_effect !== undefined;
      reviews.push(
        merging
          ? {
              tool: "check_messages",
              task_id: id,
              why: `the merge of PR #${t.pr_number} for ${id} was decided: the next cycle completes ${id} (done, dependents dispatched)`,
              arguments: {},
            }
          : {
              tool: "review_pr",
              task_id: id,
              why: `PR #${t.pr_number} is approved (auto_merge is off): once a person merges it, review_pr records ${id} done`,
              arguments: { pr_number: t.pr_number, task_id: id },
            },
      );
    } else if (t.status === "todo" && !t.queue && !t.parked_by) {
      unassigned.push(id);
    }
  }
  const report: ActionDue[] =
    session.status !== "complete" && settled
      ? [
          {
            tool: "write_report",
            task_id: null,
            why: "every task is done, at human review or blocked",
            arguments: { session_id: session.id },
          },
        ]
      : [];
  const first = [...escalations, ...judgments, ...reviews, ...report];
  const assigns = unassigned.slice(0, Math.max(0, ACTIONS_DUE_LIMIT - first.length)).map((id): ActionDue => ({
    tool: "assign_task",
    task_id: id,
    why: `${id} is approved but not assigned`,
    arguments: { task_id: id },
  }));
  const all = [...first, ...assigns];
  return {
    actions: all.slice(0, ACTIONS_DUE_LIMIT),
    more: Math.max(0, first.length + unassigned.length - ACTIONS_DUE_LIMIT),
  };
}

/** An agent's question or error report: the orchestrator's move (rule 5b). */
function judgment(taskId: string, w: NonNullable<TaskRecord["awaiting"]>): ActionDue {
  if (w.kind === "question")
    return {
      tool: "send_instructions",
      task_id: taskId,
      why:
        `${w.agent} asked a question (${w.escalation_id ?? "escalation"}, message ${w.message_id}; read it in eoa://escalations): ` +
        "judge conservatively and reversibly, answer with send_instructions, and document it",
      arguments: { task_id: taskId, in_reply_to: w.message_id },
    };
  if (w.error_kind === "environment")
    return {
      tool: "reassign_task",
      task_id: taskId,
      why: `${w.agent} reported an error in its own environment (message ${w.message_id}): move ${taskId} to another agent`,
      arguments: { task_id: taskId, reason: `${w.agent}'s environment failed (message ${w.message_id})` },
    };
  return {
    tool: "send_instructions",
    task_id: taskId,
    why: `${w.agent} reported an error on ${taskId} (message ${w.message_id}): send fix instructions`,
    arguments: { task_id: taskId, in_reply_to: w.message_id },
  };
}

/** The newest review of each task's PR, keyed `task#pr`. */
function latestReviews(state: Readonly<State>): Map<string, Readonly<ReviewRecord>> {
  const out = new Map<string, Readonly<ReviewRecord>>();
  for (const r of Object.values(state.reviews)) {
    const key = `${r.task_id}#${r.pr_number}`;
    const seen = out.get(key);
    if (!seen || r.at > seen.at) out.set(key, r);
  }
  return out;
}
