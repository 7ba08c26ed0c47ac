import type { AiMaestroClient } from "../clients/aimaestro.js";
import { GIT_MIN_VERSION, gitVersion, gitVersionSupported, stripCredentials } from "../clients/git.js";
import type { GitHubBranchRun, GitHubClient } from "../clients/github.js";
import { gitRemoteOf, type Config } from "../config.js";
import { errorMessage, isEoaError } from "../errors.js";
import { missingCapabilities } from "../protocol/assignment.js";
import { findCycle } from "../protocol/dependencies.js";
import type { ReadonlyState } from "../state/store.js";
import { rosterRoutingCheck } from "./roster-routing.js";
import type { Runtime } from "./runtime.js";

/**
 * The seed's Prerequisites Checklist, item by item, checked for real where the server can: every
 * item is `pass`, `fail` or `unknown`, with the evidence that decided it. Checks run in parallel
 * and a failing part (hub down, GitHub unreachable) makes its own items fail, not the whole list.
 */

export type CheckStatus = "pass" | "fail" | "unknown";

export interface ChecklistItem {
  id: string;
  section: "Infrastructure" | "Project Setup" | "Agent Roster" | "Quality Gates";
  item: string;
  status: CheckStatus;
  evidence: string;
}

export interface PreflightResult {
  ready: boolean;
  summary: { pass: number; fail: number; unknown: number };
  items: ChecklistItem[];
}

type Check = Omit<ChecklistItem, "status" | "evidence"> & { run: () => Promise<[CheckStatus, string]> };

/**
 * What the checklist reads: the config, the clients, and the state so far. Nothing is written, so
 * `eoa-mcp preflight` can run before a state directory exists without creating one.
 */
export interface PreflightContext {
  config: Config;
  aimaestro: AiMaestroClient;
  /** Absent when no repository is configured. */
  github: GitHubClient | undefined;
  /** The night so far (an empty state before the first session). */
  state: ReadonlyState;
  redact(text: string): string;
}

/** How an agent shows online in AI Maestro, for the evidence of an offline one. */
export const ONLINE_HINT =
  "an agent shows online while it runs an AI Maestro session, or for 120 s after each POST /api/agents/<name>/heartbeat";

/** The checklist over a running server's runtime. */
export async function preflight(rt: Runtime): Promise<PreflightResult> {
  return runPreflight({
    config: rt.config,
    aimaestro: rt.aimaestro,
    github: rt.hasGithub ? rt.github : undefined,
    state: await rt.store.read(),
    redact: (t) => rt.redact(t),
  });
}

