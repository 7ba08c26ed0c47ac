import { agentLoads, OCCUPYING } from "../protocol/assignment.js";
import { escalationOrder } from "../protocol/escalation.js";
import type { ReadonlyState } from "../state/store.js";
import type { EscalationRecord, TaskRecord } from "../state/schema.js";
import { untrustedInline } from "../protocol/text.js";
import { page } from "./pages.js";

/** Read models behind the resources: derived values (load, busy, completion) computed here, never stored. */

/**
 * Held tasks the roster names per agent at most, those counted in its load first: blocked tasks and
 * tasks at human review keep their holder, and pile up over a night (issue 16).
 */
export const ROSTER_TASKS = 20;

export function rosterView(state: ReadonlyState) {
  const tasks = Object.values(state.tasks);
  const loads = agentLoads(tasks);
  const held = new Map<string, TaskRecord[]>();
  for (const t of tasks) {
    if (!t.assignee || t.status === "done") continue;
    const list = held.get(t.assignee);
    if (list) list.push(t);
    else held.set(t.assignee, [t]);
  }
  const named = (list: TaskRecord[]) =>
    [
      ...list.filter((t) => OCCUPYING.includes(t.status)),
      ...list.filter((t) => !OCCUPYING.includes(t.status)),
    ]
      .slice(0, ROSTER_TASKS)
      .map((t) => `${t.task_id} (${t.status})`);
  return Object.values(state.agents).map((a) => {
    const load = loads.get(a.id) ?? 0;
    return {
      id: a.id,
      session: a.session,
      capabilities: [...a.capabilities],
      max_concurrent_tasks: a.max_concurrent_tasks,
      backup: [...a.backup],
      availability: a.availability === "active" && load >= a.max_concurrent_tasks ? "busy" : a.availability,
      load,
      missed_heartbeats: a.missed_heartbeats,
      ...(a.last_seen ? { last_seen: a.last_seen } : {}),
      ...(a.offline_since ? { offline_since: a.offline_since, offline_reason: a.offline_reason } : {}),
      tasks: named(held.get(a.id) ?? []),
      tasks_held: held.get(a.id)?.length ?? 0,
    };
  });
}

export function currentSession(state: ReadonlyState) {
  return state.sessions.find((s) => s.id === state.current_session_id) ?? null;
}

export function sessionView(state: ReadonlyState) {
  const s = currentSession(state);
  if (!s) return { session: null, hint: "no session yet: call start_session" };
  const counts: Record<string, number> = {};
  for (const id of s.task_ids) {
    const st = state.tasks[id]?.status ?? "missing";
    counts[st] = (counts[st] ?? 0) + 1;
  }
  // The ids grow with the night: they are listed, in order, by the pages of eoa://tasks.
  const { task_ids, ...session } = s;
  return {
    session: { ...session, task_count: task_ids.length },
    task_counts: counts,
    open_escalations: state.escalations.filter((e) => e.status === "open").length,
    poll_cycles: state.cycle.count,
    last_cycle_at: state.cycle.last_at ?? null,
  };
}

export function taskSummary(t: TaskRecord) {
  return {
    task_id: t.task_id,
    title: t.title,
    priority: t.priority,
    status: t.status,
    assignee: t.assignee ?? null,
    depends_on: [...t.depends_on],
    pr_number: t.pr_number ?? null,
    progress_percent: t.status === "done" ? 100 : (t.progress_percent ?? 0),
    queued: t.queue ? t.queue.reason : null,
    blocked: t.status === "blocked" ? (t.blocked_reason ?? null) : null,
  };
}

/** Tasks a page of `eoa://tasks` holds at most. */
export const TASKS_PAGE = 100;

/**
 * One page of the current session's tasks from `from` (earlier sessions' finished work stays out of
 * the listing), in the session's order, which never changes: an offset stays a valid cursor.
 */
export function tasksView(state: ReadonlyState, from = 0) {
  const s = currentSession(state);
  const ids = s ? s.task_ids : [];
  const tasks = ids.map((id) => state.tasks[id]).filter((t): t is TaskRecord => !!t);
  const { items, end } = page(tasks.slice(from, from + TASKS_PAGE).map(taskSummary), 0, TASKS_PAGE);
  return {
    session_id: s?.id ?? null,
    total: tasks.length,
    total_in_state: Object.keys(state.tasks).length,
    from,
    tasks: items,
    next: from + end < tasks.length ? `eoa://tasks/page/${from + end}` : null,
  };
}

