import { readFile } from "node:fs/promises";
import { linePages } from "../review/diff-pages.js";
import type { ReadonlyState } from "../state/store.js";
import { defineResource, markdown } from "./define-resource.js";

/**
 * A report grows with the night (about 420 B a task): it is read in pages of whole lines (issue 16).
 * About 64 KB each, so that write_report's answer, which carries the first page twice (as text and
 * in its structured result), stays well within a reply.
 */
export const REPORT_PAGE_BYTES = 64 * 1024;

export function reportPages(text: string): string[] {
  const pages = linePages(text, REPORT_PAGE_BYTES);
  return pages.length ? pages : [text];
}

export const reportPageUri = (sessionId: string, page: number) =>
  `eoa://reports/${encodeURIComponent(sessionId)}/page/${page}`;

export const latestReportResource = defineResource({
  name: "reports/latest",
  uri: "eoa://reports/latest",
  title: "Latest report",
  description:
    "The most recent Autonomous Operation Report written by write_report (markdown); a long one in pages of about 64 KB, each ending with the URI of the next.",
  mimeType: "text/markdown",
  dependsOn: [],
  read: async (_rt, state) => {
    const latest = state.sessions
      .filter((s) => s.report)
      .sort((a, b) => a.report!.at.localeCompare(b.report!.at))
      .at(-1);
    if (!latest) return markdown("# No report yet\n\nCall write_report to write one.\n");
    return reportPage(state, latest.id, 1);
  },
});

export const reportPageResource = defineResource({
  name: "report-page",
  uri: "eoa://reports/{session_id}/page/{page}",
  title: "A page of a session's report",
  description:
    "A page of the last report written for a session, as eoa://reports/latest and write_report name it in their last line and `next`.",
  mimeType: "text/markdown",
  dependsOn: [],
  read: async (_rt, state, params) => {
    const page = /^\d{1,9}$/.test(params.page ?? "") ? Number(params.page) : 0;
    return page >= 1 ? reportPage(state, params.session_id ?? "", page) : null;
  },
});

/** Page `page` of a session's report, with where the next one is; null when there is no such page. */
async function reportPage(state: ReadonlyState, sessionId: string, page: number) {
  const report = state.sessions.find((s) => s.id === sessionId)?.report;
  if (!report) return null;
  const text = await readFile(report.path, "utf8").catch(() => null);
  if (text === null)
    return markdown(
      `# Report missing\n\nThe report of ${sessionId} was written to ${report.path} but can no longer be read. Call write_report again.\n`,
    );
  const pages = reportPages(text);
  if (page > pages.length) return null;
  if (pages.length === 1) return markdown(text);
  const next = page < pages.length ? `next: ${reportPageUri(sessionId, page + 1)}` : "the last page";
  return markdown(
    `${pages[page - 1]}\n\n---\n(Page ${page} of ${pages.length} of the report of ${sessionId}; ${next}.)\n`,
  );
}
