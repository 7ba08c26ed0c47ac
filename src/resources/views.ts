import { agentLoads } from "../protocol/assignment.js";
import { escalationOrder } from "../protocol/escalation.js";
import type { ReadonlyState } from "../state/store.js";
import type { EscalationRecord, TaskRecord } from "../state/schema.js";
import { untrustedInline } from "../protocol/text.js";
import { page } from "./pages.js";

/** Read models behind the resources: derived values (load, busy, completion) computed here, never stored. */

export function rosterView(state: ReadonlyState) {
  const tasks = Object.values(state.tasks);
  const loads = agentLoads(tasks);
  const held = new Map<string, string[]>();
  for (const t of tasks) {
    if (!t.assignee || t.status === "done") continue;
    const line = `${t.task_id} (${t.status})`;
    const list = held.get(t.assignee);
    if (list) list.push(line);
    else held.set(t.assignee, [line]);
  }
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
      tasks: held.get(a.id) ?? [],
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

export function escalationsView(state: ReadonlyState) {
  const priorityOf = (id: string | undefined) => (id ? state.tasks[id]?.priority : undefined);
  const sorted = [...state.escalations].sort(escalationOrder(priorityOf));
  return {
    open: sorted.filter((e) => e.status === "open"),
    resolved: sorted.filter((e) => e.status === "resolved"),
  };
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
