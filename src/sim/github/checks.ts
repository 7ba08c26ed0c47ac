import { error, list, noPush, notFound, route, type Route, validation } from "./http.js";
import type { CheckRunRec, CheckState } from "./records.js";
import { idOf, type SimState } from "./state.js";
import type { CheckRunSpec, RerunEvent } from "./types.js";

/**
 * Check runs, Actions workflow runs and workflows. Runs are scripted per commit in stages; a group
 * (a workflow, or one non-Actions check) moves to its next stage when it is rerun.
 */

const FAILED = new Set(["failure", "timed_out", "cancelled", "startup_failure"]);

const groupOf = (spec: CheckRunSpec) =>
  spec.workflow === null ? `check:${spec.name}` : `workflow:${spec.workflow ?? "CI"}`;

function materialize(s: SimState, state: CheckState, group: string) {
  const g = state.groups.get(group)!;
  const stage = state.stages[Math.min(g.stage, state.stages.length - 1)] ?? [];
  state.runs = state.runs.filter((r) => r.group !== group);
  for (const spec of stage.filter((x) => groupOf(x) === group)) {
    const done = spec.status === "completed";
    state.runs.push({
      id: s.nextId(),
      group,
      spec,
      started_at: s.now(),
      completed_at: done ? s.now() : null,
    });
  }
  g.updatedAt = s.now();
}

export function scriptChecks(s: SimState, sha: string, stages: CheckRunSpec[][]) {
  const state: CheckState = { stages: stages.length ? stages : [[]], groups: new Map(), runs: [] };
  for (const spec of stages.flat()) {
    const group = groupOf(spec);
    if (state.groups.has(group)) continue;
    state.groups.set(group, {
      stage: 0,
      suiteId: s.nextId(),
      workflowRunId: group.startsWith("workflow:") ? s.nextId() : null,
      runAttempt: 1,
      createdAt: s.now(),
      updatedAt: s.now(),
    });
  }
  for (const group of state.groups.keys()) materialize(s, state, group);
  s.checks.set(sha, state);
}

/** The app that reports a check: GitHub Actions for a workflow's jobs, else an app of the repository's owner. */
function appJson(s: SimState, base: string, actions: boolean) {
  const slug = actions ? "github-actions" : `${s.owner}-ci`;
  const id = actions ? 15368 : idOf(slug);
  return {
    id,
    slug,
    node_id: `A_${id}`,
    owner: s.user(base, actions ? "github" : s.owner),
    name: actions ? "GitHub Actions" : `${s.owner} CI`,
    description: actions ? "Automate your workflow from idea to production" : `Checks of ${s.fullName}`,
    external_url: actions ? "https://help.github.com/en/actions" : `https://github.com/${s.owner}`,
    html_url: `https://github.com/apps/${slug}`,
    created_at: s.startedAt,
    updated_at: s.startedAt,
    permissions: { checks: "write", contents: "read", metadata: "read" },
    events: actions ? ["check_run", "check_suite", "pull_request", "push"] : ["check_run"],
  };
}

function checkRunJson(s: SimState, base: string, sha: string, state: CheckState, r: CheckRunRec) {
  const g = state.groups.get(r.group)!;
  const actions = g.workflowRunId !== null;
  const html = actions
    ? `${s.htmlRepo}/actions/runs/${g.workflowRunId}/job/${r.id}`
    : `${s.htmlRepo}/runs/${r.id}`;
  return {
    id: r.id,
    node_id: `CR_${r.id}`,
    head_sha: sha,
    external_id: String(r.id),
    url: `${s.repoUrl(base)}/check-runs/${r.id}`,
    html_url: html,
    details_url: html,
    status: r.spec.status,
    conclusion: r.spec.status === "completed" ? (r.spec.conclusion ?? "success") : null,
    started_at: r.started_at,
    completed_at: r.completed_at,
    output: {
      title: r.spec.output?.title ?? null,
      summary: r.spec.output?.summary ?? null,
      text: r.spec.output?.text ?? null,
      annotations_count: 0,
      annotations_url: `${s.repoUrl(base)}/check-runs/${r.id}/annotations`,
    },
    name: r.spec.name,
    check_suite: { id: g.suiteId },
    app: appJson(s, base, actions),
    pull_requests: [],
  };
}

