import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { settled } from "../protocol/kanban.js";
import type { KanbanColumn } from "../state/schema.js";
import { ScriptedAgent, type Faults } from "./agents.js";
import { commandFlags } from "./command-line.js";
import { CLI_PATH } from "../paths.js";
import { createSurroundings, SEED_AGENTS } from "./environment.js";
import { removeOnExit } from "./temp-dir.js";

/**
 * `eoa-mcp simulate`: the seed's night, from handoff to report, through the real tools of a real
 * eoa-mcp server process over stdio, against the loopback stand-ins, a real git remote and
 * scripted agents, on a fake clock (10 minutes a poll cycle). Faults are flags.
 */

export const SIMULATE_USAGE = `Usage: eoa-mcp simulate [--silent-agent] [--ci-failure] [--merge-conflict] [--security-issue] [--overlapping-prs]
                        [--agent-question] [--agent-error] [--bogus-pr] [--all-offline] [--all-faults] [--keep] [--quiet]

Rehearses the protocol's night (GH-101 User Authentication; GH-102 Password Reset and GH-103 Session
Management after it; agents dev-agent-1 and dev-agent-2) with nothing installed but Node and git.

  --silent-agent     dev-agent-2 stops answering after its first acknowledgement (goes offline, work moves to its backup)
  --ci-failure       CI fails once on GH-101's PR (re-run, then passes)
  --merge-conflict   GH-102's PR conflicts with a hotfix on main (blocked, queued for the user)
  --security-issue   dev-agent-1 finds a SQL injection while on GH-103 (urgent escalation)
  --overlapping-prs  GH-102's and GH-103's PRs write the same line of tests/conftest.py: the second to merge
                     conflicts with the first (blocked, queued for the user)
  --agent-question   dev-agent-1 asks an architecture question on GH-101 (the orchestrator answers; the task goes on)
  --agent-error      GH-102's agent reports failing tests once (the orchestrator sends fix instructions)
  --bogus-pr         GH-103's agent first reports a PR that does not exist (told once, then reports the real one)
  --all-offline      every agent drops off AI Maestro for a while: the session halts and the user is paged;
                     the user answers once they are back
  --all-faults       all of the above
  --keep             keep the temporary directory and print where it is: the state, the git remote, and
                     what the stand-ins received (records/: the hub's inboxes and calls, GitHub's calls
                     and pull requests), to check the report against
  --quiet            print only the final report`;

/** The faults a rehearsal can play, one flag each (`--all-faults` plays them all). */
export const FAULT_FLAGS = [
  "silent-agent",
  "ci-failure",
  "merge-conflict",
  "security-issue",
  "overlapping-prs",
  "agent-question",
  "agent-error",
  "bogus-pr",
  "all-offline",
] as const;

