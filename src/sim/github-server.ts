import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse, STATUS_CODES } from "node:http";
import type { AddressInfo } from "node:net";
import { type Clock, systemClock } from "../clock.js";

/**
 * An in-memory GitHub stand-in on 127.0.0.1, for tests and `eoa-mcp simulate`. It answers the
 * REST routes and the Projects v2 GraphQL operations eoa-mcp uses, the way GitHub's documentation
 * says: snake_case bodies, real status codes and error bodies, `Link` pagination, mergeable states,
 * check-run conclusions, rate-limit headers. Everything it receives is recorded in `calls`.
 *
 * Simplifications (each written down so that nobody mistakes them for GitHub's behaviour):
 * - one repository, one authenticated user; no branches or git objects (a PR head is just a SHA);
 * - check runs are scripted per commit: `scriptChecks(sha, stages)` gives the runs a rerun moves
 *   through. Runs are grouped by workflow (or, for non-Actions checks, by name); rerunning a
 *   workflow run's failed jobs, or re-requesting a check run, moves only that group to its next
 *   stage, with fresh check-run ids, as GitHub creates new runs on a rerun;
 * - GraphQL is matched on the operation's root field (organization/user projectV2, node
 *   projectItems, addProjectV2ItemById, updateProjectV2ItemFieldValue) and reads its inputs from
 *   `variables` only.
 */

export interface GitHubServerOptions {
  port?: number;
  /** When set, requests must carry `Authorization: token <t>` or `Bearer <t>`. */
  token?: string;
  /** Classic token scopes, sent in `x-oauth-scopes`; when set, Projects operations need `project`/`read:project`. */
  scopes?: string[];
  clock?: Clock;
  owner?: string;
  repo?: string;
  login?: string;
  defaultBranch?: string;
  private?: boolean;
  /** The token's permissions on the repository (default push, not admin). */
  permissions?: { push: boolean; admin: boolean };
}

export interface CheckRunSpec {
  name: string;
  status: "queued" | "in_progress" | "completed";
  conclusion?:
    | "success"
    | "failure"
    | "neutral"
    | "cancelled"
    | "skipped"
    | "timed_out"
    | "action_required"
    | "startup_failure"
    | null;
  output?: { title?: string; summary?: string; text?: string };
  /** The Actions workflow that runs it (default "CI"); null for a check reported by another app. */
  workflow?: string | null;
}

export interface PullFileSpec {
  filename: string;
  additions: number;
  deletions: number;
  patch?: string;
  status?: "added" | "removed" | "modified" | "renamed" | "copied" | "changed" | "unchanged";
}

export type MergeableState =
  "clean" | "dirty" | "blocked" | "unstable" | "unknown" | "behind" | "has_hooks" | "draft";

/**
 * A scripted failure. Without `body`, the status gets GitHub's usual answer: 401 bad credentials,
 * 403 primary rate limit (`x-ratelimit-remaining: 0`, reset in an hour), 429 secondary rate limit
 * (`retry-after: 60`), 422 validation failed, 5xx server error.
 */
export interface Fault {
  status: number;
  /** How many matching requests fail (default 1). */
  count?: number;
  headers?: Record<string, string | number>;
  body?: unknown;
  method?: string;
  /** Exact pathname, or a pattern. */
  path?: string | RegExp;
}

export interface RecordedCall {
  method: string;
  path: string;
  query: Record<string, string>;
  body: unknown;
  status: number;
}

export interface IssueView {
  number: number;
  nodeId: string;
  title: string;
  body: string | null;
  state: "open" | "closed";
  stateReason: string | null;
  labels: string[];
  comments: { id: number; body: string; user: string; createdAt: string }[];
  isPullRequest: boolean;
}

export interface PullView {
  number: number;
  state: "open" | "closed";
  headSha: string;
  mergeable: boolean | null;
  mergeableState: MergeableState;
  merged: boolean;
  mergeMethod: string | null;
  mergeCommitSha: string | null;
  mergedAt: string | null;
  reviews: { id: number; event: string; state: string; body: string; commitId: string; user: string }[];
}

export interface ProjectItemView {
  project: string;
  projectId: string;
  itemId: string;
  contentId: string;
  issueNumber: number | null;
  status: string | null;
}

export interface RerunEvent {
  sha: string;
  group: string;
  workflowRunId?: number;
  checkRunId?: number;
}

export interface GitHubStandIn {
  url: string;
  owner: string;
  repo: string;
  login: string;
  calls: RecordedCall[];
  close(): Promise<void>;
  addIssue(spec: {
    number?: number;
    title: string;
    body?: string;
    labels?: string[];
    state?: "open" | "closed";
    author?: string;
  }): number;
  addPull(spec: {
    number?: number;
    title: string;
    body?: string;
    headSha: string;
    headRef: string;
    baseRef?: string;
    files?: PullFileSpec[];
    mergeable?: boolean | null;
    mergeableState?: MergeableState;
    /** Full name of the head repository (a fork); null when it was deleted. Default: this repository. */
    headRepo?: string | null;
    labels?: string[];
    author?: string;
  }): number;
  /** A new head commit on the PR (the agent pushed a fix). */
  pushHead(number: number, sha: string, files?: PullFileSpec[]): void;
  setMergeable(number: number, mergeable: boolean | null, state?: MergeableState): void;
  setCheckRuns(sha: string, runs: CheckRunSpec[]): void;
  /** `stages[0]` now; each rerun of a group moves that group to its next stage (the last one stays). */
  scriptChecks(sha: string, stages: CheckRunSpec[][]): void;
  onRerun(cb: (e: RerunEvent) => void): void;
  reruns(): RerunEvent[];
  addWorkflow(spec: { name: string; path?: string; state?: string }): number;
  protectBranch(branch: string, rules?: { requiredChecks?: string[]; requiredApprovals?: number }): void;
  setCollaborator(login: string, role: "admin" | "maintain" | "write" | "triage" | "read" | "none"): void;
  failNext(fault: Fault): void;
  setProject(spec: {
    owner: string;
    number: number;
    title: string;
    statuses: string[];
    ownerType?: "organization" | "user";
  }): string;
  issue(number: number): IssueView | undefined;
  pull(number: number): PullView | undefined;
  labels(): { name: string; color: string; description: string | null }[];
  projectItems(): ProjectItemView[];
}

// ---------- records ----------

interface LabelRec {
  id: number;
  node_id: string;
  name: string;
  color: string;
  description: string | null;
  default: boolean;
}

interface CommentRec {
  id: number;
  node_id: string;
  body: string;
  user: string;
  created_at: string;
}

interface IssueRec {
  id: number;
  number: number;
  node_id: string;
  title: string;
  body: string | null;
  state: "open" | "closed";
  state_reason: string | null;
  labels: string[];
  comments: CommentRec[];
  user: string;
  created_at: string;
  updated_at: string;
  closed_at: string | null;
  pull?: PullRec;
}

interface ReviewRec {
  id: number;
  node_id: string;
  event: string;
  state: string;
  body: string;
  commit_id: string;
  user: string;
  submitted_at: string;
}

