import { AiMaestroClient } from "../clients/aimaestro.js";
import type { AiMaestroStandIn } from "./aimaestro-server.js";
import type { GitHubStandIn } from "./github/index.js";
import type { LocalRepo } from "./git-repo.js";

/**
 * Scripted developer agents for rehearsals: each is a real AI Maestro client speaking to the hub
 * over HTTP, acknowledging assignments, reporting progress, pushing real commits to the local git
 * remote and opening PRs on the GitHub stand-in, answering fix requests. Faults are behaviours.
 */

export interface Faults {
  silentAgent: boolean;
  ciFailure: boolean;
  mergeConflict: boolean;
  securityIssue: boolean;
  overlappingPrs: boolean;
  /** dev-agent-1 asks an architecture question on GH-101 and goes on while it waits. */
  agentQuestion: boolean;
  /** GH-102's agent reports its tests failing once, and fixes them when instructed. */
  agentError: boolean;
  /** GH-103's agent first reports a PR number that does not exist. */
  bogusPr: boolean;
  /** Every agent drops off AI Maestro for a while (the user is paged), then comes back. */
  allOffline: boolean;
}

export interface AgentWorld {
  aimaestro: AiMaestroStandIn;
  github: GitHubStandIn;
  repo: LocalRepo;
  orchestrator: string;
  faults: Faults;
  nextPr(): number;
  log(line: string): void;
  /** True while every agent is cut off (--all-offline). */
  outage(): boolean;
}

interface HeldTask {
  taskId: string;
  title: string;
  epoch: number;
  phase: "acked" | "working" | "pr-open" | "fixing" | "stopped" | "report-again";
  pr?: number;
  branch: string;
  fixRound: number;
}

const AREA: Record<string, string> = { "GH-101": "auth", "GH-102": "reset", "GH-103": "session" };
/** The two tasks that run side by side after GH-101, and whose PRs `--overlapping-prs` makes collide. */
const OVERLAPPING = ["GH-102", "GH-103"];

export class ScriptedAgent {
  private readonly client: AiMaestroClient;
  private readonly held = new Map<string, HeldTask>();
  private silent = false;
  private raisedSecurity = false;
  /** Faults played once per agent: the question asked, the error reported, the bogus PR named. */
  private readonly played = new Set<string>();

  constructor(
    readonly name: string,
    hubUrl: string,
    private readonly world: AgentWorld,
    private readonly opts: {
      goesSilentAfterFirstAck?: boolean;
      raisesSecurityOn?: string;
      /** The hub's bearer token, when the hub requires one. */
      token?: string;
      /** Added to every PR body it opens (the secrets test plants tokens there). */
      prBodyNote?: string;
    } = {},
  ) {
    this.client = new AiMaestroClient({
      url: hubUrl,
      retries: 1,
      retryBaseMs: 10,
      ...(opts.token ? { token: opts.token } : {}),
    });
  }

  get isSilent(): boolean {
    return this.silent;
  }

  async close(): Promise<void> {
    await this.client.close();
  }

  /** One step of the agent's night: presence, inbox, then a step of work on each held task. */
  async tick(): Promise<void> {
    if (this.silent || this.world.outage()) {
      this.world.aimaestro.setOnline(this.name, false);
      return;
    }
    // Its AI Maestro session runs again (after an outage): shown online, as at the start.
    this.world.aimaestro.setOnline(this.name, true);
    await this.client.heartbeat(this.name);
    for (const entry of await this.client.listUnread(this.name)) {
      const msg = await this.client.getMessage(this.name, entry.id);
      await this.client.markRead(this.name, entry.id);
      if (msg) await this.onMessage(msg.content.type, (msg.content.context ?? {}) as Record<string, unknown>);
      if (this.silent) return;
    }
    for (const task of this.held.values()) await this.work(task);
  }

  private async onMessage(type: string, ctx: Record<string, unknown>): Promise<void> {
    const taskId = typeof ctx.task_id === "string" ? ctx.task_id : undefined;
    if (!taskId) return;
    if (type === "task") {
      const handoff = ctx.handoff as { pr_number?: number | null; branch?: string | null } | undefined;
      const title = String((ctx.instructions as string | undefined)?.split("\n")[0] ?? taskId);
      this.held.set(taskId, {
        taskId,
        title,
        epoch: Number(ctx.assignment_epoch ?? 0),
        phase: handoff?.pr_number ? "fixing" : "acked",
        ...(handoff?.pr_number ? { pr: handoff.pr_number } : {}),
        branch: handoff?.branch ?? `feature/${(AREA[taskId] ?? taskId).toLowerCase()}`,
        fixRound: 0,
      });
      await this.say("ack", taskId, `[ACK] ${taskId} - RECEIVED`);
      if (this.opts.goesSilentAfterFirstAck) {
        this.silent = true;
        this.world.log(`${this.name} goes silent (fault: --silent-agent)`);
      }
    } else if (type === "reminder") {
      await this.say("ack", taskId, `[ACK] ${taskId} - RECEIVED`);
    } else if (type === "fix-request") {
      const t = this.held.get(taskId);
      if (t) t.phase = "fixing";
    } else if (type === "stop") {
      const t = this.held.get(taskId);
      if (t) t.phase = "stopped";
    } else if (type === "instructions") {
      this.world.log(`${this.name} received instructions for ${taskId}`);
    } else if (type === "pr-not-found") {
      const t = this.held.get(taskId);
      if (t?.pr) t.phase = "report-again";
    }
  }

