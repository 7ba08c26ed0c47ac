import { defineResource, json } from "./define-resource.js";
import { sessionView } from "./views.js";

export const sessionResource = defineResource({
  name: "session",
  uri: "eoa://session",
  title: "Current session",
  description:
    "The current session: status, directive and escalation policy, task counts by column, open escalations, poll cycles. Its tasks, in order, are the pages of eoa://tasks.",
  mimeType: "application/json",
  dependsOn: ["sessions", "current_session_id", "tasks", "escalations", "cycle"],
  read: (_rt, state) => json(sessionView(state)),
});
