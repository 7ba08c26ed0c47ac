import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FAULT_FLAGS } from "../src/sim/simulate.js";
import { readStateDir } from "../src/state/store.js";
import type { State, TaskRecord } from "../src/state/schema.js";
import { assertBuilt, CLI, runProcess } from "./fixtures/cli.js";
import { blocks, byTask, sections } from "./fixtures/report-markdown.js";

/**
 * Issue 13, item 2: the report check. For every fault combination `simulate` offers, the rehearsal
 * runs with `--keep`, and each figure and statement of its report is recomputed from ground truth:
 * what the stand-ins received (the hub's inboxes, GitHub's calls and pull requests), the git remote
 * itself, and the state. A statement whose fact is false (a page that never reached the user
 * channel, a re-run that was never made, a branch git does not have) fails the check.
 */

const COMBINATIONS: string[][] = [[], ...FAULT_FLAGS.map((f) => [`--${f}`]), ["--all-faults"]];
const SLOW = 120_000;

interface HubMessage {
  from: string;
  to: string;
  timestamp: string;
  subject: string;
  status: string;
  content: { type: string; message: string; context?: Record<string, unknown> };
}
interface Records {
  hub: { inboxes: Record<string, HubMessage[]> };
  github: {
    calls: Array<{ method: string; path: string; status: number }>;
    pulls: Array<{ number: number; headSha: string; merged: boolean }>;
    reruns: Array<{ sha: string }>;
  };
  state: State;
  remote: string;
}

