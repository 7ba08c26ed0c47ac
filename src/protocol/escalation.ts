import type { EscalationCategory, EscalationPolicy, EscalationRecord, Priority } from "../state/schema.js";
import { ESCALATION_CATEGORIES } from "../state/schema.js";
import { PRIORITY_RANK } from "./assignment.js";

/**
 * Rule 8: where an escalation goes. The seed: security vulnerabilities, data corruption risk and
 * critical infrastructure failure page the user at once; architecture, dependency and non-critical
 * blockers wait for the user's review while work goes on.
 */

export const DEFAULT_IMMEDIATE: readonly EscalationCategory[] = [
  "security",
  "data_corruption",
  "infrastructure",
];

const CATEGORY_WORDS: Record<EscalationCategory, RegExp> = {
  security: /secur|vulnerab|cve|leak/i,
  data_corruption: /data|corrupt/i,
  infrastructure: /infra|outage|ci\b|server|down/i,
  architecture: /architect|design/i,
  dependency: /dependenc|librar|package/i,
  blocker: /block/i,
};

/**
 * Reads the user's directive ("Escalate only for security issues") into the set of categories that
 * page the user. Security always pages: a directive can narrow the set, never empty it.
 */
export function policyFromDirective(directive: string | undefined): EscalationPolicy {
  if (!directive || !/escalat|page|notify|wake|alert/i.test(directive)) {
    return { immediate: [...DEFAULT_IMMEDIATE], source: "protocol default" };
  }
  const only = /\bonly\b/i.test(directive);
  const never = /\b(never|nothing|no escalation|don'?t escalate|do not escalate)\b/i.test(directive);
  const named = ESCALATION_CATEGORIES.filter((c) => CATEGORY_WORDS[c].test(directive));
  let immediate: EscalationCategory[];
  if (only && named.length) immediate = named;
  else if (never) immediate = [];
  else immediate = [...new Set([...DEFAULT_IMMEDIATE, ...named])];
  if (!immediate.includes("security")) immediate.unshift("security");
  return { immediate, source: `directive: ${directive}` };
}

export function escalationLevel(
  category: EscalationCategory,
  policy: EscalationPolicy,
): "immediate" | "deferred" {
  return category === "security" || policy.immediate.includes(category) ? "immediate" : "deferred";
}

/** An open escalation of the same task and category absorbs a new one. */
export function findDuplicate(
  escalations: readonly EscalationRecord[],
  taskId: string | undefined,
  category: EscalationCategory,
  issue: string,
): EscalationRecord | undefined {
  return escalations.find(
    (e) =>
      e.status === "open" &&
      e.category === category &&
      (taskId ? e.task_id === taskId : !e.task_id && e.issue === issue),
  );
}

/**
 * A task parked by several open escalations waits for every answer. When `resolvedId` is answered,
 * a task it parked that `parkedBy` holds now is: still held by another open escalation (the one
 * holding it, or one that parked it too, which takes the hold over); free to resume; or left as it
 * is when its holder is not open (nothing this answer decides).
 */
export function holdAfterAnswer<E extends Pick<EscalationRecord, "id" | "status" | "parked_tasks">>(
  escalations: readonly E[],
  resolvedId: string,
  taskId: string,
  parkedBy: string,
): { heldBy: E } | "resume" | "untouched" {
  if (parkedBy !== resolvedId) {
    const holder = escalations.find((e) => e.id === parkedBy && e.status === "open");
    return holder ? { heldBy: holder } : "untouched";
  }
  const other = escalations.find(
    (e) => e.id !== resolvedId && e.status === "open" && e.parked_tasks.includes(taskId),
  );
  return other ? { heldBy: other } : "resume";
}

/** Order for the user: security first, then blockers by retry count, then task priority, then age. */
export function escalationOrder(
  priorityOf: (taskId: string | undefined) => Priority | undefined,
): (a: EscalationRecord, b: EscalationRecord) => number {
  const rank = (e: EscalationRecord) => (e.category === "security" ? 0 : e.category === "blocker" ? 1 : 2);
  return (a, b) =>
    rank(a) - rank(b) ||
    (a.category === "blocker" && b.category === "blocker" ? b.occurrences - a.occurrences : 0) ||
    PRIORITY_RANK[priorityOf(a.task_id) ?? "normal"] - PRIORITY_RANK[priorityOf(b.task_id) ?? "normal"] ||
    a.created_at.localeCompare(b.created_at);
}

/**
 * Whether an escalation holds its task until the user answers. Immediate ones always do; a blocker
 * does; an architecture or dependency question does not when the agent went on with a documented
 * judgment (`current_action`), as the seed's deferred example does.
 */
export function parksTask(
  level: "immediate" | "deferred",
  category: EscalationCategory,
  currentAction: string | undefined,
): boolean {
  if (level === "immediate" || category === "blocker") return true;
  return !currentAction;
}
