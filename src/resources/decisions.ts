import { untrustedInline } from "../protocol/text.js";
import type { ReadonlyState } from "../state/store.js";
import { defineResource, json } from "./define-resource.js";
import { decisionsView } from "./views.js";

const PAGED =
  "Paged: up to 100 decisions (and about 128 KB) a page, oldest first; `older` is the URI of the page before it, null at the first decision.";

export const decisionsResource = defineResource({
  name: "decisions",
  uri: "eoa://decisions",
  title: "Decision log",
  description: `Every autonomous decision (assign, queue, reassign, block, merge, escalate, quarantine) with the rule that fired and its inputs, the latest first page. ${PAGED}`,
  mimeType: "application/json",
  dependsOn: ["decisions"],
  read: (_rt, state) => decisionsPage(state),
});

export const olderDecisionsResource = defineResource({
  name: "decisions-before",
  uri: "eoa://decisions/before/{decision_id}",
  title: "Earlier decisions",
  description: `The decisions recorded before the given one, as eoa://decisions names them in \`older\`. ${PAGED}`,
  mimeType: "application/json",
  dependsOn: ["decisions"],
  read: (_rt, state, params) => decisionsPage(state, params.decision_id ?? ""),
});

// An escalation's issue may be an agent's words: marked wherever a decision quotes it.
function decisionsPage(state: ReadonlyState, before?: string) {
  const view = decisionsView(state, before);
  if (!view) return null;
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
}