let scratch: string;
beforeAll(async () => {
  assertBuilt();
  scratch = await mkdtemp(join(tmpdir(), "eoa-report-check-"));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

async function rehearse(flags: string[]): Promise<{ md: string; records: Records }> {
  const tmp = await mkdtemp(join(scratch, "run-"));
  const r = await runProcess(process.execPath, [CLI, "simulate", "--keep", "--quiet", ...flags], {
    cwd: tmp,
    env: { PATH: process.env.PATH ?? "", HOME: tmp, TMPDIR: tmp },
  });
  expect(r.code, r.stderr).toBe(0);
  const stateDir = /State directory kept at (.+)$/m.exec(r.stdout)![1]!;
  const root = dirname(stateDir);
  const md = r.stdout.slice(0, r.stdout.indexOf("State directory kept at"));
  const json = async (f: string) => JSON.parse(await readFile(join(root, "records", f), "utf8"));
  return {
    md,
    records: {
      hub: await json("aimaestro.json"),
      github: await json("github.json"),
      state: await readStateDir(stateDir),
      remote: /the git remote: (.+)\)$/m.exec(r.stdout)![1]!,
    },
  };
}

const git = (dir: string, ...args: string[]) =>
  execFileSync("git", ["-C", dir, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

/** What git itself says a PR head changed since it forked from main: "N files modified, A lines added, D removed". */
function gitScope(remote: string, head: string): string {
  const rows = git(remote, "diff", "--numstat", "--no-renames", `main...${head}`)
    .split("\n")
    .filter(Boolean)
    .map((l) => l.split("\t"));
  const sum = (k: number) => rows.reduce((n, r) => n + Number(r[k]), 0);
  return `${rows.length} file${rows.length === 1 ? "" : "s"} modified, ${sum(0)} lines added, ${sum(1)} removed`;
}

const short = (iso: string) => iso.replace("T", " ").slice(0, 16);

function checkReport(md: string, rec: Records): void {
  const { state, github, hub, remote } = rec;
  const session = state.sessions.find((s) => s.id === state.current_session_id)!;
  const tasks = session.task_ids.map((id) => state.tasks[id]!);
  const inbox = (name: string) => hub.inboxes[name] ?? [];
  const merged = new Set(
    github.calls
      .filter((c) => c.method === "PUT" && /\/pulls\/\d+\/merge$/.test(c.path) && c.status === 200)
      .map((c) => Number(/\/pulls\/(\d+)\/merge$/.exec(c.path)![1])),
  );
  const isMerged = (t: TaskRecord) => t.pr_number !== undefined && merged.has(t.pr_number);
  const parts = sections(md);
  const summary = parts.get("Summary")!;

  // Summary: every total recomputed from GitHub's merges, the hub's escalation messages, the incidents.
  expect(summary).toContain(`- Tasks Completed: ${tasks.filter(isMerged).length}/${tasks.length}`);
  expect(summary).toContain(`- PRs Merged: ${merged.size}`);
  const paged = [...inbox("user-notification-channel"), ...inbox("orchestrator-queue")];
  const escalationIds = new Set(paged.map((m) => m.content.context?.escalation_id as string));
  expect(summary).toContain(`- Escalations: ${escalationIds.size}`);
  expect(new Set(state.escalations.map((e) => e.id))).toEqual(escalationIds);
  const issues = blocks(parts.get("Issues Encountered")!);
  expect(summary).toContain(`- Issues Encountered: ${issues.length}`);
  expect(issues.length).toBe(state.incidents.length);
  const unread = inbox(state.sessions[0] ? "eoa-orchestrator" : "").filter((m) => m.status === "unread");
  expect(summary).toContain(`- Messages unread in the orchestrator's inbox now: ${unread.length}`);

  // Task Status: status, PR, scope and branch from GitHub and git; claims from the agents' messages.
  const rows = byTask(parts.get("Task Status")!);
  for (const t of tasks) {
    const row = rows[t.task_id]!;
    expect(row.Status === "COMPLETE", t.task_id).toBe(isMerged(t));
    if (t.pr_number !== undefined) {
      expect(row.PR, t.task_id).toBe(`#${t.pr_number} (${merged.has(t.pr_number) ? "merged" : "open"})`);
      const reviewed = Object.values(state.reviews)
        .filter((r) => r.pr_number === t.pr_number)
        .sort((a, b) => a.at.localeCompare(b.at))
        .at(-1);
      if (reviewed) expect(row.Scope, t.task_id).toBe(gitScope(remote, reviewed.head_sha));
      else expect(row.Scope, t.task_id).toMatch(/^unknown \(|^\d+ files? modified/);
    } else {
      expect(row.PR, t.task_id).toBeUndefined();
    }
    if (row.Branch) {
      const name = /">(.+?)<\/untrusted>/.exec(row.Branch)![1]!;
      const there = git(remote, "branch", "--list", name).trim() !== "";
      expect(row.Branch, t.task_id).toMatch(
        there ? /\(exists on the remote\)$/ : /\(not found on the remote\)$/,
      );
    }
    const claim = /^(\S+) said (\d+)% at (\S+ \S+)/.exec(row["Agent's claim"] ?? "");
    if (claim) {
      const [, agent, percent, at] = claim;
      const said = inbox("eoa-orchestrator").filter(
        (m) =>
          m.from === agent &&
          m.content.context?.task_id === t.task_id &&
          m.subject.includes(`${percent}%`) &&
          short(m.timestamp) <= at!,
      );
      expect(said.length, `${t.task_id}: ${row["Agent's claim"]}`).toBeGreaterThan(0);
    }
  }

  // Issues Encountered: what each resolution and action says happened, happened.
  for (const { heading, fields } of issues) {
    const what = `${heading}: ${JSON.stringify(fields)}`;
    expect(fields.Task, what).not.toBe("-");
    const resolution = fields.Resolution!;
    const action = fields["Action Taken"]!;
    if (/re-run (passed|failed)/.test(resolution)) {
      const sha = /at ([0-9a-f]{12})/.exec(fields.Occurrence!)![1]!;
      expect(
        github.reruns.some((r) => r.sha.startsWith(sha)),
        what,
      ).toBe(true);
    }
    // Paged at the time the server saw the hub's answer, on the simulated clock (which runs fast,
    // and which the hub and the server each read): the hub's stamp is that minute or one beside it.
    const minutes = (hhmm: string) => Date.parse(`${hhmm.replace(" ", "T")}:00Z`) / 60_000;
    for (const [, id, hhmm] of action.matchAll(/(esc-\d+): user paged at (\S+ \S+)/g)) {
      expect(
        inbox("user-notification-channel").some(
          (m) =>
            m.content.context?.escalation_id === id &&
            Math.abs(minutes(short(m.timestamp)) - minutes(hhmm!)) <= 1,
        ),
        what,
      ).toBe(true);
    }
    for (const [, id] of action.matchAll(/(esc-\d+): queued for the user \(orchestrator-queue\)/g))
      expect(
        inbox("orchestrator-queue").some((m) => m.content.context?.escalation_id === id),
        what,
      ).toBe(true);
    for (const [, id] of action.matchAll(/(esc-\d+): page pending/g))
      expect(
        paged.some((m) => m.content.context?.escalation_id === id),
        what,
      ).toBe(false);
    for (const [, task, to] of action.matchAll(/(GH-\d+) reassigned to (\S+)/g))
      expect(
        inbox(to!).some((m) => m.content.context?.task_id === task),
        what,
      ).toBe(true);
    for (const [, to] of action.matchAll(/fix instructions sent to ([\w-]+)/g))
      expect(
        inbox(to!).some((m) => m.content.type === "instructions"),
        what,
      ).toBe(true);
    if (/answered by the user/.test(resolution)) {
      const id = /(esc-\d+)/.exec(action)![1];
      expect(state.escalations.find((e) => e.id === id)?.resolution, what).toBeDefined();
    }
  }

  // Agent Performance: finished work from GitHub's merges; issues resolved only by a later commit
  // of the agent's own that passed both gates.
  const table = parts.get("Agent Performance")!;
  for (const agent of Object.keys(state.agents)) {
    const done = tasks.filter((t) => t.assignee === agent && isMerged(t));
    const resolved = state.incidents.filter((i) => i.resolved_by === agent);
    for (const i of resolved) {
      const later = Object.values(state.reviews).some(
        (r) =>
          r.task_id === i.task_id &&
          r.at >= i.at &&
          r.head_sha !== i.head_sha &&
          ["merge", "approve", "human_review"].includes(r.decision),
      );
      expect(later, `${agent} resolved ${i.id}`).toBe(true);
    }
    expect(table).toContain(`| ${agent} | ${done.length} | ${done.length} | ${resolved.length} |`);
  }

  // Timeline: every re-run GitHub received and every merge is there; every queue line names its agent or why none.
  const timeline = parts
    .get("Timeline")!
    .split("\n")
    .filter((l) => l.startsWith("- "));
  expect(timeline.filter((l) => / ci-rerun /.test(l)).length).toBe(github.reruns.length);
  expect(timeline.filter((l) => / merge GH-/.test(l)).length).toBe(merged.size);
  for (const l of timeline.filter((x) => / queue GH-/.test(x)))
    expect(l).toMatch(/queued for \S+:|queued, no agent chosen:|queued, taken from \S+/);

  // Sentences the old report said without their fact.
  expect(md).not.toMatch(/failed jobs re-run|its tasks were reassigned to backup agents|\*\*Task\*\*: -$/m);
}

describe("the report check: every figure recomputed from ground truth, for every fault combination", () => {
  for (const flags of COMBINATIONS) {
    it.concurrent(
      `simulate ${flags.join(" ") || "(no fault)"}`,
      async () => {
        const { md, records } = await rehearse(flags);
        checkReport(md, records);
      },
      SLOW,
    );
  }
});
