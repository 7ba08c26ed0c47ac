import { z } from "zod";
import { writeReport } from "../engine/report.js";
import { reportPages, reportPageUri } from "../resources/reports.js";
import { defineTool } from "./define-tool.js";
import { SessionId } from "./shapes.js";

export const writeReportTool = defineTool({
  name: "write_report",
  title: "Write the completion report",
  description:
    "Phase 5: writes the Autonomous Operation Report (Summary, Task Status, Issues Encountered, Recommendations, Agent " +
    "Performance, plus Waiting for You, a Mermaid dependency graph and a timeline), every figure computed from state and " +
    "GitHub, never from agents' claims. Returns the markdown (a long report's first page of about 64 KB: `next` is the " +
    "URI of the following one) and writes it whole to <stateDir>/reports/<session_id>.md (also eoa://reports/latest). " +
    "When every task is done, at human review or blocked, the session is marked complete.",
  kind: "action",
  input: {
    session_id: SessionId.optional(),
  },
  output: {
    session_id: z.string(),
    path: z.string(),
    markdown: z.string(),
    pages: z.number().int(),
    next: z.string().nullable(),
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
    // The file holds it whole; the answer a page, whatever the night's size (issue 16).
    const pages = reportPages(r.markdown);
    const next = pages.length > 1 ? reportPageUri(r.session_id, 2) : null;
    const more = next ? ` Page 1 of ${pages.length}: read ${next} for the next.` : "";
    return {
      data: { ...r, markdown: pages[0]!, pages: pages.length, next },
      text: `${pages[0]}\n(Written to ${r.path}.${more})${r.warnings.map((w) => `\nWarning: ${w}`).join("")}`,
    };
  },
});
