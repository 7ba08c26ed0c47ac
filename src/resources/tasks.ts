import { defineResource, json } from "./define-resource.js";
import { untrustedInline } from "../protocol/text.js";
import type { ReadonlyState } from "../state/store.js";
import { readHistoryPage } from "../state/archive.js";
import { HISTORY_KEPT, HISTORY_PAGE, historyToArchive } from "../protocol/machine/history.js";
import { offsetOf } from "./pages.js";
import { currentSession, taskView, tasksView } from "./views.js";

const PAGED =
  "Paged: up to 100 tasks (and about 128 KB) a page; `next` is the URI of the following page, null on the last.";

export const tasksResource = defineResource({
  name: "tasks",
  uri: "eoa://tasks",
  title: "Tasks of the current session",
  description: `One summary line per task of the current session: status (kanban column), assignee, PR, progress, queue or block reason; each task's full record is eoa://tasks/{task_id}. ${PAGED}`,
  mimeType: "application/json",
  dependsOn: ["tasks", "sessions", "current_session_id"],
  read: (_rt, state) => tasksPage(state, 0),
});

export const tasksPageResource = defineResource({
  name: "tasks-page",
  uri: "eoa://tasks/page/{cursor}",
  title: "A further page of the session's tasks",
  description: `The tasks of the current session from the cursor on, as eoa://tasks names it in \`next\`. ${PAGED}`,
  mimeType: "application/json",
  dependsOn: ["tasks", "sessions", "current_session_id"],
  read: (_rt, state, params) => {
    const total = currentSession(state)?.task_ids.length ?? 0;
    const from = offsetOf(params.cursor, total);
    return from === undefined ? null : tasksPage(state, from);
  },
});

function tasksPage(state: ReadonlyState, from: number) {
  const view = tasksView(state, from);
  return json({ ...view, tasks: view.tasks.map(marked) }, true);
}

const ARCHIVED = `the latest entries (at least ${HISTORY_KEPT}, fewer than ${HISTORY_KEPT + HISTORY_PAGE}) and the first of each kind; older ones are archived in pages of ${HISTORY_PAGE}, oldest first`;

export const taskResource = defineResource({
  name: "task",
  uri: "eoa://tasks/{task_id}",
  title: "One task",
  description: `The full task record with its completion (percent, criteria, last review) and history: ${ARCHIVED} (history_archive says how many and where; history_archiving counts those the next poll cycle archives).`,
  mimeType: "application/json",
  dependsOn: ["tasks", "reviews"],
  read: (_rt, state, params) => {
    const view = taskView(state, params.task_id ?? "");
    if (!view) return null;
    const pages = Math.ceil((view.history_archived ?? 0) / HISTORY_PAGE);
    // Past the cap until the next poll cycle archives them (a burst of reports, a state from
    // before the cap): shown once archived, so that this answer stays bounded meanwhile.
    const archiving = new Set(historyToArchive(view));
    return json({
      ...marked({ ...view, history: view.history.filter((_, i) => !archiving.has(i)) }),
      history_archiving: archiving.size,
      history_archive: pages
        ? {
            entries: view.history_archived,
            pages,
            first: historyPageUri(view.task_id, 1),
            latest: historyPageUri(view.task_id, pages),
          }
        : null,
      completion: {
        ...view.completion,
        criteria: view.completion.criteria.map((c) => ({
          ...c,
          criterion: untrustedInline(`${view.task_id} criterion`, c.criterion),
        })),
      },
    });
  },
});

export const taskHistoryResource = defineResource({
  name: "task-history",
  uri: "eoa://tasks/{task_id}/history/{page}",
  title: "Archived history of a task",
  description: `A page of the entries a task's history no longer keeps in the state (it keeps ${ARCHIVED}); \`next\` is the URI of the following page, null on the latest.`,
  mimeType: "application/json",
  dependsOn: ["tasks"],
  read: async (rt, state, params) => {
    const taskId = params.task_id ?? "";
    const pages = Math.ceil((state.tasks[taskId]?.history_archived ?? 0) / HISTORY_PAGE);
    const page = /^\d{1,9}$/.test(params.page ?? "") ? Number(params.page) : 0;
    if (page < 1 || page > pages) return null;
    const entries = await readHistoryPage(rt.config.stateDir, taskId, page);
    if (!entries) return null;
    return json(
      {
        task_id: taskId,
        page,
        pages,
        history: entries.map((h) =>
          h.detail === undefined ? h : { ...h, detail: untrustedInline(`${taskId} history`, h.detail) },
        ),
        next: page < pages ? historyPageUri(taskId, page + 1) : null,
      },
      true,
    );
  },
});

const historyPageUri = (taskId: string, page: number) =>
  `eoa://tasks/${encodeURIComponent(taskId)}/history/${page}`;

/** Fields holding issue or agent text: each value marked the way check_messages marks agent text. */
const UNTRUSTED = ["title", "instructions", "progress_note", "blocked_reason", "blocked"] as const;
const UNTRUSTED_LISTS = [
  ["completion_criteria", "criterion"],
  ["test_requirements", "test requirement"],
  ["files_in_scope", "file in scope"],
] as const;

function marked<T extends { task_id: string }>(task: T): T {
  const out: Record<string, unknown> = { ...task };
  const mark = (field: string, text: string) => untrustedInline(`${task.task_id} ${field}`, text);
  for (const f of UNTRUSTED) if (typeof out[f] === "string") out[f] = mark(f, out[f]);
  for (const [f, each] of UNTRUSTED_LISTS)
    if (Array.isArray(out[f])) out[f] = (out[f] as string[]).map((v) => mark(each, v));
  if (Array.isArray(out.history))
    out.history = (out.history as Array<{ detail?: string }>).map((h) =>
      h.detail === undefined ? h : { ...h, detail: mark("history", h.detail) },
    );
  return out as T;
}
