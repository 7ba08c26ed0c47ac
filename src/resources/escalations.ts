import { defineResource, json } from "./define-resource.js";
import { openEscalations, resolvedEscalations } from "./views.js";

const PAGED =
  "Paged: up to 50 open and 50 resolved escalations a page; `more_open` is the URI of the next open ones and `older_resolved` of the earlier resolved ones, null when there are no more.";

export const escalationsResource = defineResource({
  name: "escalations",
  uri: "eoa://escalations",
  title: "Escalations",
  description: `Open escalations first, ordered security first, then blockers by retry count, then task priority, then age; then resolved ones, the latest answered first. ${PAGED}`,
  mimeType: "application/json",
  dependsOn: ["escalations"],
  read: (_rt, state) => json({ ...openEscalations(state), ...resolvedEscalations(state) }, true),
});

export const openEscalationsResource = defineResource({
  name: "escalations-open-after",
  uri: "eoa://escalations/open/after/{escalation_id}",
  title: "Further open escalations",
  description: `The open escalations that come after the given one in eoa://escalations' order, as it names them in \`more_open\`. ${PAGED}`,
  mimeType: "application/json",
  dependsOn: ["escalations"],
  read: (_rt, state, params) => {
    const view = openEscalations(state, params.escalation_id ?? "");
    return view && json(view, true);
  },
});

export const resolvedEscalationsResource = defineResource({
  name: "escalations-resolved-before",
  uri: "eoa://escalations/resolved/before/{escalation_id}",
  title: "Earlier resolved escalations",
  description: `The escalations answered before the given one, as eoa://escalations names them in \`older_resolved\`. ${PAGED}`,
  mimeType: "application/json",
  dependsOn: ["escalations"],
  read: (_rt, state, params) => {
    const view = resolvedEscalations(state, params.escalation_id ?? "");
    return view && json(view, true);
  },
});