export function taskView(state: ReadonlyState, taskId: string) {
  const t = state.tasks[taskId];
  if (!t) return null;
  const reviews = Object.values(state.reviews)
    .filter((r) => r.task_id === taskId)
    .sort((a, b) => a.at.localeCompare(b.at));
  const last = reviews.at(-1);
  return {
    ...t,
    completion: {
      percent: t.status === "done" ? 100 : (t.progress_percent ?? 0),
      done: t.status === "done",
      criteria: t.completion_criteria.map((c) => ({
        criterion: c,
        verified: t.status === "done" || last?.gate1 === "pass",
      })),
      last_review: last
        ? {
            pr_number: last.pr_number,
            head_sha: last.head_sha,
            gate1: last.gate1,
            gate2: last.gate2,
            decision: last.decision,
            at: last.at,
          }
        : null,
    },
    reviews: reviews.map((r) => ({
      key: r.key,
      decision: r.decision,
      at: r.at,
      findings: r.findings.length,
    })),
  };
}

/** Escalations each list of an eoa://escalations page holds at most: open ones and resolved ones. */
export const ESCALATIONS_PAGE = 50;
/** Two lists share a page: each gets a little under half of what a reply may weigh. */
const ESCALATION_LIST_BYTES = 96 * 1024;

/**
 * Open escalations, security first, then blockers by retry count, then task priority, then age;
 * after escalation `after` in that order when given (a resolved one keeps its place).
 */
export function openEscalations(state: ReadonlyState, after?: string) {
  const raised = raisedOrder(state);
  const urgency = escalationOrder((id) => (id ? state.tasks[id]?.priority : undefined));
  const list = escalationList(
    state,
    "open",
    (a, b) => urgency(a, b) || raised(a, b),
    after,
    () => true,
  );
  return (
    list && {
      open_total: list.total,
      open: list.items,
      more_open: list.last && `eoa://escalations/open/after/${list.last}`,
    }
  );
}

/** Resolved escalations, the latest answered first; those answered before `before` when given. */
export function resolvedEscalations(state: ReadonlyState, before?: string) {
  const raised = raisedOrder(state);
  const latest = (a: EscalationRecord, b: EscalationRecord) =>
    b.resolution!.at.localeCompare(a.resolution!.at) || raised(b, a);
  const list = escalationList(state, "resolved", latest, before, (e) => e.status === "resolved");
  return (
    list && {
      resolved_total: list.total,
      resolved: list.items,
      older_resolved: list.last && `eoa://escalations/resolved/before/${list.last}`,
    }
  );
}

const raisedOrder = (state: ReadonlyState) => {
  const index = new Map(state.escalations.map((e, i) => [e.id, i]));
  return (a: EscalationRecord, b: EscalationRecord) => index.get(a.id)! - index.get(b.id)!;
};

/**
 * One page of the escalations with `status`, in `order`, after escalation `cursor` when given. A
 * cursor is a place in the order, not a position: it stays valid however many are raised or
 * answered meanwhile (answers join the resolved list at its front). Null: no such place.
 */
function escalationList(
  state: ReadonlyState,
  status: EscalationRecord["status"],
  order: (a: EscalationRecord, b: EscalationRecord) => number,
  cursor: string | undefined,
  placed: (e: EscalationRecord) => boolean,
) {
  const at = cursor === undefined ? undefined : state.escalations.find((e) => e.id === cursor);
  if (cursor !== undefined && !(at && placed(at))) return null;
  const all = state.escalations.filter((e) => e.status === status);
  const rest = all.filter((e) => !at || order(at, e) < 0).sort(order);
  const { items } = page(
    rest.slice(0, ESCALATIONS_PAGE).map(markedEscalation),
    0,
    ESCALATIONS_PAGE,
    ESCALATION_LIST_BYTES,
  );
  return { total: all.length, items, last: items.length < rest.length ? items.at(-1)!.id : null };
}

/** Decisions a page of `eoa://decisions` holds at most. */
export const DECISIONS_PAGE = 100;

/**
 * The latest decisions, or those before decision `before` (oldest first within a page). A decision
 * id stays a valid cursor however many are recorded meanwhile.
 */
export function decisionsView(state: ReadonlyState, before?: string) {
  const all = state.decisions;
  const end = before === undefined ? all.length : all.findIndex((d) => d.id === before);
  if (end < 0) return null;
  const start = Math.max(0, end - DECISIONS_PAGE);
  // Filled from the newest back, so that the byte bound drops the oldest of the page.
  const { items } = page(all.slice(start, end).reverse(), 0, DECISIONS_PAGE);
  const decisions = items.reverse();
  const first = end - decisions.length;
  return {
    total: all.length,
    decisions,
    older: first > 0 ? `eoa://decisions/before/${all[first]!.id}` : null,
  };
}

/** What an agent (or an issue) may have written: marked as check_messages marks agent text. */
export function markedEscalation(e: EscalationRecord): EscalationRecord {
  const mark = (field: string, s: string | undefined) =>
    s === undefined ? {} : { [field]: untrustedInline(`${e.id} ${field}`, s) };
  return {
    ...e,
    ...mark("issue", e.issue),
    ...mark("context", e.context),
    ...mark("current_action", e.current_action),
  };
}