export async function runPreflight(rt: PreflightContext): Promise<PreflightResult> {
  const { state, github: gh } = rt;
  // The configured roster is the truth for who the agents are (the state may not exist yet).
  const agents = rt.config.agents.map((a) => ({
    id: a.id,
    session: (a.session ?? a.id).toLowerCase(),
    capabilities: a.capabilities,
    backup: a.backup ?? [],
    github: a.github,
  }));
  const session = state.sessions.find((s) => s.id === state.current_session_id);
  const tasks = session ? session.task_ids.map((id) => state.tasks[id]!).filter(Boolean) : [];
  const noRepo = (): [CheckStatus, string] => [
    "fail",
    "no GitHub repository configured (EOA_REPO, GITHUB_TOKEN)",
  ];
  // Shared look-ups, asked once.
  const presence = once(() => rt.aimaestro.listAgents());
  const repo = once(() => gh!.getRepo());
  const baseRuns = once(async () => gh!.listBranchWorkflowRuns((await repo()).defaultBranch));

  const checks: Check[] = [
    {
      id: "aimaestro_running",
      section: "Infrastructure",
      item: `AI Maestro server running (${rt.aimaestro.url})`,
      run: async () => {
        const h = await rt.aimaestro.health();
        return [
          h.status === "healthy" ? "pass" : "fail",
          `GET /api/v1/health → ${h.status}${h.version ? ` (version ${h.version})` : ""}`,
        ];
      },
    },
    {
      id: "review_git",
      section: "Infrastructure",
      item: `git ${GIT_MIN_VERSION.join(".")} or later and a remote for the reviews`,
      run: async () => {
        const version = await gitVersion();
        if (!gitVersionSupported(version))
          return ["fail", `git ${version}: the merge check needs git merge-tree --write-tree`];
        const remote = gitRemoteOf(rt.config);
        return remote
          ? ["pass", `git ${version}; PRs are fetched from ${stripCredentials(remote)}`]
          : [
              "fail",
              `git ${version}, but no remote to review from (git.remote / EOA_GIT_REMOTE, or EOA_REPO)`,
            ];
      },
    },
    {
      id: "orchestrator_registered",
      section: "Infrastructure",
      item: `orchestrator registered in AI Maestro as ${rt.config.orchestrator}`,
      run: async () => {
        const r = await rt.aimaestro.resolveExactly(rt.config.orchestrator);
        return r
          ? ["pass", `resolves to ${r.agentId}`]
          : ["unknown", "not registered yet: the server registers it before its first message"];
      },
    },
    {
      id: "agents_online",
      section: "Infrastructure",
      item: "All remote agents online and responsive",
      run: async () => {
        if (!agents.length) return ["fail", "the roster is empty"];
        const listed = await presence();
        const online = new Set(listed.filter((a) => a.online).map((a) => a.name.toLowerCase()));
        const registered = new Set(listed.map((a) => a.name.toLowerCase()));
        const off = agents.filter((a) => registered.has(a.session) && !online.has(a.session));
        // An agent AI Maestro does not know is reported once, by the roster item below.
        const unknown = agents.filter((a) => !registered.has(a.session));
        if (!off.length && !unknown.length)
          return ["pass", `${agents.length} agent(s) online: ${agents.map((a) => a.id).join(", ")}`];
        return [
          "fail",
          [
            off.length ? `offline in AI Maestro: ${off.map((a) => a.id).join(", ")} (${ONLINE_HINT})` : "",
            unknown.length
              ? `${unknown.map((a) => a.id).join(", ")} cannot be online before they are registered (see "AGENT_ROSTER.md up to date")`
              : "",
          ]
            .filter(Boolean)
            .join("; "),
        ];
      },
    },
    {
      id: "escalation_channels",
      section: "Infrastructure",
      item: "Escalation channels resolve in AI Maestro",
      run: async () => {
        const names = [rt.config.escalation.user_channel, rt.config.escalation.review_queue];
        const missing: string[] = [];
        for (const n of names) if (!(await rt.aimaestro.resolveExactly(n))) missing.push(n);
        return missing.length
          ? ["fail", `not registered (escalations to them would fail): ${missing.join(", ")}`]
          : ["pass", `${names.join(", ")} resolve`];
      },
    },
    {
      id: "github_token",
      section: "Infrastructure",
      item: "GitHub access configured (token and scopes)",
      run: async () => {
        if (!gh) return noRepo();
        const auth = await gh.getAuth();
        if (auth.scopes === null)
          return ["pass", `authenticated as ${auth.login}; fine-grained token (scopes not reported)`];
        const hasRepo = auth.scopes.includes("repo") || auth.scopes.includes("public_repo");
        return [
          hasRepo ? "pass" : "fail",
          `authenticated as ${auth.login}; scopes: ${auth.scopes.join(", ") || "(none)"}${hasRepo ? "" : "; needs repo"}${rt.config.github.project && !auth.scopes.includes("project") ? "; Projects v2 needs project" : ""}`,
        ];
      },
    },
    {
      id: "agents_github_access",
      section: "Infrastructure",
      item: "GitHub access configured for all agents",
      run: async () => {
        if (!agents.length) return ["fail", "the roster is empty"];
        const named = agents.filter((a) => a.github);
        if (!named.length)
          return [
            "unknown",
            "no agent's GitHub login is on the roster (a GitHub column in AGENT_ROSTER.md, or github in a roster entry)",
          ];
        if (!gh) return noRepo();
        const found = await Promise.all(
          named.map(async (a) => {
            try {
              return { agent: a.id, ...(await gh.getCollaboratorPermission(a.github!)) };
            } catch (err) {
              if (isEoaError(err) && err.code === "GITHUB_NOT_FOUND")
                return { agent: a.id, login: a.github!, permission: "none", roleName: "no such GitHub user" };
              throw err;
            }
          }),
        );
        return agentAccess(
          gh.fullName,
          found,
          agents.filter((a) => !a.github).map((a) => a.id),
        );
      },
    },
    {
      id: "branch_permissions",
      section: "Infrastructure",
      item: "Branch permissions verified",
      run: async () => {
        if (!gh) return noRepo();
        const r = await repo();
        const b = await gh.getBranchPermission(r.defaultBranch);
        if (b.canPush === null) return ["unknown", `${r.fullName}: GitHub did not report push permission`];
        return [
          b.canPush ? "pass" : "fail",
          `${b.canPush ? "can" : "cannot"} push/merge to ${b.branch}; protection: ${b.protection}${b.requiredChecks.length ? ` (required checks: ${b.requiredChecks.join(", ")})` : ""}`,
        ];
      },
    },
    {
      id: "project_board",
      section: "Project Setup",
      item: "GitHub Project kanban ready",
      run: async () => {
        if (!gh) return noRepo();
        const number = rt.config.github.project;
        if (!number)
          return [
            "unknown",
            "no Projects v2 board configured (EOA_PROJECT); the kanban is kept in status: labels",
          ];
        const p = await gh.getProject(gh.owner, number);
        if (!p.statusField) return ["fail", `project "${p.title}" has no Status field`];
        return [
          "pass",
          `project "${p.title}" with Status options ${p.statusField.options.map((o) => o.name).join(", ")}`,
        ];
      },
    },
    {
      id: "issues_exist",
      section: "Project Setup",
      item: "Issues created for all autonomous tasks",
      run: async () => {
        if (!tasks.length) return ["unknown", "no session yet: call start_session first"];
        const backed = tasks.filter((t) => t.issue_number);
        if (!backed.length) return ["pass", "every task is an inline spec"];
        if (!gh) return noRepo();
        const problems: string[] = [];
        for (const t of backed) {
          try {
            const i = await gh.getIssue(t.issue_number!);
            if (i.state !== "open" && t.status !== "done") problems.push(`#${t.issue_number} is closed`);
          } catch (err) {
            problems.push(`#${t.issue_number}: ${errorMessage(err)}`);
          }
        }
        return problems.length
          ? ["fail", problems.join("; ")]
          : ["pass", `${backed.length} issue(s) exist and are open`];
      },
    },
    {
      id: "dependencies_documented",
      section: "Project Setup",
      item: "Dependencies between tasks documented",
      run: async () => {
        if (!tasks.length) return ["unknown", "no session yet"];
        const graph = Object.fromEntries(Object.values(state.tasks).map((t) => [t.task_id, t.depends_on]));
        const cycle = findCycle(graph);
        if (cycle) return ["fail", `cycle: ${cycle.join(" → ")}`];
        const unknown = tasks.flatMap((t) =>
          t.depends_on.filter((d) => !state.tasks[d]).map((d) => `${t.task_id} → ${d}`),
        );
        if (unknown.length) return ["fail", `dependencies outside the known tasks: ${unknown.join(", ")}`];
        const edges = tasks.flatMap((t) => t.depends_on.map((d) => `${t.task_id} after ${d}`));
        return ["pass", edges.length ? `acyclic: ${edges.join("; ")}` : "no dependencies"];
      },
    },
    {
      id: "no_blocking_issues",
      section: "Project Setup",
      item: "No blocking issues unresolved",
      run: async () => {
        const open = state.escalations.filter((e) => e.status === "open").map((e) => e.id);
        const blocked = Object.values(state.tasks)
          .filter((t) => t.status === "blocked")
          .map((t) => t.task_id);
        return open.length || blocked.length
          ? [
              "fail",
              `${open.length ? `open escalations: ${open.join(", ")}` : ""}${open.length && blocked.length ? "; " : ""}${blocked.length ? `blocked tasks: ${blocked.join(", ")}` : ""}`,
            ]
          : ["pass", "no open escalation, no blocked task"];
      },
    },
    {
      id: "roster_up_to_date",
      section: "Agent Roster",
      item: "AGENT_ROSTER.md up to date",
      run: async () => {
        if (!agents.length) return ["fail", "no roster configured (roster or rosterFile / EOA_ROSTER_FILE)"];
        const missing: string[] = [];
        for (const a of agents) if (!(await rt.aimaestro.resolveExactly(a.session))) missing.push(a.session);
        return missing.length
          ? [
              "fail",
              `roster agents not registered in AI Maestro: ${missing.join(", ")} (register each: POST /api/agents {"name": "<name>"})`,
            ]
          : ["pass", `${agents.length} roster agent(s), all registered in AI Maestro`];
      },
    },
    {
      id: "roster_names_exact",
      section: "Agent Roster",
      item: "Each roster name reaches the AI Maestro agent of that name",
      run: () => rosterRoutingCheck(rt),
    },
    {
      id: "capabilities_cover_tasks",
      section: "Agent Roster",
      item: "Agent capabilities match task requirements",
      run: async () => {
        if (!tasks.length) return ["unknown", "no session yet"];
        const uncovered = tasks.filter((t) => !agents.some((a) => missingCapabilities(a, t).length === 0));
        return uncovered.length
          ? [
              "fail",
              uncovered.map((t) => `${t.task_id} needs ${t.required_capabilities.join(", ")}`).join("; "),
            ]
          : ["pass", `every task has at least one capable agent`];
      },
    },
    {
      id: "backups_identified",
      section: "Agent Roster",
      item: "Backup agents identified for critical tasks",
      run: async () => {
        if (!agents.length) return ["fail", "the roster is empty"];
        const none = agents.filter((a) => a.backup.length === 0).map((a) => a.id);
        return none.length
          ? ["fail", `no backup named for: ${none.join(", ")}`]
          : ["pass", agents.map((a) => `${a.id} → ${a.backup.join(", ")}`).join("; ")];
      },
    },
    {
      id: "ci_workflows",
      section: "Quality Gates",
      item: "CI/CD pipeline functional",
      run: async () => {
        if (!gh) return noRepo();
        const wf = await gh.listWorkflows();
        const active = wf.filter((w) => w.state === "active");
        if (!active.length)
          return [
            "fail",
            wf.length
              ? `no active workflow (${wf.map((w) => `${w.path}: ${w.state}`).join(", ")})`
              : "no GitHub Actions workflow",
          ];
        return ciHealth((await repo()).defaultBranch, await baseRuns(), active);
      },
    },
    {
      id: "test_suite_stable",
      section: "Quality Gates",
      item: "Test suite stable (no flaky tests)",
      run: async () => {
        if (!gh) return noRepo();
        const runs = await baseRuns();
        // A rerun replaces a run's listed result: its earlier attempts are read back (a few runs).
        const earlier = await Promise.all(
          runs
            .filter((r) => r.runAttempt > 1)
            .slice(0, 10)
            .flatMap((r) =>
              Array.from({ length: Math.min(r.runAttempt - 1, 5) }, (_, i) =>
                gh.getWorkflowRunAttempt(r.id, r.runAttempt - 1 - i).then((a) => ({ ...r, ...a })),
              ),
            ),
        );
        const [status, evidence] = flips((await repo()).defaultBranch, runs, earlier);
        return [
          status,
          rt.config.review.commands.test
            ? evidence
            : `${evidence}; no review.commands.test configured: Gate 2 runs no tests of its own`,
        ];
      },
    },
    {
      id: "linting_configured",
      section: "Quality Gates",
      item: "Linting rules configured",
      run: async () =>
        rt.config.review.commands.lint
          ? ["pass", `review runs "${rt.config.review.commands.lint}"`]
          : ["fail", "no review.commands.lint configured"],
    },
  ];

  const items = await Promise.all(
    checks.map(async ({ run, ...rest }): Promise<ChecklistItem> => {
      try {
        const [status, evidence] = await run();
        return { ...rest, status, evidence: rt.redact(evidence) };
      } catch (err) {
        return { ...rest, status: "fail", evidence: rt.redact(errorMessage(err)) };
      }
    }),
  );
  const count = (s: CheckStatus) => items.filter((i) => i.status === s).length;
  return {
    ready: count("fail") === 0,
    summary: { pass: count("pass"), fail: count("fail"), unknown: count("unknown") },
    items,
  };
}