interface PullRec {
  id: number;
  headSha: string;
  shas: string[];
  headRef: string;
  headRepo: string | null;
  baseRef: string;
  files: PullFileSpec[];
  mergeable: boolean | null;
  mergeableState: MergeableState;
  merged: boolean;
  mergedAt: string | null;
  mergeCommitSha: string | null;
  mergeMethod: string | null;
  reviews: ReviewRec[];
}

interface CheckRunRec {
  id: number;
  group: string;
  spec: CheckRunSpec;
  started_at: string;
  completed_at: string | null;
}

interface GroupRec {
  stage: number;
  suiteId: number;
  workflowRunId: number | null;
  runAttempt: number;
  createdAt: string;
  updatedAt: string;
}

interface CheckState {
  stages: CheckRunSpec[][];
  groups: Map<string, GroupRec>;
  runs: CheckRunRec[];
}

interface ProjectRec {
  id: string;
  owner: string;
  ownerType: "organization" | "user";
  number: number;
  title: string;
  fieldId: string;
  options: { id: string; name: string }[];
  items: { id: string; contentId: string; optionId: string | null }[];
}

interface Ctx {
  method: string;
  url: URL;
  query: URLSearchParams;
  body: unknown;
  base: string;
}

interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

type Handler = (m: string[], ctx: Ctx) => Reply;

const DOCS = "https://docs.github.com/rest";
const FAILED = new Set(["failure", "timed_out", "cancelled", "startup_failure"]);

