import { defineResource, json } from "./define-resource.js";
import { escalationsView, markedEscalation } from "./views.js";

export const escalationsResource = defineResource({
  name: "escalations",
  uri: "eoa://escalations",
  title: "Escalations",
  description:
    "Open escalations first, ordered security first, then blockers by retry count, then task priority, then age; then resolved ones.",
  mimeType: "application/json",
  dependsOn: ["escalations"],
  read: (_rt, state) => {
    const view = escalationsView(state);
    return json({ open: view.open.map(markedEscalation), resolved: view.resolved.map(markedEscalation) });
  },
});
