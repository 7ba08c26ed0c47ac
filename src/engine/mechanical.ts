import { mkdtemp, rm, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { GitHubPull } from "../clients/github.js";
import { EoaError } from "../errors.js";
import { gate2Local } from "../protocol/gates.js";
import { scanDiffForSecrets } from "../protocol/secrets.js";
import { COVERAGE_FILES, parseTestCounts, readCoverage } from "../review/coverage.js";
import { runCommand, scrubbedEnv } from "../review/run-command.js";
import type { MechanicalResults } from "../state/schema.js";
import type { ReviewContext } from "./review.js";
import type { Runtime } from "./runtime.js";

/**
 * The mechanical half of a review, for one head SHA (cached by it): the diff's files, the
 * configured test/lint/coverage commands in an ephemeral worktree, secrets in the diff, and
 * whether it merges cleanly into its base.
 */

/** Files, worktree commands, coverage, secrets and conflicts for one head SHA. */
export async function runMechanical(
  rt: Runtime,
  pr: GitHubPull,
  ctx: ReviewContext,
): Promise<MechanicalResults> {
  const git = rt.git;
  await ctx.progress("fetching the PR head into the cached mirror");
  const sha = await git.fetchPullHead(pr.number, ctx.signal);
  if (sha !== pr.headSha) {
    throw new EoaError(
      "PR_HEAD_MOVED",
      `PR #${pr.number} moved while it was being read (GitHub says ${pr.headSha.slice(0, 12)}, git fetched ${sha.slice(0, 12)})`,
      "call review_pr again: it reviews the newest head",
    );
  }
  const [stat, diff, merge] = await Promise.all([
    git.diffStat(pr.baseRef, sha),
    git.diff(pr.baseRef, sha),
    git.mergeCheck(pr.baseRef, sha),
  ]);
  const secrets = scanDiffForSecrets(diff.text);
  const { commands, coverage, tests } = await git.withWorktree(
    pr.number,
    sha,
    async (wt) => {
      await ctx.progress(`checked out ${sha.slice(0, 12)} in an ephemeral worktree`);
      // A PR could commit a flattering report: only what the commands write now counts.
      for (const f of COVERAGE_FILES) await unlink(join(wt.path, f)).catch(() => undefined);
      const home = await mkdtemp(join(tmpdir(), "eoa-review-home-"));
      try {
        const results: MechanicalResults["commands"] = [];
        const tails: string[] = [];
        let tests: MechanicalResults["tests"];
        for (const name of ["test", "lint", "coverage"] as const) {
          const command = rt.config.review.commands[name];
          if (!command) continue;
          await ctx.progress(`running ${name}: ${command}`);
          const started = Date.now();
          const ticker = setInterval(
            () => void ctx.progress(`still running ${name} (${Math.round((Date.now() - started) / 1000)} s)`),
            10_000,
          );
          try {
            const r = await runCommand(command, {
              cwd: wt.path,
              timeoutMs: rt.config.review.command_timeout_minutes * 60_000,
              signal: ctx.signal,
              env: scrubbedEnv({ HOME: home }),
            });
            if (r.aborted)
              throw new EoaError("CANCELLED", "the review was cancelled", "call review_pr again when ready");
            results.push({
              name,
              command,
              exit_code: r.exitCode,
              timed_out: r.timedOut,
              duration_ms: r.durationMs,
            });
            tails.push(r.outputTail);
            if (name === "test") tests = parseTestCounts(r.outputTail) ?? undefined;
          } finally {
            clearInterval(ticker);
          }
        }
        const coverage = await readCoverage(wt.path);
        return { commands: results.map((r, i) => ({ ...r, tail: tails[i]! })), coverage, tests };
      } finally {
        await rm(home, { recursive: true, force: true });
      }
    },
    ctx.signal,
    true, // the checkout is kept for the next review
  );
  const hasCoverageSource = !!(rt.config.review.commands.coverage || rt.config.review.commands.test);
  const gate2 = gate2Local({
    commands: commands.map((c) => ({
      name: c.name,
      command: c.command,
      exitCode: c.exit_code,
      timedOut: c.timed_out,
      outputTail: rt.redact(c.tail),
    })),
    coverage,
    coverageThreshold: rt.config.review.coverage_threshold,
    coverageRequired: hasCoverageSource,
    secrets,
    diffTruncated: diff.truncated,
  });
  return {
    files: stat.files.map((f) => ({ path: f.path, additions: f.additions, deletions: f.deletions })),
    gate2_findings: gate2,
    commands: commands.map(({ tail: _tail, ...c }) => c),
    conflicts: merge.clean ? [] : merge.conflicts,
    ...(tests ? { tests } : {}),
    ...(coverage ? { coverage } : {}),
  };
}