/** A workflow run's state follows its jobs' check runs. */
function runState(
  state: CheckState,
  group: string,
): { status: string; conclusion: string | null; failed: boolean } {
  const runs = state.runs.filter((r) => r.group === group);
  if (runs.some((r) => r.spec.status !== "completed")) {
    return {
      status: runs.some((r) => r.spec.status === "in_progress") ? "in_progress" : "queued",
      conclusion: null,
      failed: false,
    };
  }
  const conclusions = runs.map((r) => r.spec.conclusion ?? "success");
  const failed = conclusions.some((c) => FAILED.has(c));
  const conclusion = conclusions.find((c) => c === "failure" || c === "timed_out" || c === "startup_failure")
    ? "failure"
    : conclusions.includes("cancelled")
      ? "cancelled"
      : "success";
  return { status: "completed", conclusion, failed };
}

async function workflowRunJson(s: SimState, base: string, sha: string, state: CheckState, group: string) {
  const g = state.groups.get(group)!;
  const name = group.slice("workflow:".length);
  const wf = s.workflows.find((w) => w.name === name);
  const workflowId = wf?.id ?? idOf(name);
  const { status, conclusion } = runState(state, group);
  const pr = [...s.issues.values()].find((i) => i.pull?.headSha === sha);
  const headCommit = s.git && (await s.git.has(sha)) ? await s.git.commit(sha) : null;
  const url = `${s.repoUrl(base)}/actions/runs/${g.workflowRunId}`;
  const repo = s.repoJson(base);
  return {
    id: g.workflowRunId!,
    name,
    node_id: `WFR_${g.workflowRunId}`,
    head_branch: pr?.pull?.headRef ?? s.defaultBranch,
    head_sha: sha,
    path: wf?.path ?? `.github/workflows/${name.toLowerCase()}.yml`,
    // What GitHub shows as the run's title: the PR's for a pull_request run, else the commit's subject.
    display_title: pr?.title ?? headCommit?.message.split("\n")[0] ?? name,
    run_number: g.workflowRunId,
    run_attempt: g.runAttempt,
    event: "pull_request",
    status,
    conclusion,
    workflow_id: workflowId,
    check_suite_id: g.suiteId,
    check_suite_node_id: `CS_${g.suiteId}`,
    url,
    html_url: `${s.htmlRepo}/actions/runs/${g.workflowRunId}`,
    pull_requests: [],
    created_at: g.createdAt,
    updated_at: g.updatedAt,
    run_started_at: g.createdAt,
    actor: s.user(base, pr?.user ?? s.login),
    triggering_actor: s.user(base, pr?.user ?? s.login),
    jobs_url: `${url}/jobs`,
    logs_url: `${url}/logs`,
    check_suite_url: `${s.repoUrl(base)}/check-suites/${g.suiteId}`,
    artifacts_url: `${url}/artifacts`,
    cancel_url: `${url}/cancel`,
    rerun_url: `${url}/rerun`,
    previous_attempt_url: g.runAttempt > 1 ? `${url}/attempts/${g.runAttempt - 1}` : null,
    workflow_url: `${s.repoUrl(base)}/actions/workflows/${workflowId}`,
    head_commit: headCommit,
    repository: repo,
    head_repository: pr?.pull?.headRepo ? s.repoJson(base, pr.pull.headRepo) : repo,
  };
}

function rerun(
  s: SimState,
  sha: string,
  state: CheckState,
  group: string,
  ref: { workflowRunId?: number; checkRunId?: number },
) {
  const g = state.groups.get(group)!;
  g.stage++;
  g.runAttempt++;
  materialize(s, state, group);
  const event: RerunEvent = { sha, group, ...ref };
  s.rerunLog.push(event);
  for (const cb of s.rerunListeners) cb(event);
}

