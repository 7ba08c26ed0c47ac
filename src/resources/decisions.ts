import { defineResource, json } from "./define-resource.js";
import { decisionsView } from "./views.js";

export const decisionsResource = defineResource({
  name: "decisions",
  uri: "eoa://decisions",
  title: "Decision log",
  description:
    "Every autonomous decision (assign, queue, reassign, block, merge, escalate, quarantine) with the rule that fired and its inputs; the latest 500.",
  mimeType: "application/json",
  dependsOn: ["decisions"],
  read: (_rt, state) => json(decisionsView(state), true),
});
