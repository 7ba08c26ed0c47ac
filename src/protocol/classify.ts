import type { EscalationCategory } from "../state/schema.js";
import { ESCALATION_CATEGORIES } from "../state/schema.js";
import { cap } from "./text.js";

/**
 * Inbound messages, classified from `content.context` when the agent sent structure, else from the
 * text forms agents use (`[ACK] GH-101 - RECEIVED`, `[DONE] GH-101 ... PR #147`, `[BLOCKED] ...`).
 * Everything here is untrusted data: fields are type-checked and capped, never executed.
 */

export interface InboundMessage {
  id: string;
  from: string;
  subject: string;
  content: { type?: unknown; message?: unknown; context?: unknown };
}

export type Classified =
  | { kind: "ack"; task_id: string; epoch?: number }
  | { kind: "progress"; task_id: string; percent?: number; note: string; branch?: string; epoch?: number }
  | { kind: "completion"; task_id: string; pr_number?: number; branch?: string; note: string; epoch?: number }
  | { kind: "error"; task_id?: string; note: string; epoch?: number }
  | { kind: "blocked"; task_id: string; note: string; epoch?: number }
  | {
      kind: "escalation";
      task_id?: string;
      category: EscalationCategory;
      note: string;
      epoch?: number;
      /** What the agent is doing meanwhile (the seed's current_action), when it says. */
      current_action?: string;
      /** The agent says it stopped until it gets an answer. */
      stopped?: boolean;
    }
  | { kind: "heartbeat" }
  | { kind: "unknown"; reason: string };

const TASK_ID = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
const TASK_IN_TEXT = /\b([A-Z][A-Z0-9]*-\d+)\b/;

const TYPE_KIND: Record<string, Classified["kind"]> = {
  ack: "ack",
  acknowledgement: "ack",
  acknowledgment: "ack",
  "task-ack": "ack",
  received: "ack",
  progress: "progress",
  "status-update": "progress",
  "progress-report": "progress",
  completion: "completion",
  "completion-report": "completion",
  "task-complete": "completion",
  complete: "completion",
  done: "completion",
  error: "error",
  "error-report": "error",
  failure: "error",
  blocked: "blocked",
  escalation: "escalation",
  "urgent-escalation": "escalation",
  "deferred-escalation": "escalation",
  "escalation-request": "escalation",
  heartbeat: "heartbeat",
  ping: "heartbeat",
};

const TAG_KIND: Record<string, Classified["kind"]> = {
  ACK: "ack",
  ACKNOWLEDGED: "ack",
  RECEIVED: "ack",
  PROGRESS: "progress",
  STATUS: "progress",
  UPDATE: "progress",
  DONE: "completion",
  COMPLETE: "completion",
  COMPLETED: "completion",
  ERROR: "error",
  FAILED: "error",
  BLOCKED: "blocked",
  ESCALATE: "escalation",
  ESCALATION: "escalation",
  URGENT: "escalation",
  SECURITY: "escalation",
  HEARTBEAT: "heartbeat",
  PING: "heartbeat",
};

/** AI Maestro wraps the text of a sender it cannot vouch for (an unregistered name) this way. */
const EXTERNAL_CONTENT = /^\s*<external-content\s/;

