import { untrustedInline } from "../protocol/text.js";
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
  // An escalation's issue may be an agent's words: marked wherever a decision quotes it.
  read: (_rt, state) => {
    const view = decisionsView(state);
    return json(
      {
        ...view,
        decisions: view.decisions.map((d) =>
          typeof d.inputs.issue === "string"
            ? { ...d, inputs: { ...d.inputs, issue: untrustedInline(`${d.id} issue`, d.inputs.issue) } }
            : d,
        ),
      },
      true,
    );
  },
});
