import { readFile } from "node:fs/promises";
import { defineResource, markdown } from "./define-resource.js";

export const latestReportResource = defineResource({
  name: "reports/latest",
  uri: "eoa://reports/latest",
  title: "Latest report",
  description: "The most recent Autonomous Operation Report written by write_report (markdown).",
  mimeType: "text/markdown",
  dependsOn: [],
  read: async (_rt, state) => {
    const latest = state.sessions
      .filter((s) => s.report)
      .sort((a, b) => a.report!.at.localeCompare(b.report!.at))
      .at(-1);
    if (!latest) return markdown("# No report yet\n\nCall write_report to write one.\n");
    try {
      return markdown(await readFile(latest.report!.path, "utf8"));
    } catch {
      return markdown(
        `# Report missing\n\nThe report of ${latest.id} was written to ${latest.report!.path} but can no longer be read. Call write_report again.\n`,
      );
    }
  },
});
