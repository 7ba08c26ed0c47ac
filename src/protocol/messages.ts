import type {
  EscalationRecord,
  Finding,
  MessagePriority,
  OutboundMessage,
  Priority,
  TaskRecord,
} from "../state/schema.js";
import { oneLine } from "./text.js";

/**
 * The messages the orchestrator sends, in the seed's formats. AI Maestro keeps only `type`,
 * `message` and `context` of `content`, so the seed's structured fields travel in
 * `content.context` and `content.message` is a readable rendering of the same.
 */

export type { OutboundMessage };

export const MESSAGE_PRIORITY: Record<Priority, MessagePriority> = {
  critical: "urgent",
  high: "high",
  normal: "normal",
  low: "low",
};

const REPLY_FORMS = (id: string) =>
  [
    "Reply formats (AI Maestro message to the orchestrator):",
    `- [ACK] ${id} - RECEIVED`,
    `- [PROGRESS] ${id} 50% <what is done>`,
    `- [DONE] ${id} PR #<number> <summary>`,
    `- [BLOCKED] ${id} <why>`,
    `- [ERROR] ${id} <what failed>`,
    `- [ESCALATE] ${id} <question> (security concerns: [SECURITY] ${id} ...)`,
  ].join("\n");

export function assignmentContext(task: TaskRecord, epoch: number): Record<string, unknown> {
  return {
    type: "task",
    task_id: task.task_id,
    autonomous_mode: true,
    instructions: task.instructions,
    completion_criteria: task.completion_criteria,
    test_requirements: task.test_requirements,
    escalation_rules: task.escalation_rules,
    report_back: true,
    next_task_on_complete: task.next_task_on_complete ?? null,
    assignment_epoch: epoch,
    depends_on: task.depends_on,
    ...(task.issue_number ? { issue_number: task.issue_number } : {}),
    ...(task.files_in_scope.length ? { files_in_scope: task.files_in_scope } : {}),
  };
}

function bullets(items: readonly string[]): string {
  return items.length ? items.map((i) => `- ${i}`).join("\n") : "- (none given)";
}

export function assignmentMessage(task: TaskRecord, to: string, epoch: number): OutboundMessage {
  const message = [
    `AUTONOMOUS task ${task.task_id}: ${oneLine(task.title)} (priority ${task.priority}).`,
    "",
    "Instructions:",
    task.instructions ||
      (task.issue_number ? `(see issue #${task.issue_number})` : "(none beyond the title above)"),
    "",
    "Completion criteria:",
    bullets(task.completion_criteria),
    "",
    "Test requirements:",
    bullets(task.test_requirements),
    "",
    `On blocked: ${task.escalation_rules.on_blocked}`,
    `On a security concern: ${task.escalation_rules.on_security_concern}`,
    `On an architecture question: ${task.escalation_rules.on_architecture_question}`,
    task.next_task_on_complete ? `Next task on complete: ${task.next_task_on_complete}` : "",
    "",
    `Reference ${task.task_id} in your PR title or body.`,
    REPLY_FORMS(task.task_id),
  ]
    .filter((l, i, all) => l !== "" || all[i - 1] !== "")
    .join("\n");
  return {
    to,
    subject: `AUTONOMOUS: ${oneLine(task.title)} ${task.task_id}`,
    priority: MESSAGE_PRIORITY[task.priority],
    content: { type: "task", message, context: assignmentContext(task, epoch) },
  };
}

export function handoffMessage(task: TaskRecord, to: string, epoch: number, from: string): OutboundMessage {
  const base = assignmentMessage(task, to, epoch);
  const handoff = {
    previous_agent: from,
    branch: task.branch ?? null,
    pr_number: task.pr_number ?? null,
    progress_percent: task.progress_percent ?? null,
    progress_note: task.progress_note ?? null,
  };
  return {
    ...base,
    subject: `AUTONOMOUS (handoff): ${oneLine(task.title)} ${task.task_id}`,
    content: {
      type: "task",
      message: [
        `Handoff: ${task.task_id} moves to you from ${from}, who went offline.`,
        `Branch: ${handoff.branch ?? "none yet"}; PR: ${handoff.pr_number ? `#${handoff.pr_number}` : "none yet"}; progress: ${handoff.progress_percent ?? "?"}% ${handoff.progress_note ?? ""}`.trim(),
        "Continue from that branch if it exists.",
        "",
        base.content.message,
      ].join("\n"),
      context: { ...base.content.context, handoff },
    },
  };
}

