import { z } from "zod";
import { preflight, renderPreflight } from "../engine/preflight.js";
import { defineTool } from "./define-tool.js";

export const preflightTool = defineTool({
  name: "preflight",
  title: "Check the Prerequisites Checklist",
  description:
    "Runs every item of the protocol's Prerequisites Checklist (git 2.38+ and a remote for reviews, AI Maestro reachable, agents online, escalation channels, " +
    "GitHub token and scopes, the agents' push access, branch permission, project board, issues exist, dependency graph valid, capabilities cover the " +
    "tasks, backups named, CI green on the base branch, no result flipping on one commit, lint command) and returns each as pass / fail / unknown with the " +
    "evidence. Changes nothing. Run it before start_session and before the user leaves.",
  kind: "probe",
  input: {},
  output: {
    ready: z.boolean(),
    summary: z.object({ pass: z.number().int(), fail: z.number().int(), unknown: z.number().int() }),
    items: z.array(
      z.object({
        id: z.string(),
        section: z.enum(["Infrastructure", "Project Setup", "Agent Roster", "Quality Gates"]),
        item: z.string(),
        status: z.enum(["pass", "fail", "unknown"]),
        evidence: z.string(),
      }),
    ),
  },
  async handle(_args, { rt }) {
    const r = await preflight(rt);
    return { data: r, text: renderPreflight(r) };
  },
});