const FLAGS = {
  ...(Object.fromEntries(FAULT_FLAGS.map((f) => [f, { type: "boolean" }])) as Record<
    (typeof FAULT_FLAGS)[number],
    { type: "boolean" }
  >),
  "all-faults": { type: "boolean" },
  keep: { type: "boolean" },
  quiet: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

const MAX_CYCLES = 48;
const CYCLE_MINUTES = 10;

type ToolResult = { structuredContent?: Record<string, unknown>; isError?: boolean; content?: unknown };

export async function simulate(
  argv: string[],
  out: (line: string) => void = (l) => console.log(l),
): Promise<number> {
  const flags = commandFlags(argv, FLAGS, SIMULATE_USAGE, out);
  if ("exit" in flags) return flags.exit;
  const { values } = flags;
  const all = !!values["all-faults"];
  const faults: Faults = {
    silentAgent: all || !!values["silent-agent"],
    ciFailure: all || !!values["ci-failure"],
    mergeConflict: all || !!values["merge-conflict"],
    securityIssue: all || !!values["security-issue"],
    overlappingPrs: all || !!values["overlapping-prs"],
    agentQuestion: all || !!values["agent-question"],
    agentError: all || !!values["agent-error"],
    bogusPr: all || !!values["bogus-pr"],
    allOffline: all || !!values["all-offline"],
  };
  const quiet = !!values.quiet;
  const say = (line: string) => {
    if (!quiet) out(line);
  };

  // One poll cycle per step of the rehearsal's clock: the server's own cycles move the night.
  const sur = await createSurroundings({ config: { limits: { poll_interval_seconds: CYCLE_MINUTES * 60 } } });
  const clockFile = join(sur.root, "clock.txt");
  const tick = async (minutes: number) => {
    sur.clock.advance(minutes);
    await writeFile(clockFile, sur.clock.now().toISOString());
  };
  await tick(0);
  const time = () => sur.clock.now().toISOString().slice(11, 16);
  const event = (line: string) => say(`${time()}  ${line}`);

  let prNumber = 146;
  // --all-offline: every agent is cut off for these poll cycles (more than the missed-beat threshold):
  // alone, while tasks are in progress; with every fault, after the others have played out.
  let step = 0;
  const OUTAGE = all ? { from: 10, to: 14 } : { from: 3, to: 7 };
  const world = {
    aimaestro: sur.aimaestro,
    github: sur.github,
    repo: sur.repo,
    orchestrator: "eoa-orchestrator",
    faults,
    nextPr: () => ++prNumber,
    log: (l: string) => event(`  ! ${l}`),
    outage: () => faults.allOffline && step >= OUTAGE.from && step < OUTAGE.to,
  };
  const agents = SEED_AGENTS.map(
    (a) =>
      new ScriptedAgent(a.id, sur.aimaestro.url, world, {
        ...(faults.silentAgent && a.id === "dev-agent-2" ? { goesSilentAfterFirstAck: true } : {}),
        ...(faults.securityIssue && a.id === "dev-agent-1" ? { raisesSecurityOn: "GH-103" } : {}),
      }),
  );

  const cli = CLI_PATH;
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [cli, "--config", sur.configFile],
    env: {
      PATH: process.env.PATH ?? "",
      HOME: sur.root,
      EOA_FAKE_CLOCK_FILE: clockFile,
      EOA_LOG_LEVEL: "warning",
    },
    stderr: "pipe",
    cwd: sur.root,
  });
  const stderr: string[] = [];
  transport.stderr?.on("data", (d: Buffer) => stderr.push(d.toString()));
  const client = new Client({ name: "eoa-simulate", version: "1.0.0" });
  // Ctrl-C or a crash skips the `finally` below: the night's directory is removed all the same.
  const unwatch = values.keep
    ? undefined
    : removeOnExit(sur.root, { signalExitCode: 130, beforeRemove: () => client.close() });
  const call = async (name: string, args: Record<string, unknown> = {}): Promise<ToolResult> => {
    const r = (await client.callTool({ name, arguments: args }, undefined, {
      timeout: 120_000,
    })) as ToolResult;
    if (r.isError) {
      const e = (r.structuredContent?.error ?? {}) as { code?: string; message?: string };
      event(`  ✗ ${name}: ${e.code}: ${e.message}`);
    }
    return r;
  };

  let exit = 0;
  try {
    await client.connect(transport);
    say(
      `eoa-mcp simulate: the seed's night${
        Object.entries(faults).some(([, v]) => v)
          ? ` with faults: ${Object.entries(faults)
              .filter(([, v]) => v)
              .map(([k]) => k)
              .join(", ")}`
          : ""
      }`,
    );
    say(
      `AI Maestro stand-in ${sur.aimaestro.url} · GitHub stand-in ${sur.github.url} · git remote ${sur.repo.bare}`,
    );
    // Watched from another terminal as it runs: the rehearsal's state is a state directory like any.
    say(`State directory ${sur.stateDir} (watch it: eoa-mcp status --watch --state-dir ${sur.stateDir})`);
    say("");

    const pre = await call("preflight");
    const summary = pre.structuredContent?.summary as { pass: number; fail: number; unknown: number };
    event(`preflight: ${summary.pass} pass, ${summary.fail} fail, ${summary.unknown} unknown`);
    for (const i of (pre.structuredContent?.items ?? []) as Array<{
      item: string;
      status: string;
      evidence: string;
    }>) {
      if (i.status !== "pass") event(`  ${i.status}: ${i.item} — ${i.evidence}`);
    }

    say("");
    event('USER: "Complete features GH-101, GH-102, GH-103 autonomously"');
    const confirm = await call("start_session", { tasks: ["GH-101", "GH-102", "GH-103"] });
    const sessionId = confirm.structuredContent?.session_id as string;
    for (const line of textOf(confirm)
      .split("\n")
      .filter((l) => !l.startsWith("(Show")))
      say(`        ${line}`);
    event('USER: "Approved. Escalate only for security issues."');
    await call("start_session", {
      session_id: sessionId,
      approve: true,
      directive: "Escalate only for security issues",
    });
    event(`session ${sessionId} running`);

    for (const [task, extra] of [
      ["GH-101", { agent: "dev-agent-1", next_task_on_complete: "GH-103" }],
      ["GH-102", { agent: "dev-agent-2" }],
      ["GH-103", {}],
    ] as const) {
      const r = await call("assign_task", { task_id: task, ...extra });
      const s = r.structuredContent ?? {};
      event(
        s.status === "dispatched"
          ? `${task} → ${s.agent as string}`
          : `${task} queued: ${s.reason as string}`,
      );
    }

    // The night moves on the server's own poll cycles: this scripted orchestrator never polls; it
    // waits for each cycle, then only judges (Gate 1) and answers what is due.
    let cycles = 0;
    let seenDecisions = new Set<string>();
    for (; cycles < MAX_CYCLES; cycles++) {
      step = cycles;
      if (faults.allOffline && step === OUTAGE.from)
        event("  ! every agent drops off AI Maestro (fault: --all-offline)");
      if (faults.allOffline && step === OUTAGE.to) event("  ! the agents are back in AI Maestro");
      for (const a of agents) await a.tick();
      await tick(CYCLE_MINUTES);
      await serverCycle();
      seenDecisions = await printDecisions(seenDecisions);
      if (faults.allOffline && step >= OUTAGE.to) await answerPages();
      const digest = await call("check_messages", { peek: true });
      const sc = digest.structuredContent ?? {};
      for (const a of (sc.actions_due ?? []) as Array<{ tool: string; arguments: Record<string, unknown> }>) {
        if (a.tool === "review_pr") await review(a.arguments);
        else if (a.tool === "send_instructions") {
          // The scripted orchestrator's judgment: conservative and reversible, documented.
          const r = await call("send_instructions", {
            ...a.arguments,
            instructions:
              "Go on with the reversible choice you named; keep it behind one function so it can change.",
          });
          if (!r.isError) event(`instructions to the agent on ${a.arguments.task_id as string}`);
        } else if (a.tool === "reassign_task" || a.tool === "mark_agent_offline") {
          const r = await call(a.tool, a.arguments);
          if (!r.isError) event(`${a.tool} ${JSON.stringify(a.arguments)}`);
        } else if (a.tool === "assign_task") {
          const r = await call("assign_task", a.arguments);
          event(
            `assign ${a.arguments.task_id as string}: ${(r.structuredContent?.status as string) ?? "refused"}`,
          );
        }
      }
      const tasks = await readTasks();
      say(progressBar(time(), tasks));
      const outageAhead = faults.allOffline && step < OUTAGE.to + 2;
      if (tasks.every((t) => settled(t.status)) && !outageAhead) break;
    }

    if (cycles >= MAX_CYCLES)
      say(`${time()}  the night ends after ${MAX_CYCLES} poll cycles with work still open`);
    await tick(CYCLE_MINUTES);
    const report = await call("write_report", { session_id: sessionId });
    if (report.isError) exit = 1;
    out("");
    out((report.structuredContent?.markdown as string | undefined) ?? textOf(report));
    if (values.keep) {
      out(`State directory kept at ${sur.stateDir}`);
      out(`What the stand-ins received kept at ${await keepRecords()} (the git remote: ${sur.repo.bare})`);
    }
    return exit;
  } catch (err) {
    console.error(`simulation failed: ${(err as Error).message}`);
    if (stderr.length) console.error(stderr.join("").slice(-4000));
    return 1;
  } finally {
    await client.close().catch(() => undefined);
    for (const a of agents) await a.close();
    if (!values.keep) await sur.close();
    else await Promise.all([sur.aimaestro.close(), sur.github.close()]);
    unwatch?.();
  }

  /** The stand-ins' own records of the night, the ground truth a report is checked against. */
  async function keepRecords(): Promise<string> {
    const dir = join(sur.root, "records");
    await mkdir(dir, { recursive: true });
    const names = [
      ...SEED_AGENTS.map((a) => a.id),
      world.orchestrator,
      "user-notification-channel",
      "orchestrator-queue",
    ];
    const inboxes = Object.fromEntries(names.map((n) => [n, sur.aimaestro.messagesFor(n)]));
    await writeFile(
      join(dir, "aimaestro.json"),
      JSON.stringify({ calls: sur.aimaestro.calls, inboxes }, null, 1),
    );
    const pulls = [];
    for (let n = 147; n <= prNumber; n++) pulls.push(sur.github.pull(n));
    await writeFile(
      join(dir, "github.json"),
      JSON.stringify(
        { calls: sur.github.calls, pulls: pulls.filter(Boolean), reruns: sur.github.reruns() },
        null,
        1,
      ),
    );
    return dir;
  }

  async function review(args: Record<string, unknown>): Promise<void> {
    const first = await call("review_pr", args);
    let s = first.structuredContent ?? {};
    if (s.decision === "awaiting_assessment") {
      event(
        `review PR #${s.pr_number as number} (${s.task_id as string}): mechanical checks pass; the orchestrator reads the packet and judges Gate 1`,
      );
      const second = await call("review_pr", {
        ...args,
        spec_assessment: {
          implements_request: true,
          no_scope_creep: true,
          interface_contract_met: true,
          notes: "matches the issue",
        },
      });
      s = second.structuredContent ?? {};
    }
    if (!s.decision) return;
    const tests = s.tests as { passed: number; failed: number } | null;
    event(
      `review PR #${s.pr_number as number} (${s.task_id as string}): ${s.decision as string} — ${s.reason as string}${tests ? ` [tests ${tests.passed} passed, ${tests.failed} failed]` : ""}`,
    );
    for (const d of (s.dispatched ?? []) as string[]) event(`  dispatched ${d}`);
  }

  /** The user, back at the keyboard: answers the all-agents-offline page once the agents are back. */
  async function answerPages(): Promise<void> {
    const r = await client.readResource({ uri: "eoa://escalations" });
    const view = JSON.parse((r.contents[0] as { text: string }).text) as {
      open: Array<{ id: string; category: string }>;
    };
    for (const e of view.open.filter((x) => x.category === "infrastructure")) {
      event(`USER: "The agents are back; resume." (answers ${e.id})`);
      await call("resolve_escalation", { escalation_id: e.id, decision: "The agents are back; resume." });
    }
  }

  /** Waits until the server has run its poll cycle for the night's current time. */
  async function serverCycle(): Promise<void> {
    const now = sur.clock.now().toISOString();
    const deadline = Date.now() + 60_000;
    for (;;) {
      const r = await client.readResource({ uri: "eoa://session" });
      const view = JSON.parse((r.contents[0] as { text: string }).text) as { last_cycle_at: string | null };
      if (view.last_cycle_at && view.last_cycle_at >= now) return;
      if (Date.now() > deadline) throw new Error(`the server ran no poll cycle at ${now}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** The decisions made since the last look (the server's cycles and the orchestrator's calls). */
  async function printDecisions(seen: Set<string>): Promise<Set<string>> {
    const r = await client.readResource({ uri: "eoa://decisions" });
    const view = JSON.parse((r.contents[0] as { text: string }).text) as {
      decisions: Array<{ id: string; action: string; task_id?: string; agent?: string; outcome: string }>;
    };
    for (const d of view.decisions) {
      if (seen.has(d.id)) continue;
      // Assignments, queueing and reviews are printed from the calls that made them.
      if (!/^(start-session|assign|queue|review-due|review|merge)$/.test(d.action))
        event(
          `  ${d.action}${d.task_id ? ` ${d.task_id}` : ""}${d.agent ? ` (${d.agent})` : ""}: ${d.outcome}`,
        );
    }
    return new Set(view.decisions.map((d) => d.id));
  }

  async function readTasks(): Promise<Array<{ task_id: string; status: KanbanColumn }>> {
    const r = await client.readResource({ uri: "eoa://tasks" });
    const text = (r.contents[0] as { text: string }).text;
    return (JSON.parse(text) as { tasks: Array<{ task_id: string; status: KanbanColumn }> }).tasks;
  }
}

function textOf(r: ToolResult): string {
  const c = r.content as Array<{ type: string; text?: string }> | undefined;
  return c?.map((x) => x.text ?? "").join("\n") ?? "";
}

function progressBar(time: string, tasks: Array<{ status: string }>): string {
  const width = 24;
  const done = tasks.filter((t) => t.status === "done").length;
  const filled = Math.round((done / Math.max(1, tasks.length)) * width);
  const count = (s: string) => tasks.filter((t) => t.status === s).length;
  return `${time}  [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${done}/${tasks.length} done · ${count("in-progress")} in progress · ${count("ai-review")} in review · ${count("blocked")} blocked · ${count("human-review")} human review`;
}