export function ackReminderMessage(task: TaskRecord, to: string, epoch: number): OutboundMessage {
  return {
    to,
    subject: `REMINDER: acknowledge ${task.task_id}`,
    priority: "high",
    content: {
      type: "reminder",
      message: `No acknowledgement received for ${task.task_id} (${oneLine(task.title)}). Reply "[ACK] ${task.task_id} - RECEIVED" or the task will be reassigned.`,
      context: { type: "reminder", task_id: task.task_id, assignment_epoch: epoch },
    },
  };
}

export function stopNoticeMessage(task: TaskRecord, to: string, reason: string): OutboundMessage {
  return {
    to,
    subject: `STOP: ${task.task_id} reassigned`,
    priority: "high",
    content: {
      type: "stop",
      message: `Stop work on ${task.task_id} (${oneLine(task.title)}): ${reason}. Do not push to its branch; anything you send about it will be ignored.`,
      context: { type: "stop", task_id: task.task_id, reason },
    },
  };
}

/**
 * The orchestrator's instructions about a task to the agent holding it (fix instructions after an
 * error, the answer to a question), under the assignment's epoch.
 */
export function instructionsMessage(
  task: TaskRecord,
  to: string,
  epoch: number,
  instructions: string,
  inReplyTo?: string,
): OutboundMessage {
  return {
    to,
    subject: `INSTRUCTIONS: ${task.task_id}${inReplyTo ? ` (re ${oneLine(inReplyTo, 60)})` : ""}`,
    priority: "high",
    content: {
      type: "instructions",
      message: `Instructions for ${task.task_id} (${oneLine(task.title)}):\n${instructions}`,
      context: {
        type: "instructions",
        task_id: task.task_id,
        assignment_epoch: epoch,
        instructions,
        ...(inReplyTo ? { in_reply_to: inReplyTo } : {}),
      },
    },
  };
}

/**
 * The user's answer to an escalation, for the agent holding a task it parked: go on accordingly,
 * or, while another open escalation still parks the task, wait for that answer too.
 */
export function decisionMessage(
  esc: Pick<EscalationRecord, "id" | "issue">,
  taskId: string,
  to: string,
  decision: string,
  stillParkedBy?: string,
): OutboundMessage {
  const next = stillParkedBy
    ? `Do not resume ${taskId} yet: it stays parked until escalation ${stillParkedBy} is answered too.`
    : `Continue ${taskId} accordingly.`;
  return {
    to,
    subject: `DECISION: ${esc.id} resolved for ${taskId}`,
    priority: "high",
    content: {
      type: "escalation-resolved",
      message: `The user decided on ${esc.id} (${oneLine(esc.issue)}): ${decision}\n${next}`,
      context: {
        type: "escalation-resolved",
        escalation_id: esc.id,
        task_id: taskId,
        decision,
        ...(stillParkedBy ? { still_parked_by: stillParkedBy } : {}),
      },
    },
  };
}

/** One finding as a list line: which gate and check, where, what is wrong. */
export function findingLine(f: Finding): string {
  const where = f.file ? ` ${f.file}${f.line ? `:${f.line}` : ""}` : "";
  return `- [gate ${f.gate}: ${f.check}]${where} ${f.message}`;
}

