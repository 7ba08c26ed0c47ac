import type { ResourceDefinition } from "./define-resource.js";
import { configResource } from "./config.js";
import { decisionsResource, olderDecisionsResource } from "./decisions.js";
import { diffResource } from "./diff.js";
import { escalationsResource, openEscalationsResource, resolvedEscalationsResource } from "./escalations.js";
import { rosterMarkdownResource, rosterResource } from "./roster.js";
import { latestReportResource, reportPageResource } from "./reports.js";
import { sessionResource } from "./session.js";
import { taskHistoryResource, taskResource, tasksPageResource, tasksResource } from "./tasks.js";

export const resources: readonly ResourceDefinition[] = [
  rosterResource,
  rosterMarkdownResource,
  sessionResource,
  tasksResource,
  tasksPageResource,
  taskHistoryResource,
  taskResource,
  escalationsResource,
  openEscalationsResource,
  resolvedEscalationsResource,
  decisionsResource,
  olderDecisionsResource,
  configResource,
  latestReportResource,
  reportPageResource,
  diffResource,
];
