import { GIT_MIN_VERSION, gitVersion, gitVersionSupported, stripCredentials } from "../clients/git.js";
import { gitRemoteOf } from "../config.js";
import { errorMessage } from "../errors.js";
import { missingCapabilities } from "../protocol/assignment.js";
import { findCycle } from "../protocol/dependencies.js";
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

export async function preflight(rt: Runtime): Promise<PreflightResult> {
  const state = await rt.store.read();
  const agents = Object.values(state.agents);
  const session = state.sessions.find((s) => s.id === state.current_session_id);
  const tasks = session ? session.task_ids.map((id) => state.tasks[id]!).filter(Boolean) : [];
  const noRepo = (): [CheckStatus, string] => [
    "fail",
    "no GitHub repository configured (EOA_REPO, GITHUB_TOKEN)",
  ];
  // Shared look-ups, asked once.
  const presence = once(() => rt.aimaestro.listAgents());
  const repo = once(() => rt.github.getRepo());

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
        const online = new Set((await presence()).filter((a) => a.online).map((a) => a.name.toLowerCase()));
        const off = agents.filter((a) => !online.has(a.session.toLowerCase())).map((a) => a.id);
        return off.length
          ? ["fail", `offline in AI Maestro: ${off.join(", ")}`]
          : ["pass", `${agents.length} agent(s) online: ${agents.map((a) => a.id).join(", ")}`];
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
        if (!rt.hasGithub) return noRepo();
        const auth = await rt.github.getAuth();
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
      run: async () => [
        "unknown",
        "the agents' own credentials are not visible to the server; their first push will tell",
      ],
    },
    {
      id: "branch_permissions",
      section: "Infrastructure",
      item: "Branch permissions verified",
      run: async () => {
        if (!rt.hasGithub) return noRepo();
        const r = await repo();
        const b = await rt.github.getBranchPermission(r.defaultBranch);
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
        if (!rt.hasGithub) return noRepo();
        const number = rt.config.github.project;
        if (!number)
          return [
            "unknown",
            "no Projects v2 board configured (EOA_PROJECT); the kanban is kept in status: labels",
          ];
        const p = await rt.github.getProject(rt.config.github.repo!.split("/")[0]!, number);
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
        if (!rt.hasGithub) return noRepo();
        const problems: string[] = [];
        for (const t of backed) {
          try {
            const i = await rt.github.getIssue(t.issue_number!);
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
          ? ["fail", `roster agents not registered in AI Maestro: ${missing.join(", ")}`]
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
        if (!rt.hasGithub) return noRepo();
        const wf = await rt.github.listWorkflows();
        const active = wf.filter((w) => w.state === "active");
        return active.length
          ? ["pass", `active workflows: ${active.map((w) => w.path).join(", ")}`]
          : [
              "fail",
              wf.length
                ? `no active workflow (${wf.map((w) => `${w.path}: ${w.state}`).join(", ")})`
                : "no GitHub Actions workflow",
            ];
      },
    },
    {
      id: "test_suite_stable",
      section: "Quality Gates",
      item: "Test suite stable (no flaky tests)",
      run: async () =>
        rt.config.review.commands.test
          ? [
              "unknown",
              `review runs "${rt.config.review.commands.test}" in each worktree; stability shows over the night`,
            ]
          : ["fail", "no review.commands.test configured: Gate 2 relies on CI checks alone"],
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