const GREEN = new Set(["success", "skipped", "neutral"]);
const RED = new Set(["failure", "timed_out", "startup_failure"]);

/** "CI/CD pipeline functional": the latest completed run of each active workflow on the base branch. */
export function ciHealth(
  branch: string,
  runs: readonly GitHubBranchRun[],
  workflows: ReadonlyArray<{ id: number; name: string }>,
): [CheckStatus, string] {
  const latest = workflows.flatMap((w) => {
    const run = runs.find((r) => r.workflowId === w.id && r.status === "completed");
    return run ? [{ workflow: w.name, run }] : [];
  });
  if (!latest.length)
    return ["unknown", `no completed run of ${workflows.map((w) => w.name).join(", ")} on ${branch} yet`];
  const shown = (l: (typeof latest)[number]) =>
    `${l.workflow} ${l.run.conclusion ?? "no conclusion"} on ${l.run.headSha.slice(0, 7)}`;
  const failing = latest.filter((l) => !GREEN.has(l.run.conclusion ?? ""));
  return failing.length
    ? ["fail", `latest run on ${branch}: ${failing.map((l) => `${shown(l)} (${l.run.htmlUrl})`).join("; ")}`]
    : ["pass", `latest run on ${branch}: ${latest.map(shown).join("; ")}`];
}