export function classifyMessage(msg: InboundMessage): Classified {
  const text = typeof msg.content.message === "string" ? msg.content.message : "";
  if (EXTERNAL_CONTENT.test(text))
    return {
      kind: "unknown",
      reason: "AI Maestro could not vouch for the sender (its text came wrapped as external content)",
    };
  const ctx = isRecord(msg.content.context) ? msg.content.context : {};
  const typeField = str(ctx.type) ?? str(msg.content.type);
  const tag = /^\s*\[([A-Za-z]+)\]/.exec(text)?.[1] ?? /^\s*\[([A-Za-z]+)\]/.exec(msg.subject)?.[1];
  const kind =
    (typeField && own(TYPE_KIND, typeField.toLowerCase())) ||
    (tag && own(TAG_KIND, tag.toUpperCase())) ||
    undefined;
  if (!kind) return { kind: "unknown", reason: "neither a known content type nor a [TAG] text form" };
  if (kind === "heartbeat") return { kind };

  const whole = `${msg.subject}\n${text}`;
  const taskId = validTaskId(str(ctx.task_id)) ?? TASK_IN_TEXT.exec(whole)?.[1];
  const note = cap(str(ctx.summary) ?? str(ctx.message) ?? str(ctx.issue) ?? str(ctx.error) ?? text);
  const epoch = int(ctx.assignment_epoch);
  const base = epoch === undefined ? {} : { epoch };

  switch (kind) {
    case "ack":
      return taskId ? { kind, task_id: taskId, ...base } : missingTask(kind);
    case "progress": {
      if (!taskId) return missingTask(kind);
      const percent =
        int(ctx.progress ?? ctx.percent ?? ctx.progress_percent) ?? int(/(\d{1,3})\s*%/.exec(text)?.[1]);
      const branch = branchName(ctx.branch);
      return {
        kind,
        task_id: taskId,
        note,
        ...(percent !== undefined && percent >= 0 && percent <= 100 ? { percent } : {}),
        ...(branch ? { branch } : {}),
        ...base,
      };
    }
    case "completion": {
      if (!taskId) return missingTask(kind);
      const pr =
        int(ctx.pr_number ?? ctx.pr) ??
        int(/\bPR\s*#?(\d{1,7})\b/i.exec(whole)?.[1]) ??
        int(/\/pull\/(\d{1,7})\b/.exec(whole)?.[1]);
      const branch = branchName(ctx.branch);
      return {
        kind,
        task_id: taskId,
        note,
        ...(pr !== undefined && pr > 0 ? { pr_number: pr } : {}),
        ...(branch ? { branch } : {}),
        ...base,
      };
    }
    case "blocked":
      return taskId ? { kind, task_id: taskId, note, ...base } : missingTask(kind);
    case "error":
      return { kind, ...(taskId ? { task_id: taskId } : {}), note, ...base };
    case "escalation": {
      const category = escalationCategory(str(ctx.category), tag, whole);
      const current = str(ctx.current_action);
      const stopped = ctx.stopped === true || STOPPED.test(whole);
      return {
        kind,
        category,
        ...(taskId ? { task_id: taskId } : {}),
        note,
        ...(current ? { current_action: cap(current, 500) } : {}),
        ...(stopped ? { stopped } : {}),
        ...base,
      };
    }
  }
  return { kind: "unknown", reason: "unhandled kind" };
}

function escalationCategory(
  field: string | undefined,
  tag: string | undefined,
  text: string,
): EscalationCategory {
  const f = field?.toLowerCase().replace(/[\s-]/g, "_");
  if (f && (ESCALATION_CATEGORIES as readonly string[]).includes(f)) return f as EscalationCategory;
  if (tag?.toUpperCase() === "SECURITY" || /secur|vulnerab|injection|xss|cve-/i.test(text)) return "security";
  if (/data (loss|corruption)|corrupt/i.test(text)) return "data_corruption";
  if (/architect|design decision/i.test(text)) return "architecture";
  if (/dependenc|library|package version/i.test(text)) return "dependency";
  if (/infrastructure|outage/i.test(text)) return "infrastructure";
  return "blocker";
}

/** An agent saying it waits for an answer before going on. */
const STOPPED =
  /\b(stopped|halted|paused|blocked until|waiting for (an |your )?(answer|decision)|cannot (continue|proceed)|can't (continue|proceed))\b/i;

/**
 * An error report's kind (issue 12): the agent's own environment (credentials, permissions,
 * tooling, disk), which another agent would not meet, or the task's own failure.
 */
const ENVIRONMENT =
  /permission denied|publickey|authenticat|credential|unauthori[sz]ed|\b40[13]\b|token (expired|invalid|revoked)|no space left|ENOSPC|disk (is )?full|quota exceeded|command not found|not installed|no such file or directory.*\b(git|node|npm|python|docker)\b|could not resolve host|network is unreachable/i;

export function errorKind(note: string): "environment" | "task" {
  return ENVIRONMENT.test(note) ? "environment" : "task";
}

function missingTask(kind: string): Classified {
  return { kind: "unknown", reason: `a ${kind} message that names no task id` };
}

/** A table lookup by an agent's word: `constructor` or `__proto__` is no kind, not an inherited member. */
function own<T>(table: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined;
}
function isRecord(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === "object" && !Array.isArray(v);
}
function str(v: unknown): string | undefined {
  return typeof v === "string" && v.trim() ? v : undefined;
}
function int(v: unknown): number | undefined {
  const n = typeof v === "string" && /^\d{1,9}$/.test(v.trim()) ? Number(v) : v;
  return typeof n === "number" && Number.isInteger(n) && n >= 0 && n < 1e9 ? n : undefined;
}
function validTaskId(v: string | undefined): string | undefined {
  return v && TASK_ID.test(v) ? v : undefined;
}
function branchName(v: unknown): string | undefined {
  return typeof v === "string" && /^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$/.test(v) && !v.includes("..")
    ? v
    : undefined;
}