  private async work(t: HeldTask): Promise<void> {
    const area = AREA[t.taskId] ?? t.taskId.toLowerCase();
    switch (t.phase) {
      case "acked":
        t.phase = "working";
        if (this.world.faults.agentQuestion && t.taskId === "GH-101" && this.once("question")) {
          await this.say(
            "escalation",
            t.taskId,
            `[ESCALATION] ${t.taskId} architecture: bcrypt or argon2 for password hashing?`,
            {
              category: "architecture",
              issue: "bcrypt or argon2 for password hashing?",
              current_action: "going on with bcrypt; easy to switch",
              reversible: true,
            },
          );
          this.world.log(`${this.name} asks an architecture question (fault: --agent-question)`);
          return;
        }
        await this.say("progress", t.taskId, `[PROGRESS] ${t.taskId} 50% core logic written, tests next`, {
          progress: 50,
          branch: t.branch,
        });
        return;
      case "working": {
        if (this.world.faults.agentError && t.taskId === "GH-102" && this.once("error")) {
          await this.say(
            "error",
            t.taskId,
            `[ERROR] ${t.taskId} tests fail: ImportError in src/reset/core.py`,
          );
          this.world.log(`${this.name} reports an error (fault: --agent-error)`);
          return;
        }
        if (this.opts.raisesSecurityOn === t.taskId && !this.raisedSecurity) {
          this.raisedSecurity = true;
          t.phase = "stopped";
          await this.say(
            "escalation",
            t.taskId,
            `[SECURITY] ${t.taskId} SQL injection vulnerability found in legacy session lookup`,
            { category: "security", issue: "SQL injection vulnerability in legacy session lookup" },
          );
          return;
        }
        const files: Record<string, string> = {
          [`src/${area}/__init__.py`]: `"""${t.title}"""\n`,
          [`src/${area}/core.py`]: `def ${area}_handler(request):\n    return {"ok": True}\n`,
          [`tests/${area}.test`]: "pass\n",
        };
        // Both write the same line of a shared test fixture (in both scopes): the second to merge conflicts.
        if (this.world.faults.overlappingPrs && OVERLAPPING.includes(t.taskId))
          files["tests/conftest.py"] = `FIXTURES = ["${area}"]\n`;
        const conflicting = this.world.faults.mergeConflict && t.taskId === "GH-102";
        if (conflicting) files["src/app.py"] = "def main():\n    return 2  # reset hooks\n";
        t.pr = this.world.nextPr();
        const sha = await this.world.repo.pushPullRequest(t.pr, t.branch, files);
        if (conflicting) {
          await this.world.repo.commitToMain(
            { "src/app.py": "def main():\n    return 3  # hotfix on main\n" },
            "hotfix on main",
          );
          this.world.log("someone pushes a hotfix to main touching src/app.py (fault: --merge-conflict)");
        }
        this.world.github.addPull({
          number: t.pr,
          title: `${t.taskId}: ${t.title}`,
          body: `Implements ${t.taskId}.\n\nCloses #${t.taskId.replace(/^GH-/, "")}${this.opts.prBodyNote ?? ""}`,
          headSha: sha,
          headRef: t.branch,
          author: this.name,
        });
        this.setChecks(t, sha);
        t.phase = "pr-open";
        // --bogus-pr: the first report names a PR number that does not exist.
        const named =
          this.world.faults.bogusPr && t.taskId === "GH-103" && this.once("bogus-pr") ? t.pr + 900 : t.pr;
        if (named !== t.pr)
          this.world.log(`${this.name} reports PR #${named}, which does not exist (fault: --bogus-pr)`);
        await this.say(
          "completion",
          t.taskId,
          `[DONE] ${t.taskId} ${t.title} ready for review, PR #${named}`,
          { pr_number: named, branch: t.branch },
        );
        return;
      }
      case "report-again":
        t.phase = "pr-open";
        await this.say(
          "completion",
          t.taskId,
          `[DONE] ${t.taskId} ${t.title} ready for review, PR #${t.pr}`,
          {
            pr_number: t.pr,
            branch: t.branch,
          },
        );
        return;
      case "fixing": {
        t.fixRound++;
        const sha = await this.world.repo.pushFix(t.pr!, t.branch, {
          [`tests/${area}-fix${t.fixRound}.test`]: "pass\n",
        });
        this.world.github.pushHead(t.pr!, sha);
        this.setChecks(t, sha);
        t.phase = "pr-open";
        await this.say("completion", t.taskId, `[DONE] ${t.taskId} fixes pushed, PR #${t.pr}`, {
          pr_number: t.pr,
          branch: t.branch,
        });
        return;
      }
      default:
        return;
    }
  }

  /** True the first time a fault is played by this agent. */
  private once(fault: string): boolean {
    if (this.played.has(fault)) return false;
    this.played.add(fault);
    return true;
  }

  private setChecks(t: HeldTask, sha: string): void {
    const ok = [{ name: "build", status: "completed" as const, conclusion: "success" as const }];
    if (this.world.faults.ciFailure && t.taskId === "GH-101" && t.fixRound === 0) {
      this.world.github.scriptChecks(sha, [
        [
          {
            name: "build",
            status: "completed",
            conclusion: "failure",
            output: { summary: "test_login timed out" },
          },
        ],
        ok,
      ]);
      this.world.log(`CI fails on PR #${t.pr} (fault: --ci-failure); a re-run will pass`);
    } else {
      this.world.github.setCheckRuns(sha, ok);
    }
  }

  private async say(
    type: string,
    taskId: string,
    message: string,
    extra: Record<string, unknown> = {},
  ): Promise<void> {
    const t = this.held.get(taskId);
    await this.client.send({
      from: this.name,
      to: this.world.orchestrator,
      subject: message.slice(0, 80),
      priority: type === "escalation" ? "urgent" : "normal",
      content: {
        type,
        message,
        context: { type, task_id: taskId, assignment_epoch: t?.epoch ?? 0, ...extra },
      },
    });
  }
}