export async function startGitHubServer(opts: GitHubServerOptions = {}): Promise<GitHubStandIn> {
  const clock = opts.clock ?? systemClock;
  const owner = opts.owner ?? "acme";
  const repoName = opts.repo ?? "webapp";
  const login = opts.login ?? "eoa-bot";
  const defaultBranch = opts.defaultBranch ?? "main";
  const permissions = opts.permissions ?? { push: true, admin: false };
  const fullName = `${owner}/${repoName}`;

  let seq = 1000;
  const nextId = () => ++seq;
  const now = () => clock.now().toISOString();
  const sha1 = (s: string) => createHash("sha1").update(s).digest("hex");

  const calls: RecordedCall[] = [];
  const faults: (Fault & { left: number })[] = [];
  const issues = new Map<number, IssueRec>();
  const repoLabels = new Map<string, LabelRec>();
  const checks = new Map<string, CheckState>();
  const workflows: { id: number; name: string; path: string; state: string; created_at: string }[] = [];
  const protections = new Map<string, { requiredChecks: string[]; requiredApprovals: number }>();
  /** Known users by lower-cased login, with their role on the repository ("none": a user without access). */
  const collaborators = new Map<string, string>();
  const projects: ProjectRec[] = [];
  const rerunListeners: ((e: RerunEvent) => void)[] = [];
  const rerunLog: RerunEvent[] = [];
  let apiCalls = 0;

  // ---------- helpers ----------

  const error = (
    status: number,
    message: string,
    extra: Record<string, unknown> = {},
    headers?: Record<string, string>,
  ): Reply => ({
    status,
    body: { message, ...extra, documentation_url: DOCS, status: String(status) },
    ...(headers ? { headers } : {}),
  });
  const notFound = () => error(404, "Not Found");
  const validation = (errors: unknown[], message = "Validation Failed") => error(422, message, { errors });
  const noPush = (needs: string) =>
    error(
      403,
      "Resource not accessible by personal access token",
      {},
      { "x-accepted-github-permissions": needs },
    );

  const obj = (v: unknown): Record<string, unknown> =>
    v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

  const user = (name: string) => ({
    login: name,
    id: idOf(name),
    node_id: `U_${name}`,
    type: name.endsWith("[bot]") ? "Bot" : "User",
  });
  const idOf = (s: string) => parseInt(sha1(s).slice(0, 7), 16);
  const repoUrl = (base: string) => `${base}/repos/${fullName}`;
  const htmlRepo = `https://github.com/${fullName}`;

  function repoJson(base: string) {
    return {
      id: idOf(fullName),
      node_id: `R_${idOf(fullName)}`,
      name: repoName,
      full_name: fullName,
      private: opts.private ?? false,
      owner: user(owner),
      html_url: htmlRepo,
      url: repoUrl(base),
      default_branch: defaultBranch,
      permissions: {
        admin: permissions.admin,
        maintain: permissions.admin,
        push: permissions.push,
        triage: permissions.push,
        pull: true,
      },
    };
  }

  function label(name: string): LabelRec {
    const key = name.toLowerCase();
    let rec = repoLabels.get(key);
    if (!rec) {
      // As on GitHub, adding an unknown label to an issue creates it.
      const id = nextId();
      rec = { id, node_id: `LA_${id}`, name, color: "ededed", description: null, default: false };
      repoLabels.set(key, rec);
    }
    return rec;
  }
  const labelJson = (base: string, name: string) => {
    const l = label(name);
    return { ...l, url: `${repoUrl(base)}/labels/${encodeURIComponent(l.name)}` };
  };

  function issueJson(base: string, i: IssueRec) {
    return {
      id: i.id,
      node_id: i.node_id,
      number: i.number,
      title: i.title,
      body: i.body,
      state: i.state,
      state_reason: i.state_reason,
      locked: false,
      labels: i.labels.map((l) => labelJson(base, l)),
      assignees: [],
      user: user(i.user),
      comments: i.comments.length,
      url: `${repoUrl(base)}/issues/${i.number}`,
      html_url: `${htmlRepo}/${i.pull ? "pull" : "issues"}/${i.number}`,
      created_at: i.created_at,
      updated_at: i.updated_at,
      closed_at: i.closed_at,
      ...(i.pull
        ? {
            pull_request: {
              url: `${repoUrl(base)}/pulls/${i.number}`,
              html_url: `${htmlRepo}/pull/${i.number}`,
              diff_url: `${htmlRepo}/pull/${i.number}.diff`,
              patch_url: `${htmlRepo}/pull/${i.number}.patch`,
              merged_at: i.pull.mergedAt,
            },
          }
        : {}),
    };
  }

  function pullJson(base: string, i: IssueRec, p: PullRec) {
    const additions = p.files.reduce((n, f) => n + f.additions, 0);
    const deletions = p.files.reduce((n, f) => n + f.deletions, 0);
    const headRepo =
      p.headRepo === null
        ? null
        : { ...repoJson(base), full_name: p.headRepo, name: p.headRepo.split("/")[1] };
    return {
      id: p.id,
      node_id: i.node_id,
      number: i.number,
      state: i.state,
      locked: false,
      title: i.title,
      body: i.body,
      user: user(i.user),
      labels: i.labels.map((l) => labelJson(base, l)),
      draft: p.mergeableState === "draft",
      url: `${repoUrl(base)}/pulls/${i.number}`,
      html_url: `${htmlRepo}/pull/${i.number}`,
      diff_url: `${htmlRepo}/pull/${i.number}.diff`,
      created_at: i.created_at,
      updated_at: i.updated_at,
      closed_at: i.closed_at,
      merged_at: p.mergedAt,
      merge_commit_sha: p.mergeCommitSha,
      head: {
        label: `${(p.headRepo ?? fullName).split("/")[0]}:${p.headRef}`,
        ref: p.headRef,
        sha: p.headSha,
        user: user(i.user),
        repo: headRepo,
      },
      base: {
        label: `${owner}:${p.baseRef}`,
        ref: p.baseRef,
        sha: sha1(`base:${p.baseRef}`),
        user: user(owner),
        repo: repoJson(base),
      },
      merged: p.merged,
      // Once merged GitHub stops computing mergeability.
      mergeable: p.merged ? null : p.mergeable,
      mergeable_state: p.merged ? "unknown" : p.mergeableState,
      merged_by: p.merged ? user(login) : null,
      comments: i.comments.length,
      review_comments: 0,
      commits: p.shas.length,
      additions,
      deletions,
      changed_files: p.files.length,
    };
  }

  function paginate(items: unknown[], ctx: Ctx): { page: unknown[]; headers: Record<string, string> } {
    const perPage = Math.min(100, Math.max(1, Number(ctx.query.get("per_page")) || 30));
    const pageNo = Math.max(1, Number(ctx.query.get("page")) || 1);
    const last = Math.max(1, Math.ceil(items.length / perPage));
    const page = items.slice((pageNo - 1) * perPage, pageNo * perPage);
    if (last <= 1) return { page, headers: {} };
    const link = (n: number, rel: string) => {
      const u = new URL(ctx.url.pathname + ctx.url.search, ctx.base);
      u.searchParams.set("per_page", String(perPage));
      u.searchParams.set("page", String(n));
      return `<${u.toString()}>; rel="${rel}"`;
    };
    const rels: string[] = [];
    if (pageNo > 1) rels.push(link(pageNo - 1, "prev"));
    if (pageNo < last) rels.push(link(pageNo + 1, "next"), link(last, "last"));
    if (pageNo > 1) rels.push(link(1, "first"));
    return { page, headers: { link: rels.join(", ") } };
  }
  const list = (items: unknown[], ctx: Ctx, key?: string): Reply => {
    const { page, headers } = paginate(items, ctx);
    return { status: 200, body: key ? { total_count: items.length, [key]: page } : page, headers };
  };

  const getIssue = (n: string | undefined) => issues.get(Number(n));
  const nextNumber = () => Math.max(0, ...issues.keys()) + 1;

  function closeIssue(i: IssueRec, reason = "completed") {
    if (i.state === "closed") return;
    i.state = "closed";
    i.state_reason = reason;
    i.closed_at = now();
    i.updated_at = now();
  }

  // ---------- checks ----------

  const groupOf = (s: CheckRunSpec) =>
    s.workflow === null ? `check:${s.name}` : `workflow:${s.workflow ?? "CI"}`;

  function materialize(state: CheckState, group: string) {
    const g = state.groups.get(group)!;
    const stage = state.stages[Math.min(g.stage, state.stages.length - 1)] ?? [];
    state.runs = state.runs.filter((r) => r.group !== group);
    for (const spec of stage.filter((s) => groupOf(s) === group)) {
      const done = spec.status === "completed";
      state.runs.push({ id: nextId(), group, spec, started_at: now(), completed_at: done ? now() : null });
    }
    g.updatedAt = now();
  }

  function scriptChecks(sha: string, stages: CheckRunSpec[][]) {
    const state: CheckState = { stages: stages.length ? stages : [[]], groups: new Map(), runs: [] };
    for (const spec of stages.flat()) {
      const group = groupOf(spec);
      if (state.groups.has(group)) continue;
      state.groups.set(group, {
        stage: 0,
        suiteId: nextId(),
        workflowRunId: group.startsWith("workflow:") ? nextId() : null,
        runAttempt: 1,
        createdAt: now(),
        updatedAt: now(),
      });
    }
    for (const group of state.groups.keys()) materialize(state, group);
    checks.set(sha, state);
  }

  function checkRunJson(base: string, sha: string, state: CheckState, r: CheckRunRec) {
    const g = state.groups.get(r.group)!;
    const actions = g.workflowRunId !== null;
    const app = actions
      ? { id: 15368, slug: "github-actions", name: "GitHub Actions" }
      : { id: 9426, slug: "external-ci", name: "External CI" };
    return {
      id: r.id,
      node_id: `CR_${r.id}`,
      head_sha: sha,
      external_id: String(r.id),
      url: `${repoUrl(base)}/check-runs/${r.id}`,
      html_url: actions
        ? `${htmlRepo}/actions/runs/${g.workflowRunId}/job/${r.id}`
        : `https://ci.example.test/${r.id}`,
      details_url: actions
        ? `${htmlRepo}/actions/runs/${g.workflowRunId}/job/${r.id}`
        : `https://ci.example.test/${r.id}`,
      status: r.spec.status,
      conclusion: r.spec.status === "completed" ? (r.spec.conclusion ?? "success") : null,
      started_at: r.started_at,
      completed_at: r.completed_at,
      output: {
        title: r.spec.output?.title ?? null,
        summary: r.spec.output?.summary ?? null,
        text: r.spec.output?.text ?? null,
        annotations_count: 0,
        annotations_url: `${repoUrl(base)}/check-runs/${r.id}/annotations`,
      },
      name: r.spec.name,
      check_suite: { id: g.suiteId },
      app,
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
    const conclusion = conclusions.find(
      (c) => c === "failure" || c === "timed_out" || c === "startup_failure",
    )
      ? "failure"
      : conclusions.includes("cancelled")
        ? "cancelled"
        : "success";
    return { status: "completed", conclusion, failed };
  }

  function workflowRunJson(base: string, sha: string, state: CheckState, group: string) {
    const g = state.groups.get(group)!;
    const name = group.slice("workflow:".length);
    const wf = workflows.find((w) => w.name === name);
    const { status, conclusion } = runState(state, group);
    return {
      id: g.workflowRunId,
      name,
      node_id: `WFR_${g.workflowRunId}`,
      head_branch: [...issues.values()].find((i) => i.pull?.headSha === sha)?.pull?.headRef ?? defaultBranch,
      head_sha: sha,
      path: wf?.path ?? `.github/workflows/${name.toLowerCase()}.yml`,
      run_number: g.workflowRunId,
      run_attempt: g.runAttempt,
      event: "pull_request",
      status,
      conclusion,
      workflow_id: wf?.id ?? idOf(name),
      check_suite_id: g.suiteId,
      check_suite_node_id: `CS_${g.suiteId}`,
      url: `${repoUrl(base)}/actions/runs/${g.workflowRunId}`,
      html_url: `${htmlRepo}/actions/runs/${g.workflowRunId}`,
      created_at: g.createdAt,
      updated_at: g.updatedAt,
    };
  }

  function rerun(
    sha: string,
    state: CheckState,
    group: string,
    ref: { workflowRunId?: number; checkRunId?: number },
  ) {
    const g = state.groups.get(group)!;
    g.stage++;
    g.runAttempt++;
    materialize(state, group);
    const event: RerunEvent = { sha, group, ...ref };
    rerunLog.push(event);
    for (const cb of rerunListeners) cb(event);
  }

  // ---------- GraphQL (Projects v2) ----------

  function projectScopeError(write: boolean): unknown[] | null {
    if (!opts.scopes) return null;
    const ok = opts.scopes.includes("project") || (!write && opts.scopes.includes("read:project"));
    if (ok) return null;
    const need = write ? "['project']" : "['read:project']";
    return [
      {
        type: "INSUFFICIENT_SCOPES",
        locations: [{ line: 1, column: 1 }],
        message: `Your token has not been granted the required scopes to execute this query. The 'projectV2' field requires one of the following scopes: ${need}, but your token has only been granted the: [${opts.scopes.map((s) => `'${s}'`).join(", ")}] scopes. Please modify your token's scopes at: https://github.com/settings/tokens.`,
      },
    ];
  }

  const gqlError = (type: string | undefined, message: string, path: string[]) => ({
    ...(type ? { type } : {}),
    path,
    locations: [{ line: 2, column: 3 }],
    message,
  });

  function contentByNode(id: string): IssueRec | undefined {
    return [...issues.values()].find((i) => i.node_id === id);
  }

  function graphql(body: unknown): Reply {
    const { query, variables } = obj(body);
    const q = str(query);
    const v = obj(variables);
    if (!q) return error(400, "A query attribute must be specified and must be a string.");
    const reply = (payload: Record<string, unknown>) => ({ status: 200, body: payload });

    const ownerMatch = /\b(organization|user)\s*\(/.exec(q);
    if (/\bmutation\b/.test(q) && /\baddProjectV2ItemById\b/.test(q)) {
      const denied = projectScopeError(true);
      if (denied) return reply({ data: null, errors: denied });
      const input = obj(v.input);
      const projectId = str(v.projectId) ?? str(input.projectId);
      const contentId = str(v.contentId) ?? str(input.contentId);
      const project = projects.find((p) => p.id === projectId);
      const content = contentId ? contentByNode(contentId) : undefined;
      if (!project || !content) {
        const missing = project ? contentId : projectId;
        return reply({
          data: { addProjectV2ItemById: null },
          errors: [
            gqlError("NOT_FOUND", `Could not resolve to a node with the global id of '${missing}'`, [
              "addProjectV2ItemById",
            ]),
          ],
        });
      }
      let item = project.items.find((i) => i.contentId === content.node_id);
      if (!item) {
        item = { id: `PVTI_${nextId()}`, contentId: content.node_id, optionId: null };
        project.items.push(item);
      }
      return reply({ data: { addProjectV2ItemById: { item: { id: item.id } } } });
    }
    if (/\bmutation\b/.test(q) && /\bupdateProjectV2ItemFieldValue\b/.test(q)) {
      const denied = projectScopeError(true);
      if (denied) return reply({ data: null, errors: denied });
      const input = obj(v.input);
      const projectId = str(v.projectId) ?? str(input.projectId);
      const itemId = str(v.itemId) ?? str(input.itemId);
      const fieldId = str(v.fieldId) ?? str(input.fieldId);
      const optionId = str(v.optionId) ?? str(obj(input.value).singleSelectOptionId);
      const path = ["updateProjectV2ItemFieldValue"];
      const project = projects.find((p) => p.id === projectId);
      const item = project?.items.find((i) => i.id === itemId);
      let err: ReturnType<typeof gqlError> | undefined;
      if (!project)
        err = gqlError("NOT_FOUND", `Could not resolve to a node with the global id of '${projectId}'`, path);
      else if (!item)
        err = gqlError("NOT_FOUND", `Could not resolve to a node with the global id of '${itemId}'`, path);
      else if (fieldId !== project.fieldId)
        err = gqlError("NOT_FOUND", `Could not resolve to a node with the global id of '${fieldId}'`, path);
      else if (!project.options.some((o) => o.id === optionId))
        err = gqlError(undefined, "The single select option Id does not belong to the field", path);
      if (err || !item) return reply({ data: { updateProjectV2ItemFieldValue: null }, errors: [err] });
      item.optionId = optionId ?? null;
      return reply({ data: { updateProjectV2ItemFieldValue: { projectV2Item: { id: item.id } } } });
    }
    if (/\bnode\s*\(/.test(q) && /\bprojectItems\b/.test(q)) {
      const denied = projectScopeError(false);
      if (denied) return reply({ data: null, errors: denied });
      const id = str(v.id);
      const content = id ? contentByNode(id) : undefined;
      if (!content)
        return reply({
          data: { node: null },
          errors: [
            gqlError("NOT_FOUND", `Could not resolve to a node with the global id of '${id}'`, ["node"]),
          ],
        });
      const nodes = projects.flatMap((p) =>
        p.items
          .filter((i) => i.contentId === content.node_id)
          .map((i) => ({ id: i.id, project: { id: p.id } })),
      );
      return reply({ data: { node: { projectItems: { nodes } } } });
    }
    if (ownerMatch && /\bprojectV2\s*\(/.test(q)) {
      const kind = ownerMatch[1] as "organization" | "user";
      const loginVar = str(v.login) ?? str(v.owner);
      const numberVar = Number(v.number);
      const orgs = new Set(projects.filter((p) => p.ownerType === "organization").map((p) => p.owner));
      if (owner !== login) orgs.add(owner);
      const users = new Set(projects.filter((p) => p.ownerType === "user").map((p) => p.owner));
      users.add(login);
      const exists = loginVar !== undefined && (kind === "organization" ? orgs : users).has(loginVar);
      if (!exists) {
        const what = kind === "organization" ? "an Organization" : "a User";
        return reply({
          data: { [kind]: null },
          errors: [
            gqlError("NOT_FOUND", `Could not resolve to ${what} with the login of '${loginVar}'.`, [kind]),
          ],
        });
      }
      const denied = projectScopeError(false);
      if (denied) return reply({ data: { [kind]: null }, errors: denied });
      const p = projects.find((x) => x.owner === loginVar && x.ownerType === kind && x.number === numberVar);
      if (!p) {
        return reply({
          data: { [kind]: { projectV2: null } },
          errors: [
            gqlError("NOT_FOUND", `Could not resolve to a ProjectV2 with the number ${numberVar}.`, [
              kind,
              "projectV2",
            ]),
          ],
        });
      }
      const fieldName = /\bfield\s*\(\s*name\s*:\s*"([^"]+)"/.exec(q)?.[1];
      const field = fieldName === "Status" ? { id: p.fieldId, name: "Status", options: p.options } : null;
      return reply({
        data: { [kind]: { projectV2: { id: p.id, title: p.title, number: p.number, field } } },
      });
    }
    return reply({
      errors: [
        {
          message: "The GitHub stand-in does not implement this GraphQL operation",
          extensions: { code: "undefinedField" },
          locations: [{ line: 1, column: 1 }],
        },
      ],
    });
  }

  // ---------- routes ----------

  const R = (method: string, pattern: string, handler: Handler) => ({
    method,
    repoScoped: pattern.startsWith("{repo}"),
    re: new RegExp(`^${pattern.replace("{repo}", "/repos/([^/]+)/([^/]+)")}$`),
    handler,
  });
  const inRepo = (m: string[]) =>
    m[1]?.toLowerCase() === owner.toLowerCase() && m[2]?.toLowerCase() === repoName.toLowerCase();

  const routes = [
    R("GET", "/user", (_m, ctx) => ({
      status: 200,
      body: {
        ...user(login),
        name: login,
        html_url: `https://github.com/${login}`,
        url: `${ctx.base}/users/${login}`,
      },
    })),
    R("POST", "/graphql", (_m, ctx) => graphql(ctx.body)),
    R("GET", "{repo}", (_m, ctx) => ({ status: 200, body: repoJson(ctx.base) })),
    R("GET", "{repo}/branches/([^/]+)/protection", (m, ctx) => {
      if (!permissions.admin) return error(403, "Must have admin rights to Repository.");
      const branch = decodeURIComponent(m[3]!);
      const p = protections.get(branch);
      if (!p) return error(404, "Branch not protected");
      const url = `${repoUrl(ctx.base)}/branches/${branch}/protection`;
      return {
        status: 200,
        body: {
          url,
          required_status_checks: {
            url: `${url}/required_status_checks`,
            strict: false,
            contexts: p.requiredChecks,
            checks: p.requiredChecks.map((c) => ({ context: c, app_id: null })),
          },
          required_pull_request_reviews: {
            url: `${url}/required_pull_request_reviews`,
            dismiss_stale_reviews: false,
            require_code_owner_reviews: false,
            required_approving_review_count: p.requiredApprovals,
          },
          enforce_admins: { url: `${url}/enforce_admins`, enabled: false },
        },
      };
    }),
    R("GET", "{repo}/labels", (_m, ctx) =>
      list(
        [...repoLabels.values()].map((l) => labelJson(ctx.base, l.name)),
        ctx,
      ),
    ),
    R("POST", "{repo}/labels", (_m, ctx) => {
      if (!permissions.push) return noPush("issues=write");
      const b = obj(ctx.body);
      const name = str(b.name);
      if (!name) return validation([{ resource: "Label", code: "missing_field", field: "name" }]);
      if (repoLabels.has(name.toLowerCase()))
        return validation([{ resource: "Label", code: "already_exists", field: "name" }]);
      const color = str(b.color) ?? "ededed";
      if (!/^[0-9a-fA-F]{6}$/.test(color))
        return validation([{ resource: "Label", code: "invalid", field: "color" }]);
      const id = nextId();
      repoLabels.set(name.toLowerCase(), {
        id,
        node_id: `LA_${id}`,
        name,
        color,
        description: str(b.description) ?? null,
        default: false,
      });
      return { status: 201, body: labelJson(ctx.base, name) };
    }),
    R("POST", "{repo}/issues", (_m, ctx) => {
      const b = obj(ctx.body);
      const title = str(b.title);
      if (!title) return validation([{ resource: "Issue", code: "missing_field", field: "title" }]);
      const n = api.addIssue({
        title,
        body: str(b.body) ?? "",
        labels: Array.isArray(b.labels) ? b.labels.map(String) : [],
        author: login,
      });
      return { status: 201, body: issueJson(ctx.base, issues.get(n)!) };
    }),
    R("GET", "{repo}/issues/(\\d+)", (m, ctx) => {
      const i = getIssue(m[3]);
      return i ? { status: 200, body: issueJson(ctx.base, i) } : notFound();
    }),
    R("PATCH", "{repo}/issues/(\\d+)", (m, ctx) => {
      const i = getIssue(m[3]);
      if (!i) return notFound();
      const b = obj(ctx.body);
      if (b.state !== undefined && b.state !== "open" && b.state !== "closed")
        return validation([{ resource: "Issue", code: "invalid", field: "state" }]);
      if (typeof b.title === "string") i.title = b.title;
      if (b.body === null || typeof b.body === "string") i.body = b.body;
      if (Array.isArray(b.labels)) i.labels = uniqueLabels(b.labels.map(String));
      if (b.state === "closed") closeIssue(i, str(b.state_reason) ?? "completed");
      if (b.state === "open" && i.state === "closed" && !i.pull?.merged) {
        i.state = "open";
        i.state_reason = "reopened";
        i.closed_at = null;
      }
      i.updated_at = now();
      return { status: 200, body: issueJson(ctx.base, i) };
    }),
    R("GET", "{repo}/issues/(\\d+)/labels", (m, ctx) => {
      const i = getIssue(m[3]);
      return i
        ? list(
            i.labels.map((l) => labelJson(ctx.base, l)),
            ctx,
          )
        : notFound();
    }),
    R("POST", "{repo}/issues/(\\d+)/labels", (m, ctx) => editLabels(m, ctx, "add")),
    R("PUT", "{repo}/issues/(\\d+)/labels", (m, ctx) => editLabels(m, ctx, "set")),
    R("DELETE", "{repo}/issues/(\\d+)/labels/([^/]+)", (m, ctx) => {
      const i = getIssue(m[3]);
      if (!i) return notFound();
      if (!permissions.push) return noPush("issues=write; pull_requests=write");
      const name = decodeURIComponent(m[4]!).toLowerCase();
      if (!i.labels.some((l) => l.toLowerCase() === name)) return error(404, "Label does not exist");
      i.labels = i.labels.filter((l) => l.toLowerCase() !== name);
      i.updated_at = now();
      return { status: 200, body: i.labels.map((l) => labelJson(ctx.base, l)) };
    }),
    R("GET", "{repo}/issues/(\\d+)/comments", (m, ctx) => {
      const i = getIssue(m[3]);
      return i
        ? list(
            i.comments.map((c) => commentJson(ctx.base, i, c)),
            ctx,
          )
        : notFound();
    }),
    R("POST", "{repo}/issues/(\\d+)/comments", (m, ctx) => {
      const i = getIssue(m[3]);
      if (!i) return notFound();
      const body = str(obj(ctx.body).body);
      if (!body) return validation([{ resource: "IssueComment", code: "missing_field", field: "body" }]);
      const id = nextId();
      const c: CommentRec = { id, node_id: `IC_${id}`, body, user: login, created_at: now() };
      i.comments.push(c);
      i.updated_at = now();
      return { status: 201, body: commentJson(ctx.base, i, c) };
    }),
    R("GET", "{repo}/pulls/(\\d+)", (m, ctx) => {
      const i = getIssue(m[3]);
      return i?.pull ? { status: 200, body: pullJson(ctx.base, i, i.pull) } : notFound();
    }),
    R("GET", "{repo}/pulls/(\\d+)/files", (m, ctx) => {
      const i = getIssue(m[3]);
      if (!i?.pull) return notFound();
      const files = i.pull.files.map((f) => {
        const blob = sha1(`${i.pull!.headSha}:${f.filename}`);
        return {
          sha: blob,
          filename: f.filename,
          status: f.status ?? "modified",
          additions: f.additions,
          deletions: f.deletions,
          changes: f.additions + f.deletions,
          blob_url: `${htmlRepo}/blob/${i.pull!.headSha}/${f.filename}`,
          raw_url: `${htmlRepo}/raw/${i.pull!.headSha}/${f.filename}`,
          contents_url: `${repoUrl(ctx.base)}/contents/${f.filename}?ref=${i.pull!.headSha}`,
          ...(f.patch !== undefined ? { patch: f.patch } : {}),
        };
      });
      return list(files, ctx);
    }),
    R("GET", "{repo}/pulls/(\\d+)/reviews", (m, ctx) => {
      const i = getIssue(m[3]);
      return i?.pull
        ? list(
            i.pull.reviews.map((r) => reviewJson(i, r)),
            ctx,
          )
        : notFound();
    }),
    R("POST", "{repo}/pulls/(\\d+)/reviews", (m, ctx) => {
      const i = getIssue(m[3]);
      if (!i?.pull) return notFound();
      const b = obj(ctx.body);
      const event = str(b.event);
      const body = str(b.body) ?? "";
      if (event !== undefined && !["APPROVE", "REQUEST_CHANGES", "COMMENT"].includes(event)) {
        return validation([{ resource: "PullRequestReview", code: "invalid", field: "event" }]);
      }
      if ((event === "APPROVE" || event === "REQUEST_CHANGES") && i.user === login) {
        const verb = event === "APPROVE" ? "approve" : "request changes on";
        return error(422, "Unprocessable Entity", {
          errors: [`Review Can not ${verb} your own pull request`],
        });
      }
      if ((event === "REQUEST_CHANGES" || event === "COMMENT") && !body) {
        return error(422, "Unprocessable Entity", {
          errors: [`Review body is required when the review event is ${event}`],
        });
      }
      const commitId = str(b.commit_id) ?? i.pull.headSha;
      if (!i.pull.shas.includes(commitId))
        return error(422, "Unprocessable Entity", {
          errors: [`Commit ${commitId} is not part of the pull request`],
        });
      const state =
        event === "APPROVE"
          ? "APPROVED"
          : event === "REQUEST_CHANGES"
            ? "CHANGES_REQUESTED"
            : event === "COMMENT"
              ? "COMMENTED"
              : "PENDING";
      const id = nextId();
      const rec: ReviewRec = {
        id,
        node_id: `PRR_${id}`,
        event: event ?? "PENDING",
        state,
        body,
        commit_id: commitId,
        user: login,
        submitted_at: now(),
      };
      i.pull.reviews.push(rec);
      return { status: 200, body: reviewJson(i, rec) };
    }),
    R("PUT", "{repo}/pulls/(\\d+)/merge", (m, ctx) => {
      const i = getIssue(m[3]);
      if (!i?.pull) return notFound();
      if (!permissions.push) return noPush("contents=write");
      const p = i.pull;
      const b = obj(ctx.body);
      const method = str(b.merge_method) ?? "merge";
      if (!["merge", "squash", "rebase"].includes(method))
        return validation([{ resource: "PullRequest", code: "invalid", field: "merge_method" }]);
      if (p.merged || i.state === "closed") return error(405, "Pull Request is not mergeable");
      const sha = str(b.sha);
      if (sha !== undefined && sha !== p.headSha)
        return error(409, "Head branch was modified. Review and try the merge again.");
      if (p.mergeable === false || p.mergeableState === "dirty" || p.mergeableState === "draft")
        return error(405, "Pull Request is not mergeable");
      if (p.mergeableState === "blocked") return error(405, blockedReason(p));
      p.merged = true;
      p.mergedAt = now();
      p.mergeMethod = method;
      p.mergeCommitSha = sha1(`merge:${i.number}:${p.headSha}:${method}`);
      closeIssue(i);
      if (p.baseRef === defaultBranch) {
        // GitHub closes the issues a merged PR's description links with a closing keyword.
        for (const ref of (i.body ?? "").matchAll(
          /\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\s*:?\s+#(\d+)\b/gi,
        )) {
          const linked = issues.get(Number(ref[1]));
          if (linked && !linked.pull) closeIssue(linked);
        }
      }
      return {
        status: 200,
        body: { sha: p.mergeCommitSha, merged: true, message: "Pull Request successfully merged" },
      };
    }),
    R("GET", "{repo}/commits/([^/]+)/check-runs", (m, ctx) => {
      const sha = decodeURIComponent(m[3]!);
      const state = checks.get(sha);
      const name = ctx.query.get("check_name");
      const runs = (state?.runs ?? [])
        .filter((r) => !name || r.spec.name === name)
        .map((r) => checkRunJson(ctx.base, sha, state!, r))
        .sort((a, b) => b.id - a.id);
      return list(runs, ctx, "check_runs");
    }),
    R("POST", "{repo}/check-runs/(\\d+)/rerequest", (m) => {
      if (!permissions.push) return noPush("checks=write");
      const id = Number(m[3]);
      for (const [sha, state] of checks) {
        const run = state.runs.find((r) => r.id === id);
        if (!run) continue;
        if (run.spec.status !== "completed")
          return validation([
            { resource: "CheckRun", code: "custom", message: "This check run is not rerequestable" },
          ]);
        rerun(sha, state, run.group, { checkRunId: id });
        return { status: 201, body: {} };
      }
      return notFound();
    }),
    R("GET", "{repo}/actions/runs", (_m, ctx) => {
      const headSha = ctx.query.get("head_sha");
      const status = ctx.query.get("status");
      const branch = ctx.query.get("branch");
      const runs = [...checks.entries()]
        .filter(([sha]) => !headSha || sha === headSha)
        .flatMap(([sha, state]) =>
          [...state.groups.entries()]
            .filter(([, g]) => g.workflowRunId !== null)
            .map(([group]) => workflowRunJson(ctx.base, sha, state, group)),
        )
        .filter((r) => !status || r.status === status || r.conclusion === status)
        .filter((r) => !branch || r.head_branch === branch)
        .sort((a, b) => (b.id ?? 0) - (a.id ?? 0));
      return list(runs, ctx, "workflow_runs");
    }),
    R("GET", "{repo}/actions/runs/(\\d+)/attempts/(\\d+)", (m, ctx) => {
      const [id, attempt] = [Number(m[3]), Number(m[4])];
      for (const [sha, state] of checks) {
        const entry = [...state.groups.entries()].find(([, g]) => g.workflowRunId === id);
        if (!entry) continue;
        const [group, g] = entry;
        if (attempt < 1 || attempt > g.runAttempt) return notFound();
        const run = workflowRunJson(ctx.base, sha, state, group);
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
    R("GET", "{repo}/collaborators/([^/]+)/permission", (m) => {
      const name = decodeURIComponent(m[3]!);
      const role = collaborators.get(name.toLowerCase());
      if (role === undefined) return notFound();
      // `permission` is the legacy level (maintain reads as write, triage as read); role_name the role.
      const permission = role === "maintain" ? "write" : role === "triage" ? "read" : role;
      return { status: 200, body: { permission, role_name: role, user: user(name) } };
    }),
    R("POST", "{repo}/actions/runs/(\\d+)/rerun-failed-jobs", (m) => {
      if (!permissions.push) return noPush("actions=write");
      const id = Number(m[3]);
      for (const [sha, state] of checks) {
        const entry = [...state.groups.entries()].find(([, g]) => g.workflowRunId === id);
        if (!entry) continue;
        const [group] = entry;
        const { status, failed } = runState(state, group);
        if (status !== "completed") return error(403, "This workflow is already running");
        // With no failed job there is nothing to rerun; GitHub accepts the request all the same.
        if (failed) rerun(sha, state, group, { workflowRunId: id });
        return { status: 201, body: {} };
      }
      return notFound();
    }),
    R("GET", "{repo}/actions/workflows", (_m, ctx) =>
      list(
        workflows.map((w) => ({
          id: w.id,
          node_id: `W_${w.id}`,
          name: w.name,
          path: w.path,
          state: w.state,
          created_at: w.created_at,
          updated_at: w.created_at,
          url: `${repoUrl(ctx.base)}/actions/workflows/${w.id}`,
          html_url: `${htmlRepo}/blob/${defaultBranch}/${w.path}`,
          badge_url: `${htmlRepo}/workflows/${encodeURIComponent(w.name)}/badge.svg`,
        })),
        ctx,
        "workflows",
      ),
    ),
  ];

  function uniqueLabels(names: string[]): string[] {
    const out: string[] = [];
    for (const n of names) {
      const canonical = label(n).name;
      if (!out.includes(canonical)) out.push(canonical);
    }
    return out;
  }

  function editLabels(m: string[], ctx: Ctx, mode: "add" | "set"): Reply {
    const i = getIssue(m[3]);
    if (!i) return notFound();
    if (!permissions.push) return noPush("issues=write; pull_requests=write");
    // Both `{ labels: [...] }` and a bare array are accepted, as on GitHub.
    const raw = Array.isArray(ctx.body) ? ctx.body : obj(ctx.body).labels;
    if (
      !Array.isArray(raw) ||
      raw.some((l) => typeof l !== "string" && !(l && typeof l === "object" && "name" in l))
    ) {
      return validation(
        [{ resource: "Label", code: "invalid", field: "labels" }],
        "Invalid request.\n\nFor 'links/0/schema', nil is not an array.",
      );
    }
    const names = raw.map((l) => (typeof l === "string" ? l : String((l as { name: unknown }).name)));
    i.labels = uniqueLabels(mode === "set" ? names : [...i.labels, ...names]);
    i.updated_at = now();
    return { status: 200, body: i.labels.map((l) => labelJson(ctx.base, l)) };
  }

  function commentJson(base: string, i: IssueRec, c: CommentRec) {
    return {
      id: c.id,
      node_id: c.node_id,
      body: c.body,
      user: user(c.user),
      created_at: c.created_at,
      updated_at: c.created_at,
      url: `${repoUrl(base)}/issues/comments/${c.id}`,
      html_url: `${htmlRepo}/issues/${i.number}#issuecomment-${c.id}`,
      issue_url: `${repoUrl(base)}/issues/${i.number}`,
    };
  }

  function reviewJson(i: IssueRec, r: ReviewRec) {
    return {
      id: r.id,
      node_id: r.node_id,
      user: user(r.user),
      body: r.body,
      state: r.state,
      commit_id: r.commit_id,
      submitted_at: r.submitted_at,
      html_url: `${htmlRepo}/pull/${i.number}#pullrequestreview-${r.id}`,
    };
  }

  function blockedReason(p: PullRec): string {
    const rules = protections.get(p.baseRef);
    const approvals = p.reviews.filter((r) => r.state === "APPROVED" && r.commit_id === p.headSha).length;
    if (rules && approvals < rules.requiredApprovals) {
      return `At least ${rules.requiredApprovals} approving review${rules.requiredApprovals === 1 ? " is" : "s are"} required by reviewers with write access.`;
    }
    const failing = rules?.requiredChecks.find((name) => {
      const run = checks.get(p.headSha)?.runs.find((r) => r.spec.name === name);
      return !run || run.spec.status !== "completed" || run.spec.conclusion !== "success";
    });
    return failing ? `Required status check "${failing}" is expected.` : "Pull Request is not mergeable";
  }

  // ---------- HTTP ----------

  function defaultFault(f: Fault): { body: unknown; headers: Record<string, string> } {
    const resetAt = String(Math.floor(clock.now().getTime() / 1000) + 3600);
    switch (f.status) {
      case 401:
        return { body: { message: "Bad credentials", documentation_url: DOCS, status: "401" }, headers: {} };
      case 403:
        // A 403 with a body of its own is a plain refusal; without one it is the primary rate limit.
        if (f.body !== undefined) return { body: f.body, headers: {} };
        return {
          body: {
            message: `API rate limit exceeded for user ID ${idOf(login)}.`,
            documentation_url: `${DOCS}/overview/rate-limits-for-the-rest-api`,
            status: "403",
          },
          headers: {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-used": "5000",
            "x-ratelimit-reset": resetAt,
          },
        };
      case 429:
        return {
          body: {
            message:
              "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            documentation_url: DOCS,
            status: "429",
          },
          headers: { "retry-after": "60" },
        };
      case 422:
        return {
          body: {
            message: "Validation Failed",
            errors: [
              { resource: "Issue", code: "custom", field: "body", message: "body is too long (simulated)" },
            ],
            documentation_url: DOCS,
            status: "422",
          },
          headers: {},
        };
      default:
        return {
          body: {
            message: f.status >= 500 ? "Server Error" : (STATUS_CODES[f.status] ?? "Error"),
            documentation_url: DOCS,
            status: String(f.status),
          },
          headers: {},
        };
    }
  }

  function takeFault(method: string, path: string): Fault | undefined {
    const idx = faults.findIndex(
      (f) =>
        (!f.method || f.method.toUpperCase() === method) &&
        (!f.path || (typeof f.path === "string" ? f.path === path : f.path.test(path))),
    );
    if (idx < 0) return undefined;
    const f = faults[idx]!;
    if (--f.left <= 0) faults.splice(idx, 1);
    return f;
  }

  function authorized(req: IncomingMessage): Reply | null {
    if (!opts.token) return null;
    const header = req.headers.authorization;
    if (!header) return error(401, "Requires authentication");
    const m = /^(?:token|bearer)\s+(.+)$/i.exec(header);
    return m && m[1] === opts.token ? null : error(401, "Bad credentials");
  }

  function route(method: string, ctx: Ctx): Reply {
    const path = ctx.url.pathname.replace(/\/+$/, "") || "/";
    for (const r of routes) {
      if (r.method !== method) continue;
      const m = r.re.exec(path);
      if (!m) continue;
      if (r.repoScoped && !inRepo(m)) return notFound();
      return r.handler(m, ctx);
    }
    return notFound();
  }

  async function readBody(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  }

  function send(res: ServerResponse, reply: Reply, authed: boolean) {
    apiCalls++;
    const headers: Record<string, string> = {
      "content-type": "application/json; charset=utf-8",
      "x-github-request-id": `SIM:${apiCalls}`,
      "x-github-api-version-selected": "2022-11-28",
      "x-ratelimit-limit": "5000",
      "x-ratelimit-remaining": String(Math.max(0, 5000 - apiCalls)),
      "x-ratelimit-used": String(apiCalls),
      "x-ratelimit-reset": String(Math.floor(clock.now().getTime() / 1000) + 3600),
      "x-ratelimit-resource": "core",
      ...(authed && opts.scopes ? { "x-oauth-scopes": opts.scopes.join(", ") } : {}),
      ...reply.headers,
    };
    const body = reply.status === 204 || reply.body === undefined ? "" : JSON.stringify(reply.body);
    res.writeHead(reply.status, headers);
    res.end(body);
  }

  const server = createServer((req, res) => {
    void (async () => {
      const method = (req.method ?? "GET").toUpperCase();
      const base = `http://${req.headers.host ?? "127.0.0.1"}`;
      const url = new URL(req.url ?? "/", base);
      const raw = await readBody(req);
      let body: unknown;
      let parseFailed = false;
      if (raw) {
        try {
          body = JSON.parse(raw);
        } catch {
          parseFailed = true;
          body = raw;
        }
      }
      const call: RecordedCall = {
        method,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        body,
        status: 0,
      };
      calls.push(call);
      const denied = authorized(req);
      let reply: Reply;
      if (denied) reply = denied;
      else {
        const fault = takeFault(method, url.pathname);
        if (fault) {
          const d = defaultFault(fault);
          const headers = Object.fromEntries(
            Object.entries({ ...d.headers, ...fault.headers }).map(([k, v]) => [k.toLowerCase(), String(v)]),
          );
          reply = { status: fault.status, body: fault.body ?? d.body, headers };
        } else if (parseFailed) reply = error(400, "Problems parsing JSON");
        else reply = route(method, { method, url, query: url.searchParams, body, base });
      }
      call.status = reply.status;
      send(res, reply, !denied);
    })().catch((err: unknown) => {
      // A bug in the stand-in must show up as a 500, not a hung request.
      if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
      res.end(
        JSON.stringify({ message: `stand-in error: ${err instanceof Error ? err.message : String(err)}` }),
      );
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  // ---------- controls ----------

  const api: GitHubStandIn = {
    url: `http://127.0.0.1:${port}`,
    owner,
    repo: repoName,
    login,
    calls,
    // Idempotent, so a test may close it early and its teardown close it again.
    close: () =>
      new Promise<void>((resolve, reject) => {
        if (!server.listening) return resolve();
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),

    addIssue(spec) {
      const number = spec.number ?? nextNumber();
      if (issues.has(number)) throw new Error(`issue #${number} already exists`);
      const created = now();
      issues.set(number, {
        id: nextId(),
        number,
        node_id: `I_kwDOsim${String(number).padStart(6, "0")}`,
        title: spec.title,
        body: spec.body ?? "",
        state: spec.state ?? "open",
        state_reason: spec.state === "closed" ? "completed" : null,
        labels: uniqueLabels(spec.labels ?? []),
        comments: [],
        user: spec.author ?? login,
        created_at: created,
        updated_at: created,
        closed_at: spec.state === "closed" ? created : null,
      });
      return number;
    },

    addPull(spec) {
      const number = spec.number ?? nextNumber();
      if (issues.has(number)) throw new Error(`issue or pull request #${number} already exists`);
      api.addIssue({
        number,
        title: spec.title,
        body: spec.body ?? "",
        labels: spec.labels ?? [],
        author: spec.author ?? "dev-agent-1",
      });
      const i = issues.get(number)!;
      // A pull request is an issue with a pull request attached, sharing its number (and here its node id).
      i.node_id = `PR_kwDOsim${String(number).padStart(6, "0")}`;
      i.pull = {
        id: nextId(),
        headSha: spec.headSha,
        shas: [spec.headSha],
        headRef: spec.headRef,
        headRepo: spec.headRepo === undefined ? fullName : spec.headRepo,
        baseRef: spec.baseRef ?? defaultBranch,
        files: spec.files ?? [],
        mergeable: spec.mergeable === undefined ? true : spec.mergeable,
        mergeableState:
          spec.mergeableState ??
          (spec.mergeable === false ? "dirty" : spec.mergeable === null ? "unknown" : "clean"),
        merged: false,
        mergedAt: null,
        mergeCommitSha: null,
        mergeMethod: null,
        reviews: [],
      };
      return number;
    },

    pushHead(number, sha, files) {
      const p = issues.get(number)?.pull;
      if (!p) throw new Error(`no pull request #${number}`);
      p.headSha = sha;
      p.shas.push(sha);
      if (files) p.files = files;
      issues.get(number)!.updated_at = now();
    },

    setMergeable(number, mergeable, state) {
      const p = issues.get(number)?.pull;
      if (!p) throw new Error(`no pull request #${number}`);
      p.mergeable = mergeable;
      p.mergeableState = state ?? (mergeable === false ? "dirty" : mergeable === null ? "unknown" : "clean");
    },

    setCheckRuns: (sha, runs) => scriptChecks(sha, [runs]),
    scriptChecks,
    onRerun: (cb) => void rerunListeners.push(cb),
    reruns: () => rerunLog.map((e) => ({ ...e })),

    addWorkflow(spec) {
      const id = nextId();
      workflows.push({
        id,
        name: spec.name,
        path: spec.path ?? `.github/workflows/${spec.name.toLowerCase().replace(/[^a-z0-9]+/g, "-")}.yml`,
        state: spec.state ?? "active",
        created_at: now(),
      });
      return id;
    },

    setCollaborator(name, role) {
      collaborators.set(name.toLowerCase(), role);
    },

    protectBranch(branch, rules = {}) {
      protections.set(branch, {
        requiredChecks: rules.requiredChecks ?? [],
        requiredApprovals: rules.requiredApprovals ?? 0,
      });
    },

    failNext(fault) {
      faults.push({ ...fault, left: fault.count ?? 1 });
    },

    setProject(spec) {
      const ownerType = spec.ownerType ?? (spec.owner === login ? "user" : "organization");
      const existing = projects.findIndex((p) => p.owner === spec.owner && p.number === spec.number);
      const id = `PVT_kwDOsim${spec.number}${ownerType === "user" ? "u" : "o"}`;
      const rec: ProjectRec = {
        id,
        owner: spec.owner,
        ownerType,
        number: spec.number,
        title: spec.title,
        fieldId: `PVTSSF_sim${spec.number}`,
        options: spec.statuses.map((name) => ({ id: sha1(`${id}:${name}`).slice(0, 8), name })),
        items: existing >= 0 ? projects[existing]!.items : [],
      };
      if (existing >= 0) projects[existing] = rec;
      else projects.push(rec);
      return id;
    },

    issue(number) {
      const i = issues.get(number);
      if (!i) return undefined;
      return {
        number: i.number,
        nodeId: i.node_id,
        title: i.title,
        body: i.body,
        state: i.state,
        stateReason: i.state_reason,
        labels: [...i.labels],
        comments: i.comments.map((c) => ({ id: c.id, body: c.body, user: c.user, createdAt: c.created_at })),
        isPullRequest: i.pull !== undefined,
      };
    },

    pull(number) {
      const i = issues.get(number);
      const p = i?.pull;
      if (!i || !p) return undefined;
      return {
        number,
        state: i.state,
        headSha: p.headSha,
        mergeable: p.mergeable,
        mergeableState: p.mergeableState,
        merged: p.merged,
        mergeMethod: p.mergeMethod,
        mergeCommitSha: p.mergeCommitSha,
        mergedAt: p.mergedAt,
        reviews: p.reviews.map((r) => ({
          id: r.id,
          event: r.event,
          state: r.state,
          body: r.body,
          commitId: r.commit_id,
          user: r.user,
        })),
      };
    },

    labels: () =>
      [...repoLabels.values()].map((l) => ({ name: l.name, color: l.color, description: l.description })),

    projectItems: () =>
      projects.flatMap((p) =>
        p.items.map((item) => ({
          project: `${p.owner}#${p.number}`,
          projectId: p.id,
          itemId: item.id,
          contentId: item.contentId,
          issueNumber: contentByNode(item.contentId)?.number ?? null,
          status: p.options.find((o) => o.id === item.optionId)?.name ?? null,
        })),
      ),
  };
  return api;
}
