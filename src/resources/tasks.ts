import { defineResource, json } from "./define-resource.js";
import { currentSession, taskView, tasksView } from "./views.js";

export const tasksResource = defineResource({
  name: "tasks",
  uri: "eoa://tasks",
  title: "Tasks of the current session",
  description:
    "One summary line per task of the current session: status (kanban column), assignee, PR, progress, queue or block reason.",
  mimeType: "application/json",
  dependsOn: ["tasks", "sessions", "current_session_id"],
  read: (_rt, state) => json(tasksView(state), true),
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
    return view ? json(view) : null;
  },
  list: (state) => (currentSession(state)?.task_ids ?? []).map((id) => `eoa://tasks/${id}`),
});
