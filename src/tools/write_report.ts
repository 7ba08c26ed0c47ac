import { z } from "zod";
import { writeReport } from "../engine/report.js";
import { defineTool } from "./define-tool.js";
import { SessionId } from "./shapes.js";

export const writeReportTool = defineTool({
  name: "write_report",
  title: "Write the completion report",
  description:
    "Phase 5: writes the Autonomous Operation Report (Summary, Task Status, Issues Encountered, Recommendations, Agent " +
    "Performance, plus Waiting for You, a Mermaid dependency graph and a timeline), every figure computed from state and " +
    "GitHub, never from agents' claims. Returns the markdown and writes it to <stateDir>/reports/<session_id>.md " +
    "(also eoa://reports/latest). When every task is done, at human review or blocked, the session is marked complete.",
  kind: "action",
  input: {
    session_id: SessionId.optional(),
  },
  output: {
    session_id: z.string(),
    path: z.string(),
    markdown: z.string(),
    figures: z.object({
      tasks_total: z.number().int(),
      tasks_completed: z.number().int(),
      prs_merged: z.number().int(),
      issues_encountered: z.number().int(),
      escalations: z.number().int(),
    }),
    session_complete: z.boolean(),
    warnings: z.array(z.string()),
  },
  async handle(args, { rt }) {
    const r = await writeReport(rt, args.session_id);
    return {
      data: r,
      text: `${r.markdown}\n(Written to ${r.path}.)${r.warnings.map((w) => `\nWarning: ${w}`).join("")}`,
    };
  },
});
