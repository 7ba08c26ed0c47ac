import { untrustedInline } from "../protocol/text.js";
import type { EscalationRecord } from "../state/schema.js";
import { defineResource, json } from "./define-resource.js";
import { escalationsView } from "./views.js";

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
    return json({ open: view.open.map(marked), resolved: view.resolved.map(marked) });
  },
});

/** What an agent (or an issue) may have written: marked as check_messages marks agent text. */
function marked(e: EscalationRecord): EscalationRecord {
  const mark = (field: string, s: string | undefined) =>
    s === undefined ? {} : { [field]: untrustedInline(`${e.id} ${field}`, s) };
  return {
    ...e,
    ...mark("issue", e.issue),
    ...mark("context", e.context),
    ...mark("current_action", e.current_action),
  };
}
