import { execFileSync, spawn } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, CLI, runProcess } from "./fixtures/cli.js";
import { byTask, sections } from "./fixtures/report-markdown.js";
import { FAULT_FLAGS } from "../src/sim/simulate.js";

/**
 * Issue 5, part 3: `eoa-mcp simulate`, the built CLI end to end (a real stdio server process, the
 * loopback stand-ins, a real git remote, scripted agents). `npm test` builds first; run
 * `npm run build` before running this file alone. Each run gets its own TMPDIR, so the test can
 * see that the night's temporary directory is removed afterwards.
 */

const SLOW = 60_000;

let scratch: string;
beforeAll(async () => {
  assertBuilt();
  scratch = await mkdtemp(join(tmpdir(), "eoa-simulate-test-"));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

async function simulate(args: string[]) {
  const tmp = await mkdtemp(join(scratch, "run-"));
  const finished = await runProcess(process.execPath, [CLI, "simulate", ...args], {
    cwd: tmp,
    env: { PATH: process.env.PATH ?? "", HOME: tmp, TMPDIR: tmp },
  });
  return { ...finished, tmp };
}

describe("eoa-mcp simulate", () => {
  it.concurrent(
    "runs the seed's night to a report: 3/3 tasks, 3 PRs merged, nothing left behind",
    async () => {
      const r = await simulate(["--quiet"]);
      expect(r.code, r.stderr).toBe(0);
      const md = r.stdout;
      expect(md.trimStart().startsWith("# Autonomous Operation Report")).toBe(true);
      // --quiet: the report only, no progress lines.
      expect(md).not.toMatch(/preflight:|USER:|\[#*-*\] \d\/\d done/);
      expect(md).toContain("- Tasks Completed: 3/3");
      expect(md).toContain("- PRs Merged: 3");
      expect(md).toContain("- Escalations: 0");
      // The server's own cycles moved the night, one every interval, with no gap.
      expect(md).toMatch(/- Last poll cycle: 2025-12-30 \d\d:\d0 \(every 600 s\)/);
      expect(md).not.toContain("No poll between");
      expect(md).toContain("- Messages unread in the orchestrator's inbox now: 0");
      const tasks = byTask(sections(md).get("Task Status")!);
      expect(Object.keys(tasks)).toEqual(["GH-101", "GH-102", "GH-103"]);
      for (const [id, t] of Object.entries(tasks)) {
        expect(t.Status, id).toBe("COMPLETE");
        expect(t.PR, id).toMatch(/^#\d+ \(merged\)$/);
        expect(t.Scope, id).toMatch(/^\d+ files? modified, \d+ lines added/);
        expect(t.Tests, id).toMatch(/^\d+ passed, 0 failed$/);
      }
      expect(md).toMatch(/```mermaid\ngraph TD/);
      expect(await readdir(r.tmp)).toEqual([]);
    },
    SLOW,
  );

  it.concurrent(
    "with --all-faults: CI re-run, agent offline and its task moved, conflict queued, security paged",
    async () => {
      const r = await simulate(["--all-faults", "--quiet"]);
      expect(r.code, r.stderr).toBe(0);
      const md = r.stdout;
      const s = sections(md);
      const tasks = byTask(s.get("Task Status")!);
      const issues = s.get("Issues Encountered")!;
      const waiting = s.get("Waiting for You")!;
      const timeline = s.get("Timeline")!;

      // CI failed once on GH-101's PR, was re-run, and GH-101 merged.
      expect(issues).toMatch(/### Issue \d+: Ci failure\n- \*\*Task\*\*: GH-101\n/);
      expect(issues).toMatch(/\*\*Resolution\*\*: re-run passed/);
      expect(tasks["GH-101"]).toMatchObject({ Status: "COMPLETE", Agent: "dev-agent-1" });
      expect(tasks["GH-101"]!.PR).toMatch(/\(merged\)$/);

      // dev-agent-2 went silent, was marked offline, and GH-102 moved to its backup dev-agent-1.
      expect(issues).toMatch(/Agent offline[\s\S]*dev-agent-2 went offline/);
      expect(timeline).toMatch(/mark-offline \(dev-agent-2\)/);
      expect(timeline).toMatch(/reassign GH-102 \(dev-agent-1\)/);
      expect(tasks["GH-102"]!.Agent).toBe("dev-agent-1");

      // GH-102's PR conflicts with main: blocked, deferred escalation queued for the user.
      expect(tasks["GH-102"]!.Status).toBe("BLOCKED");
      expect(tasks["GH-102"]!.Blocker).toMatch(/conflicts with main/);
      expect(tasks["GH-102"]!.PR).toMatch(/\(open\)$/);
      expect(waiting).toMatch(/\*\*esc-\d+\*\* \(deferred blocker, GH-102\): .*conflicts/);
      expect(issues).toMatch(/Merge conflict\n- \*\*Task\*\*: GH-102/);

      // The SQL injection on GH-103 pages the user at once, even under "Escalate only for security issues".
      expect(md).toContain("**Directive**: Escalate only for security issues");
      expect(waiting).toMatch(
        /\*\*esc-\d+\*\* \(immediate security, GH-103\): <untrusted source="[^"]*">SQL injection/,
      );
      expect(tasks["GH-103"]!.Status).toBe("BLOCKED");

      // The summary agrees with the sections.
      const done = Object.values(tasks).filter((t) => t.Status === "COMPLETE").length;
      const merged = Object.values(tasks).filter((t) => /\(merged\)$/.test(t.PR ?? "")).length;
      const issueCount = (issues.match(/^### Issue /gm) ?? []).length;
      const escalations = (waiting.match(/^- \*\*esc-\d+\*\*/gm) ?? []).length;
      expect(md).toContain(`- Tasks Completed: ${done}/3`);
      expect(md).toContain(`- PRs Merged: ${merged}`);
      expect(md).toContain(`- Issues Encountered: ${issueCount}`);
      // Besides the open ones, the all-agents-offline page, answered by the user (in the timeline).
      expect(timeline).toMatch(
        /escalate: esc-\d+ immediate to user-notification-channel[\s\S]*resume: session/,
      );
      expect(md).toContain(`- Escalations: ${escalations + 1}`);
      // The conflict, the SQL injection, and dev-agent-1's architecture question (answered by the
      // orchestrator, deferred for the user).
      expect(waiting).toMatch(/\*\*esc-\d+\*\* \(deferred architecture, GH-101\)/);
      expect([done, merged, escalations]).toEqual([1, 1, 3]);
      expect(await readdir(r.tmp)).toEqual([]);
    },
    SLOW,
  );

  it.concurrent(
    "merges in git: main holds the merges, their SHAs are objects; --overlapping-prs blocks the second PR as a conflict",
    async () => {
      const r = await simulate(["--overlapping-prs", "--quiet", "--keep"]);
      expect(r.code, r.stderr).toBe(0);
      const md = r.stdout;
      const stateDir = /State directory kept at (.+)$/m.exec(md)![1]!;
      const bare = join(dirname(stateDir), "git", "remote.git");
      const git = (...args: string[]) => execFileSync("git", args, { cwd: bare, encoding: "utf8" }).trim();

      // Each merge in the report's timeline is a commit on the remote's main.
      const mergedAs = [
        ...sections(md)
          .get("Timeline")!
          .matchAll(/merge (GH-\d+) .*: merged as ([0-9a-f]+)/g),
      ];
      expect(mergedAs.map((m) => m[1])).toEqual(["GH-101", "GH-102"]);
      const onMain = git("rev-list", "main").split("\n");
      for (const [, task, sha] of mergedAs) {
        expect(git("cat-file", "-t", sha!), task).toBe("commit");
        expect(
          onMain.some((c) => c.startsWith(sha!)),
          task,
        ).toBe(true);
      }
      expect(git("log", "--format=%s", "main")).toMatch(
        /GH-102: Password Reset[\s\S]*GH-101: User Authentication/,
      );

      // GH-103 wrote the line GH-102 had merged: a real conflict, blocked and queued for the user.
      const tasks = byTask(sections(md).get("Task Status")!);
      expect(tasks["GH-103"]).toMatchObject({ Status: "BLOCKED" });
      expect(tasks["GH-103"]!.Blocker).toMatch(/conflicts with main \(tests\/conftest\.py\)/);
      expect(sections(md).get("Waiting for You")).toMatch(/\(deferred blocker, GH-103\): .*conflicts/);
      expect(md).toContain("- PRs Merged: 2");
      expect(git("show", "main:tests/conftest.py")).toBe('FIXTURES = ["reset"]');
    },
    SLOW,
  );

  it.concurrent(
    "every branch of the loop has a move: a question answered, an error instructed, a bogus PR told, and all three tasks merge",
    async () => {
      const r = await simulate(["--agent-question", "--agent-error", "--bogus-pr", "--quiet"]);
      expect(r.code, r.stderr).toBe(0);
      const md = r.stdout;
      expect(md).toContain("- Tasks Completed: 3/3");
      expect(md).toContain("- Escalations: 1"); // the question, deferred for the user
      const timeline = sections(md).get("Timeline")!;
      expect(timeline).toMatch(/escalate GH-101: esc-001 deferred/);
      expect(timeline).toMatch(/instruct GH-101 \(dev-agent-1\): instructions sent to dev-agent-1/);
      expect(timeline).toMatch(/error-report GH-102 \(dev-agent-2\): send_instructions due/);
      expect(timeline).toMatch(/instruct GH-102 \(dev-agent-2\)/);
      expect(timeline).toMatch(
        /pr-not-found GH-103 \(dev-agent-1\): dev-agent-1 told PR #\d+ does not exist/,
      );
      expect(sections(md).get("Issues Encountered")).toMatch(
        /Agent error[\s\S]*\*\*Resolution\*\*: dev-agent-2's commit [0-9a-f]{12} passed both gates[^\n]*\n- \*\*Action Taken\*\*: fix instructions sent to dev-agent-2/,
      );
    },
    SLOW,
  );

  it.concurrent(
    "--all-offline: the session halts and the user is paged; it resumes only on the user's answer, and the night finishes",
    async () => {
      const r = await simulate(["--all-offline"]);
      expect(r.code, r.stderr).toBe(0);
      const out = r.stdout;
      const halt = out.indexOf("halt: session");
      const back = out.indexOf("agent-back (dev-agent-1)");
      const answer = out.indexOf('USER: "The agents are back; resume."');
      const resume = out.indexOf("resume: session");
      expect(out).toMatch(/escalate: esc-001 immediate to user-notification-channel/);
      expect(halt).toBeGreaterThan(0);
      // Agents back do not resume it; the user's answer does.
      expect(back).toBeGreaterThan(halt);
      expect(answer).toBeGreaterThan(back);
      expect(resume).toBeGreaterThan(answer);
      expect(out).toContain("- Tasks Completed: 3/3");
      expect(
        sections(out.slice(out.indexOf("# Autonomous Operation Report"))).get("Issues Encountered"),
      ).toMatch(/Agent offline[\s\S]*\*\*Resolution\*\*: dev-agent-\d back at \d\d:\d\d/);
    },
    SLOW,
  );

  it.concurrent("refuses an unknown flag with the usage on stderr and a non-zero exit", async () => {
    const r = await simulate(["--bogus"]);
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    expect(r.stderr).toContain("--bogus");
    expect(r.stderr).toContain("Usage: eoa-mcp simulate");
    expect(r.stdout).toBe("");
  });

  it.concurrent(
    "names its state directory as it starts, and eoa-mcp status shows the night there from another process while it runs",
    async () => {
      const tmp = await mkdtemp(join(scratch, "watched-"));
      const env = { PATH: process.env.PATH ?? "", HOME: tmp, TMPDIR: tmp };
      const child = spawn(process.execPath, [CLI, "simulate", "--keep"], { cwd: tmp, env });
      let out = "";
      const named = new Promise<string>((resolve) =>
        child.stdout.on("data", (c: Buffer) => {
          out += c.toString();
          const m = /^State directory (\S+) \(watch it: eoa-mcp status --watch --state-dir \S+\)$/m.exec(out);
          if (m) resolve(m[1]!);
        }),
      );
      const exited = new Promise((resolve) => child.once("exit", resolve));
      try {
        const stateDir = await named;
        // While the rehearsal runs: the session, once it exists, as the status command shows it.
        let shown = "";
        while (!/Session \S+: (running|complete)/.test(shown)) {
          const r = await runProcess(process.execPath, [CLI, "status", "--state-dir", stateDir], {
            cwd: tmp,
            env,
          });
          shown = r.stdout;
          if (r.code !== 0) expect(r.stderr).toContain("SESSION_NOT_FOUND"); // not started yet
        }
        expect(shown).toMatch(/GH-101/);
        await exited;
        expect(out).toContain("## Summary");
      } finally {
        child.kill("SIGKILL");
      }
    },
    SLOW,
  );

  it.concurrent("prints the usage on --help", async () => {
    const r = await simulate(["--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Usage: eoa-mcp simulate");
    for (const flag of [...FAULT_FLAGS, "all-faults"]) expect(r.stdout).toContain(`--${flag}`);
  });
});