/**
 * "Test suite stable": a workflow that both passed and failed on one commit is flaky. `runs` are
 * the base branch's listed runs (their latest attempts), `earlier` their earlier attempts.
 */
export function flips(
  branch: string,
  runs: readonly GitHubBranchRun[],
  earlier: readonly GitHubBranchRun[],
): [CheckStatus, string] {
  const outcomes = new Map<string, { name: string; sha: string; seen: Set<string> }>();
  for (const r of [...runs, ...earlier]) {
    if (r.status !== "completed" || !r.conclusion) continue;
    const key = `${r.workflowId}@${r.headSha}`;
    const o = outcomes.get(key) ?? { name: r.name, sha: r.headSha, seen: new Set<string>() };
    o.seen.add(GREEN.has(r.conclusion) ? "passed" : RED.has(r.conclusion) ? "failed" : r.conclusion);
    outcomes.set(key, o);
  }
  if (!outcomes.size) return ["unknown", `no completed workflow run on ${branch} to judge by`];
  const flaky = [...outcomes.values()].filter((o) => o.seen.has("passed") && o.seen.has("failed"));
  return flaky.length
    ? [
        "fail",
        `passed and failed on the same commit (flaky): ${flaky.map((o) => `${o.name} on ${o.sha.slice(0, 7)}`).join(", ")}`,
      ]
    : [
        "pass",
        `no workflow result flipped on one commit: ${runs.length} recent run(s) on ${branch}, ${earlier.length} earlier attempt(s)`,
      ];
}