export function checkRoutes(s: SimState): Route[] {
  return [
    route("GET", "{repo}/commits/([^/]+)/check-runs", (m, ctx) => {
      const sha = decodeURIComponent(m[3]!);
      const state = s.checks.get(sha);
      const name = ctx.query.get("check_name");
      const runs = (state?.runs ?? [])
        .filter((r) => !name || r.spec.name === name)
        .map((r) => checkRunJson(s, ctx.base, sha, state!, r))
        .sort((a, b) => b.id - a.id);
      return list(runs, ctx, "check_runs");
    }),
    route("POST", "{repo}/check-runs/(\\d+)/rerequest", (m) => {
      if (!s.permissions.push) return noPush("checks=write");
      const id = Number(m[3]);
      for (const [sha, state] of s.checks) {
        const run = state.runs.find((r) => r.id === id);
        if (!run) continue;
        if (run.spec.status !== "completed")
          return validation([
            { resource: "CheckRun", code: "custom", message: "This check run is not rerequestable" },
          ]);
        rerun(s, sha, state, run.group, { checkRunId: id });
        return { status: 201, body: {} };
      }
      return notFound();
    }),
    route("GET", "{repo}/actions/runs", async (_m, ctx) => {
      const headSha = ctx.query.get("head_sha");
      const status = ctx.query.get("status");
      const branch = ctx.query.get("branch");
      const groups = [...s.checks.entries()]
        .filter(([sha]) => !headSha || sha === headSha)
        .flatMap(([sha, state]) =>
          [...state.groups.entries()]
            .filter(([, g]) => g.workflowRunId !== null)
            .map(([group]) => [sha, state, group] as const),
        );
      const runs = (
        await Promise.all(
          groups.map(([sha, state, group]) => workflowRunJson(s, ctx.base, sha, state, group)),
        )
      )
        .filter((r) => !status || r.status === status || r.conclusion === status)
        .filter((r) => !branch || r.head_branch === branch)
        .sort((a, b) => b.id - a.id);
      return list(runs, ctx, "workflow_runs");
    }),
    route("GET", "{repo}/actions/runs/(\\d+)/attempts/(\\d+)", async (m, ctx) => {
      const [id, attempt] = [Number(m[3]), Number(m[4])];
      for (const [sha, state] of s.checks) {
        const entry = [...state.groups.entries()].find(([, g]) => g.workflowRunId === id);
        if (!entry) continue;
        const [group, g] = entry;
        if (attempt < 1 || attempt > g.runAttempt) return notFound();
        const run = await workflowRunJson(s, ctx.base, sha, state, group);
        if (attempt === g.runAttempt) return { status: 200, body: run };
        // An earlier attempt ran its own stage's jobs, to the end.
        const stage = state.stages[Math.min(attempt - 1, state.stages.length - 1)] ?? [];
        const runs = stage
          .filter((spec) => groupOf(spec) === group)
          .map((spec) => ({ id: 0, group, spec, started_at: g.createdAt, completed_at: g.createdAt }));
        const { status, conclusion } = runState({ ...state, runs }, group);
        return { status: 200, body: { ...run, run_attempt: attempt, status, conclusion } };
      }
      return notFound();
    }),
    route("POST", "{repo}/actions/runs/(\\d+)/rerun-failed-jobs", (m) => {
      if (!s.permissions.push) return noPush("actions=write");
      const id = Number(m[3]);
      for (const [sha, state] of s.checks) {
        const entry = [...state.groups.entries()].find(([, g]) => g.workflowRunId === id);
        if (!entry) continue;
        const [group] = entry;
        const { status, failed } = runState(state, group);
        if (status !== "completed") return error(403, "This workflow is already running");
        // With no failed job there is nothing to rerun; GitHub accepts the request all the same.
        if (failed) rerun(s, sha, state, group, { workflowRunId: id });
        return { status: 201, body: {} };
      }
      return notFound();
    }),
    route("GET", "{repo}/actions/workflows", (_m, ctx) =>
      list(
        s.workflows.map((w) => ({
          id: w.id,
          node_id: `W_${w.id}`,
          name: w.name,
          path: w.path,
          state: w.state,
          created_at: w.created_at,
          updated_at: w.created_at,
          url: `${s.repoUrl(ctx.base)}/actions/workflows/${w.id}`,
          html_url: `${s.htmlRepo}/blob/${s.defaultBranch}/${w.path}`,
          badge_url: `${s.htmlRepo}/workflows/${encodeURIComponent(w.name)}/badge.svg`,
        })),
        ctx,
        "workflows",
      ),
    ),
  ];
}
