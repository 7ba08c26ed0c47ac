import { defineResource, json } from "./define-resource.js";
import { untrustedInline } from "../protocol/text.js";
import { currentSession, taskView, tasksView } from "./views.js";

export const tasksResource = defineResource({
  name: "tasks",
  uri: "eoa://tasks",
  title: "Tasks of the current session",
  description:
    "One summary line per task of the current session: status (kanban column), assignee, PR, progress, queue or block reason.",
  mimeType: "application/json",
  dependsOn: ["tasks", "sessions", "current_session_id"],
  read: (_rt, state) => {
    const view = tasksView(state);
    return json({ ...view, tasks: view.tasks.map(marked) }, true);
  },
});

export const taskResource = defineResource({
  name: "task",
  uri: "eoa://tasks/{task_id}",
  title: "One task",
  description: "The full task record with its completion (percent, criteria, last review) and history.",
  mimeType: "application/json",
  dependsOn: ["tasks", "reviews"],
  read: (_rt, state, params) => {
    const view = taskView(state, params.task_id ?? "");
    return view
      ? json({
          ...marked(view),
          completion: {
            ...view.completion,
            criteria: view.completion.criteria.map((c) => ({
              ...c,
              criterion: untrustedInline(`${view.task_id} criterion`, c.criterion),
            })),
          },
        })
      : null;
  },
  list: (state) => (currentSession(state)?.task_ids ?? []).map((id) => `eoa://tasks/${id}`),
});

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