/** "GitHub access configured for all agents": push (write) or better for each named login. */
export function agentAccess(
  repo: string,
  found: ReadonlyArray<{ agent: string; login: string; permission: string; roleName: string | null }>,
  unnamed: readonly string[],
): [CheckStatus, string] {
  const canPush = (p: string) => p === "admin" || p === "write";
  const shown = (f: (typeof found)[number]) =>
    `${f.agent} (${f.login}): ${f.roleName && f.roleName !== f.permission ? f.roleName : f.permission}`;
  const short = found.filter((f) => !canPush(f.permission));
  const parts = [
    short.length ? `cannot push to ${repo}: ${short.map(shown).join(", ")}` : "",
    found.length > short.length
      ? `can push: ${found
          .filter((f) => canPush(f.permission))
          .map(shown)
          .join(", ")}`
      : "",
    unnamed.length ? `no GitHub login on the roster for ${unnamed.join(", ")}` : "",
  ].filter(Boolean);
  return [short.length ? "fail" : unnamed.length ? "unknown" : "pass", parts.join("; ")];
}

function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= fn());
}

export function renderPreflight(r: PreflightResult): string {
  const mark = { pass: "[x]", fail: "[ ]", unknown: "[?]" } as const;
  const lines: string[] = [
    `Prerequisites Checklist: ${r.summary.pass} pass, ${r.summary.fail} fail, ${r.summary.unknown} unknown`,
  ];
  let section = "";
  for (const i of r.items) {
    if (i.section !== section) {
      section = i.section;
      lines.push("", `${section}:`);
    }
    lines.push(`- ${mark[i.status]} ${i.item} — ${i.status}: ${i.evidence}`);
  }
  lines.push(
    "",
    r.ready
      ? "Ready for autonomous operation."
      : "Not ready: fix the failing items (or accept them knowingly) before leaving.",
  );
  return lines.join("\n");
}