export function fixRequestMessage(
  task: TaskRecord,
  to: string,
  epoch: number,
  findings: readonly Finding[],
  round: number,
  maxRounds: number,
): OutboundMessage {
  const lines = findings.map((f) => {
    const url = f.url ? ` (${f.url})` : "";
    const tail = f.log_tail ? `\n    log tail:\n${indent(f.log_tail, "    | ")}` : "";
    return `${findingLine(f)}${url}${tail}`;
  });
  return {
    to,
    subject: `FIX REQUEST (${round}/${maxRounds}): PR #${task.pr_number ?? "?"} ${task.task_id}`,
    priority: MESSAGE_PRIORITY[task.priority],
    content: {
      type: "fix-request",
      message: [
        `Review of PR #${task.pr_number ?? "?"} for ${task.task_id} found ${findings.length} problem(s). Fix round ${round} of ${maxRounds}.`,
        ...lines,
        "",
        `Push the fixes to the same PR, then reply "[DONE] ${task.task_id} PR #${task.pr_number ?? "<n>"} fixed".`,
      ].join("\n"),
      context: {
        type: "fix-request",
        task_id: task.task_id,
        pr_number: task.pr_number ?? null,
        fix_round: round,
        max_fix_rounds: maxRounds,
        assignment_epoch: epoch,
        findings,
      },
    },
  };
}

function indent(text: string, prefix: string): string {
  return text
    .split("\n")
    .slice(-20)
    .map((l) => prefix + l)
    .join("\n");
}

export function escalationMessage(esc: EscalationRecord): OutboundMessage {
  const about = esc.task_id ? ` for ${esc.task_id}` : "";
  if (esc.level === "immediate") {
    return {
      to: esc.channel,
      subject: `URGENT: ${label(esc.category)} issue requires immediate attention${about}`,
      priority: "urgent",
      content: {
        type: "urgent-escalation",
        message: [
          `URGENT (${esc.id}, ${label(esc.category)})${about}: ${esc.issue}`,
          `Risk: ${esc.risk ?? "not assessed"}`,
          `Action required: ${esc.action_required ?? "decide how to proceed"}`,
          `Blocking: yes. Answer with resolve_escalation ${esc.id}.`,
        ].join("\n"),
        context: {
          type: "urgent-escalation",
          escalation_id: esc.id,
          category: esc.category,
          task_id: esc.task_id ?? null,
          issue: esc.issue,
          risk: esc.risk ?? null,
          action_required: esc.action_required ?? null,
          blocking: true,
        },
      },
    };
  }
  return {
    to: esc.channel,
    subject: `USER REVIEW: ${label(esc.category)} decision${about}`,
    priority: "normal",
    content: {
      type: "deferred-escalation",
      message: [
        `For your review (${esc.id}, ${label(esc.category)})${about}: ${esc.issue}`,
        `Context: ${esc.context ?? "-"}`,
        `Current action: ${esc.current_action ?? "-"}`,
        `Reversible: ${esc.reversible === undefined ? "unknown" : esc.reversible ? "yes" : "no"}`,
      ].join("\n"),
      context: {
        type: "deferred-escalation",
        escalation_id: esc.id,
        category: esc.category,
        task_id: esc.task_id ?? null,
        issue: esc.issue,
        context: esc.context ?? null,
        current_action: esc.current_action ?? null,
        reversible: esc.reversible ?? null,
      },
    },
  };
}

function label(category: string): string {
  const s = category.replace(/_/g, " ");
  return s[0]!.toUpperCase() + s.slice(1);
}

/** A completion report named a PR that GitHub does not have: the agent is told, under its epoch. */
export function missingPrMessage(
  task: TaskRecord,
  to: string,
  epoch: number,
  prNumber: number,
  repo: string,
): OutboundMessage {
  const text =
    `Your completion report for ${task.task_id} names PR #${prNumber}, which does not exist in ${repo}. ` +
    `Push your branch, open the PR against the default branch with "${task.task_id}" in its title or body, ` +
    "and report again with its number. A second report naming a PR that does not exist is escalated to the user.";
  return {
    to,
    subject: `PR NOT FOUND: #${prNumber} for ${task.task_id}`,
    priority: "high",
    content: {
      type: "pr-not-found",
      message: text,
      context: { type: "pr-not-found", task_id: task.task_id, assignment_epoch: epoch, pr_number: prNumber },
    },
  };
}
