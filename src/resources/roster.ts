import { renderRosterMarkdown } from "../roster.js";
import { defineResource, json, markdown } from "./define-resource.js";
import { rosterView } from "./views.js";

export const rosterResource = defineResource({
  name: "roster",
  uri: "eoa://roster",
  title: "Agent roster",
  description:
    "Every roster agent: capabilities, limit, backups, availability (active, busy, offline, onboarding), load, missed heartbeats, and the tasks it holds (tasks_held; up to 20 named, those it works on first; eoa://tasks shows every task's assignee).",
  mimeType: "application/json",
  dependsOn: ["agents", "tasks"],
  read: (_rt, state) => json({ agents: rosterView(state) }),
});

export const rosterMarkdownResource = defineResource({
  name: "roster.md",
  uri: "eoa://roster.md",
  title: "AGENT_ROSTER.md",
  description: "The roster rendered as AGENT_ROSTER.md (the same table format the server reads).",
  mimeType: "text/markdown",
  dependsOn: ["agents", "tasks"],
  read: (_rt, state) => markdown(renderRosterMarkdown(rosterView(state))),
});
