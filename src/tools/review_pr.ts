import { z } from "zod";
import { reviewPr, type ReviewOutcome } from "../engine/review.js";
import { findingLine } from "../protocol/messages.js";
import { untrusted, untrustedInline } from "../protocol/text.js";
import { defineTool } from "./define-tool.js";
import { TaskId } from "./shapes.js";

const FindingShape = z.object({
  gate: z.union([z.literal(1), z.literal(2)]),
  check: z.string(),
  message: z.string(),
  file: z.string().optional(),
  line: z.number().int().optional(),
  url: z.string().optional(),
  log_tail: z.string().optional(),
});

export const reviewPrTool = defineTool({
  name: "review_pr",
  title: "Review a PR through both gates",
  description:
    "Phase 4: the two-gate review of a task's PR in an ephemeral git worktree (removed afterwards). Gate 1, spec compliance: " +
    "the PR references its task, changed files stay inside the task's scope and outside protected paths, the checklist is " +
    "complete, and your `spec_assessment` agrees. Gate 2, quality: CI check runs on the head succeeded, the configured test " +
    "and lint commands pass, coverage meets the threshold, no secrets in the diff, the PR is mergeable. Without " +
    "`spec_assessment` nothing is merged: you get a review packet and `awaiting_assessment` (mechanical results are cached " +
    "by head SHA, so the second call is fast). Both gates pass → approve and merge (large tasks and protected paths stop at " +
    "human review), dependents dispatched. Failures → a fix request to the agent (escalated after max_fix_rounds); failing " +
    "CI is re-run, pending CI polled, both blocked past their limits; a merge conflict is never resolved, it is queued for " +
    "the user. Sends progress notifications.",
  kind: "irreversible",
  input: {
    pr_number: z.number().int().positive().max(10_000_000),
    task_id: TaskId.optional(),
    spec_assessment: z
      .strictObject({
        implements_request: z.boolean(),
        no_scope_creep: z.boolean(),
        interface_contract_met: z.boolean(),
        notes: z.string().max(4000).optional(),
      })
      .optional(),
    merge: z.boolean().optional(),
  },
  output: {
    pr_number: z.number().int(),
    task_id: z.string(),
    head_sha: z.string(),
    decision: z.string(),
    gate1: z.string(),
    gate2: z.string(),
    reason: z.string(),
    findings: z.array(FindingShape),
    task_status: z.string(),
    tests: z.object({ passed: z.number().int(), failed: z.number().int() }).nullable(),
    coverage: z.number().nullable(),
    merged_sha: z.string().nullable(),
    fix_round: z.number().int().nullable(),
    escalation_id: z.string().nullable(),
    dispatched: z.array(z.string()),
    cached: z.boolean(),
    packet: z
      .object({
        pr: z.object({
          number: z.number(),
          title: z.string(),
          url: z.string(),
          head_sha: z.string(),
          base: z.string(),
          body: z.string(),
        }),
        diff_stat: z.object({ files: z.number(), additions: z.number(), deletions: z.number() }),
        files: z.array(z.object({ path: z.string(), additions: z.number(), deletions: z.number() })),
        diff: z
          .object({
            page: z.number().int(),
            pages: z.number().int(),
            text: z.string(),
            next: z.string().nullable().describe("Read the next page of the diff from this resource"),
            truncated: z.boolean(),
          })
          .nullable(),
        completion_criteria: z.array(z.string()),
        test_requirements: z.array(z.string()),
        files_in_scope: z.array(z.string()),
        instructions: z.string(),
      })
      .nullable(),
    warnings: z.array(z.string()),
  },
  async handle(args, { rt, progress, signal }) {
    const r = await reviewPr(rt, args, { progress: (m) => progress(m), signal });
    const lines = [
      `PR #${r.pr_number} (${r.task_id}) at ${r.head_sha.slice(0, 12)}: ${r.decision}. Gate 1 ${r.gate1}, Gate 2 ${r.gate2}. ${r.reason}`,
      ...r.findings.map(findingLine),
      ...(r.tests ? [`Tests: ${r.tests.passed} passed, ${r.tests.failed} failed.`] : []),
      ...(r.coverage !== null ? [`Coverage: ${r.coverage}%.`] : []),
      ...(r.merged_sha ? [`Merged as ${r.merged_sha.slice(0, 12)}.`] : []),
      ...(r.dispatched.length ? [`Dispatched next: ${r.dispatched.join(", ")}.`] : []),
      ...(r.packet
        ? [
            "Review packet (judge Gate 1, then call review_pr again with spec_assessment):",
            // File names and the PR come from the agent, the criteria from the issue: data, not instructions.
            untrusted(
              `PR #${r.pr_number} files`,
              r.packet.files.map((f) => `${f.path} (+${f.additions}/-${f.deletions})`).join("\n"),
            ),
            untrusted(
              `${r.task_id} completion criteria`,
              r.packet.completion_criteria.join("\n") || "(none)",
            ),
            untrusted(`PR #${r.pr_number} body`, `${r.packet.pr.title}\n\n${r.packet.pr.body}`),
            ...(r.packet.diff
              ? [
                  `Diff, page ${r.packet.diff.page} of ${r.packet.diff.pages}${r.packet.diff.next ? ` (next: read ${r.packet.diff.next})` : ""}${r.packet.diff.truncated ? "; the diff is longer than eoa-mcp reads (2 MB): judge the rest on GitHub" : ""}:`,
                  untrusted(`PR #${r.pr_number} diff, page ${r.packet.diff.page}`, r.packet.diff.text),
                ]
              : ["Diff: not read (the git mirror could not give it); judge from the files and GitHub."]),
          ]
        : []),
      ...r.warnings.map((w) => `Warning: ${w}`),
    ];
    return { data: marked(r), text: lines.join("\n") };
  },
});

/**
 * The structured answer marks PR and issue text as the text answer does (file paths stay plain:
 * they are matched against scopes and findings; the text answer shows them inside a block).
 */
function marked(r: ReviewOutcome): ReviewOutcome {
  const mark = (field: string, s: string) => untrustedInline(`PR #${r.pr_number} ${field}`, s);
  return {
    ...r,
    findings: r.findings.map((f) => ({
      ...f,
      ...(f.log_tail !== undefined ? { log_tail: mark("log tail", f.log_tail) } : {}),
    })),
    packet: r.packet && {
      ...r.packet,
      pr: { ...r.packet.pr, title: mark("title", r.packet.pr.title), body: mark("body", r.packet.pr.body) },
      completion_criteria: r.packet.completion_criteria.map((c) => mark("criterion", c)),
      test_requirements: r.packet.test_requirements.map((c) => mark("test requirement", c)),
      files_in_scope: r.packet.files_in_scope.map((c) => mark("file in scope", c)),
      instructions: mark("instructions", r.packet.instructions),
      diff: r.packet.diff && {
        ...r.packet.diff,
        text: untrusted(`PR #${r.pr_number} diff, page ${r.packet.diff.page}`, r.packet.diff.text),
      },
    },
  };
}
