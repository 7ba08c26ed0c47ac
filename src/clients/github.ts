import type { Octokit } from "@octokit/rest";
import { type Clock, systemClock } from "../clock.js";
import { EoaError, isEoaError } from "../errors.js";
import { type Logger, silentLogger } from "../log.js";
import { mapGitHubError, networkCause, type ErrorContext } from "./github-errors.js";

/**
 * A thin, typed adapter over Octokit: every method returns a small plain object (never a raw
 * Octokit response), and every failure is an EoaError with a stable `GITHUB_*` code and a next
 * step. Rules (what to merge, when to rerun) are decided elsewhere; this file only talks to GitHub.
 *
 * Decisions worth knowing:
 * - Retries (plugin-retry) cover 5xx and network failures only; 405/409/429 are not retried
 *   because a repeat cannot change their answer within seconds.
 * - The throttling plugin never sleeps long in-process: a rate limit is retried once, and only if
 *   GitHub asks for at most `MAX_RATE_LIMIT_WAIT_S` seconds; otherwise it surfaces as
 *   GITHUB_RATE_LIMITED with the reset time, so the poll cycle can move on.
 * - Octokit's own log goes to the Logger at debug level and without its option objects (they carry
 *   the Authorization header).
 */

/** Octokit with the retry and throttling plugins (their types add no methods the client uses). */
type OctokitInstance = Octokit;

/** Octokit is loaded on the first GitHub call: a server answers `initialize` without paying for it. */
async function loadOctokit() {
  const [{ Octokit }, { retry }, { throttling }] = await Promise.all([
    import("@octokit/rest"),
    import("@octokit/plugin-retry"),
    import("@octokit/plugin-throttling"),
  ]);
  // Registered before the retry plugin, so it sees each failure first.
  return Octokit.plugin(unresolvedHostNotRetried, retry, throttling);
}

/**
 * Octokit reports a request that got no answer at all as status 500, which the retry plugin then
 * retries (1 s, 4 s, 9 s). A host name that does not resolve will not resolve a second later:
 * such a failure gets status 0 (there was no HTTP status), which is never retried.
 */
function unresolvedHostNotRetried(octokit: { hook: Octokit["hook"] }): void {
  octokit.hook.error("request", (error) => {
    if (networkCause(error)?.code === "ENOTFOUND") (error as { status?: number }).status = 0;
    throw error;
  });
}

const MAX_RATE_LIMIT_WAIT_S = 5;
/** Statuses a retry cannot fix; the plugin's default list plus 405/409 (merge) and 429 (throttling's job). */
const DO_NOT_RETRY = [400, 401, 403, 404, 405, 409, 410, 422, 429, 451];

export interface GitHubClientOptions {
  /** `owner/name`. */
  repo: string;
  token?: string | undefined;
  /** Default `https://api.github.com`; GraphQL goes to `<apiUrl>/graphql` (or `/api/graphql` on GHES). */
  apiUrl?: string | undefined;
  logger?: Logger | undefined;
  /** Retries for 5xx / network failures (default 3). */
  retries?: number | undefined;
  /** Base of the quadratic retry backoff in ms (default 1000: waits 1 s, 4 s, 9 s). Tests use a few ms. */
  retryBaseMs?: number | undefined;
  /** GitHub's recommended pacing of writes (default true). The stand-ins turn it off to run fast. */
  throttle?: boolean | undefined;
  /** Applied to issue and PR text read, and to comments and reviews written: known secrets never enter or leave. */
  redact?: ((text: string) => string) | undefined;
  /** Time budget of one call, retries included (default 30 s). */
  timeoutMs?: number | undefined;
  /** Used to turn `retry-after` into a reset time. */
  clock?: Clock | undefined;
}

export interface GitHubAuth {
  login: string;
  /** Classic token scopes from `x-oauth-scopes`; null when GitHub does not say (fine-grained tokens, apps). */
  scopes: string[] | null;
}

export interface GitHubRepo {
  fullName: string;
  defaultBranch: string;
  private: boolean;
  /** The token's permissions on the repository; absent when GitHub does not report them. */
  permissions?: { push: boolean; admin: boolean };
}

export interface BranchPermission {
  branch: string;
  /** From the repository permissions; null when GitHub does not report them. */
  canPush: boolean | null;
  admin: boolean | null;
  /** `unknown` when the token may not read protection (it needs admin rights). */
  protection: "none" | "protected" | "unknown";
  requiredChecks: string[];
  requiredApprovals: number | null;
}

export interface GitHubIssue {
  number: number;
  nodeId: string;
  title: string;
  body: string;
  state: "open" | "closed";
  labels: string[];
  isPullRequest: boolean;
  htmlUrl: string;
}

export interface GitHubWorkflow {
  id: number;
  name: string;
  path: string;
  state: string;
}

export interface GitHubPull {
  number: number;
  title: string;
  body: string;
  state: "open" | "closed";
  merged: boolean;
  /** The merge commit, once merged (before that GitHub shows a test merge: not used). */
  mergeCommitSha: string | null;
  /** null while GitHub is still computing it. */
  mergeable: boolean | null;
  mergeableState: string;
  headSha: string;
  headRef: string;
  /** null when the head repository (a fork) was deleted. */
  headRepoFullName: string | null;
  baseRef: string;
  baseRepoFullName: string;
  additions: number;
  deletions: number;
  changedFiles: number;
  htmlUrl: string;
}

export interface GitHubCheckRun {
  id: number;
  name: string;
  status: string;
  conclusion: string | null;
  htmlUrl: string | null;
  detailsUrl: string | null;
  output?: { title: string | null; summary: string | null; text: string | null };
  checkSuiteId?: number;
  /** The app that reported it (`github-actions` for Actions). */
  appSlug?: string;
}

export interface GitHubWorkflowRun {
  id: number;
  name: string;
  headSha: string;
  status: string | null;
  conclusion: string | null;
  checkSuiteId: number | undefined;
  runAttempt: number | undefined;
  htmlUrl: string;
}

/** A workflow run as the branch's history shows it (preflight: is CI green, does it flip?). */
export interface GitHubBranchRun {
  id: number;
  workflowId: number;
  name: string;
  headSha: string;
  status: string | null;
  conclusion: string | null;
  /** The latest attempt; earlier ones are read with `getWorkflowRunAttempt`. */
  runAttempt: number;
  htmlUrl: string;
}

/** A user's permission on the repository: `admin`, `write`, `read` or `none` (maintain shows as write). */
export interface GitHubCollaboratorPermission {
  login: string;
  permission: string;
  /** The finer role (`maintain`, `triage`, a custom role), when GitHub gives it. */
  roleName: string | null;
}

export interface RerunResult {
  /** Workflow runs whose failed jobs were rerun. */
  workflowRuns: number[];
  /** Non-Actions check runs that were re-requested. */
  checkRuns: number[];
  /** Failed checks that could not be rerun, with why. */
  skipped: { checkRunId: number; name: string; reason: string }[];
}

export type ReviewEvent = "APPROVE" | "REQUEST_CHANGES" | "COMMENT";
export type MergeMethod = "merge" | "squash" | "rebase";

export interface GitHubProject {
  id: string;
  title: string;
  /** The single-select field named "Status"; null when the project has none. */
  statusField: { id: string; options: { id: string; name: string }[] } | null;
}

export class GitHubClient {
  readonly owner: string;
  readonly repo: string;
  private octokit!: OctokitInstance;
  private ready: Promise<void> | undefined;
  private readonly build: (Ctor: Awaited<ReturnType<typeof loadOctokit>>) => OctokitInstance;
  private readonly token: string | undefined;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly redactText: (text: string) => string;

  constructor(opts: GitHubClientOptions) {
    const [owner, repo, ...rest] = opts.repo.split("/");
    if (!owner || !repo || rest.length > 0) {
      throw new EoaError(
        "CONFIG_INVALID",
        `github.repo must be "owner/name", got ${JSON.stringify(opts.repo)}`,
        "set EOA_REPO (or github.repo) to owner/name and restart the server",
      );
    }
    this.owner = owner;
    this.repo = repo;
    this.token = opts.token || undefined;
    this.redactText = opts.redact ?? ((t) => t);
    this.logger = opts.logger ?? silentLogger;
    this.clock = opts.clock ?? systemClock;
    const log = this.logger;
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const retryAt =
      (what: string) =>
      (retryAfter: number, options: { method: string; url: string }, _o: unknown, retryCount: number) => {
        const retrying = retryCount < 1 && retryAfter <= MAX_RATE_LIMIT_WAIT_S;
        log.warn(`GitHub ${what}`, {
          method: options.method,
          url: options.url,
          retry_after_s: retryAfter,
          retrying,
        });
        return retrying;
      };
    this.build = (MyOctokit) => {
      const octokit = new MyOctokit({
        auth: this.token,
        baseUrl: (opts.apiUrl ?? "https://api.github.com").replace(/\/+$/, ""),
        userAgent: "eoa-mcp",
        log: {
          // Octokit passes its request options (Authorization header included) as the second argument: never forward it.
          debug: () => {},
          info: (msg: string) => log.debug(this.scrub(String(msg))),
          warn: (msg: string) => log.warn(this.scrub(String(msg))),
          // Failed requests are mapped and surfaced to the caller, who decides whether they matter.
          error: (msg: string) => log.debug(this.scrub(String(msg))),
        },
        retry: {
          retries: opts.retries ?? 3,
          doNotRetry: DO_NOT_RETRY,
          retryAfterBaseValue: opts.retryBaseMs ?? 1000,
        },
        throttle:
          opts.throttle === false
            ? { enabled: false }
            : { onRateLimit: retryAt("rate limit"), onSecondaryRateLimit: retryAt("secondary rate limit") },
      });
      // One deadline per call (its retries included), so a hung connection cannot stall a poll cycle.
      octokit.hook.before("request", (options) => {
        options.request = { ...options.request, signal: AbortSignal.timeout(timeoutMs) };
      });
      return octokit as unknown as OctokitInstance;
    };
  }

  get fullName(): string {
    return `${this.owner}/${this.repo}`;
  }

  // ---- identity and repository ----

  async getAuth(): Promise<GitHubAuth> {
    return this.call({ op: "read the authenticated user" }, async () => {
      const res = await this.octokit.rest.users.getAuthenticated();
      const header = res.headers["x-oauth-scopes"];
      const scopes =
        typeof header === "string"
          ? header
              .split(",")
              .map((s) => s.trim())
              .filter(Boolean)
          : null;
      return { login: res.data.login, scopes };
    });
  }

  async getRepo(): Promise<GitHubRepo> {
    return this.call({ op: `read repository ${this.fullName}` }, async () => {
      const { data } = await this.octokit.rest.repos.get(this.params());
      return {
        fullName: data.full_name,
        defaultBranch: data.default_branch,
        private: data.private,
        ...(data.permissions
          ? { permissions: { push: data.permissions.push, admin: data.permissions.admin } }
          : {}),
      };
    });
  }

  /** Push permission evidence for a branch: repository permissions, plus branch protection when readable. */
  async getBranchPermission(branch: string): Promise<BranchPermission> {
    const repo = await this.getRepo();
    const out: BranchPermission = {
      branch,
      canPush: repo.permissions?.push ?? null,
      admin: repo.permissions?.admin ?? null,
      protection: "unknown",
      requiredChecks: [],
      requiredApprovals: null,
    };
    try {
      const p = await this.call({ op: `read protection of branch ${branch}` }, async () => {
        const { data } = await this.octokit.rest.repos.getBranchProtection({ ...this.params(), branch });
        return data;
      });
      const checks = p.required_status_checks;
      out.protection = "protected";
      out.requiredChecks = [
        ...new Set([...(checks?.contexts ?? []), ...(checks?.checks ?? []).map((c) => c.context)]),
      ];
      out.requiredApprovals = p.required_pull_request_reviews?.required_approving_review_count ?? null;
    } catch (err) {
      // Only admins may read protection: to an admin a 404 means "Branch not protected", to anyone
      // else GitHub answers 404 whether or not it is. A 403 (fine-grained tokens) says as much.
      if (isEoaError(err) && err.code === "GITHUB_NOT_FOUND")
        out.protection = out.admin === false ? "unknown" : "none";
      else if (!(isEoaError(err) && err.code === "GITHUB_FORBIDDEN")) throw err;
    }
    return out;
  }

  async listWorkflows(): Promise<GitHubWorkflow[]> {
    return this.call({ op: "list Actions workflows" }, async () => {
      const items = await this.octokit.paginate(this.octokit.rest.actions.listRepoWorkflows, {
        ...this.params(),
        per_page: 100,
      });
      return items.map((w) => ({ id: w.id, name: w.name, path: w.path, state: w.state }));
    });
  }

  /** The latest workflow runs on `branch`, newest first: one page, recent history only. */
  async listBranchWorkflowRuns(branch: string, perPage = 50): Promise<GitHubBranchRun[]> {
    return this.call({ op: `list workflow runs on ${branch}` }, async () => {
      const { data } = await this.octokit.rest.actions.listWorkflowRunsForRepo({
        ...this.params(),
        branch,
        per_page: perPage,
      });
      return data.workflow_runs.map((r) => ({
        id: r.id,
        workflowId: r.workflow_id,
        name: r.name ?? "",
        headSha: r.head_sha,
        status: r.status,
        conclusion: r.conclusion,
        runAttempt: r.run_attempt ?? 1,
        htmlUrl: r.html_url,
      }));
    });
  }

  /** One earlier attempt of a workflow run (a rerun replaces the run's listed result). */
  async getWorkflowRunAttempt(
    runId: number,
    attempt: number,
  ): Promise<{ status: string | null; conclusion: string | null }> {
    return this.call({ op: `read attempt ${attempt} of workflow run ${runId}` }, async () => {
      const { data } = await this.octokit.rest.actions.getWorkflowRunAttempt({
        ...this.params(),
        run_id: runId,
        attempt_number: attempt,
      });
      return { status: data.status, conclusion: data.conclusion };
    });
  }

  async getCollaboratorPermission(login: string): Promise<GitHubCollaboratorPermission> {
    return this.call({ op: `read the permission of ${login} on ${this.fullName}` }, async () => {
      const { data } = await this.octokit.rest.repos.getCollaboratorPermissionLevel({
        ...this.params(),
        username: login,
      });
      return { login, permission: data.permission, roleName: data.role_name ?? null };
    });
  }

  // ---- issues and labels ----

  async getIssue(number: number): Promise<GitHubIssue> {
    return this.call({ op: `read issue #${number}` }, async () => {
      const { data } = await this.octokit.rest.issues.get({ ...this.params(), issue_number: number });
      return {
        number: data.number,
        nodeId: data.node_id,
        title: this.redactText(data.title),
        body: this.redactText(data.body ?? ""),
        state: data.state === "closed" ? "closed" : "open",
        labels: labelNames(data.labels),
        isPullRequest: data.pull_request != null,
        htmlUrl: data.html_url,
      };
    });
  }

  async comment(number: number, body: string): Promise<{ id: number; htmlUrl: string }> {
    return this.call({ op: `comment on #${number}` }, async () => {
      const { data } = await this.octokit.rest.issues.createComment({
        ...this.params(),
        issue_number: number,
        body: this.redactText(body),
      });
      return { id: data.id, htmlUrl: data.html_url };
    });
  }

  /** The bodies of an issue's (or a PR's) most recent comments, newest last. */
  async listCommentBodies(number: number): Promise<string[]> {
    return this.call({ op: `list comments of #${number}` }, async () => {
      const { data } = await this.octokit.rest.issues.listComments({
        ...this.params(),
        issue_number: number,
        per_page: 100,
      });
      return data.map((c) => c.body ?? "");
    });
  }

  /** Adds (present) or removes one label of an issue or PR; removing one it lacks is done already. */
  async markLabel(number: number, label: string, present: boolean): Promise<void> {
    await this.call({ op: `${present ? "add" : "remove"} label ${label} on #${number}` }, async () => {
      if (present) {
        await this.octokit.rest.issues.addLabels({ ...this.params(), issue_number: number, labels: [label] });
        return;
      }
      try {
        await this.octokit.rest.issues.removeLabel({ ...this.params(), issue_number: number, name: label });
      } catch (err) {
        if ((err as { status?: number }).status !== 404) throw err;
      }
    });
  }

  async closeIssue(number: number): Promise<void> {
    await this.call({ op: `close issue #${number}` }, () =>
      this.octokit.rest.issues.update({
        ...this.params(),
        issue_number: number,
        state: "closed",
        state_reason: "completed",
      }),
    );
  }

  /** Replaces every label of the issue; returns the labels it now has. */
  async setLabels(number: number, labels: string[]): Promise<string[]> {
    return this.call({ op: `set labels of #${number}` }, async () => {
      const { data } = await this.octokit.rest.issues.setLabels({
        ...this.params(),
        issue_number: number,
        labels,
      });
      return labelNames(data);
    });
  }

  // ---- pull requests ----

  async getPull(number: number): Promise<GitHubPull> {
    return this.call({ op: `read pull request #${number}` }, async () => {
      const { data } = await this.octokit.rest.pulls.get({ ...this.params(), pull_number: number });
      return {
        number: data.number,
        title: this.redactText(data.title),
        body: this.redactText(data.body ?? ""),
        state: data.state === "closed" ? "closed" : "open",
        merged: data.merged,
        mergeCommitSha: data.merged ? (data.merge_commit_sha ?? null) : null,
        mergeable: data.mergeable,
        mergeableState: data.mergeable_state,
        headSha: data.head.sha,
        headRef: data.head.ref,
        headRepoFullName: data.head.repo?.full_name ?? null,
        baseRef: data.base.ref,
        baseRepoFullName: data.base.repo.full_name,
        additions: data.additions,
        deletions: data.deletions,
        changedFiles: data.changed_files,
        htmlUrl: data.html_url,
      };
    });
  }

  async createReview(
    number: number,
    review: { event: ReviewEvent; body: string; commitId?: string },
  ): Promise<{ id: number; state: string }> {
    return this.call({ op: `review pull request #${number}` }, async () => {
      const { data } = await this.octokit.rest.pulls.createReview({
        ...this.params(),
        pull_number: number,
        event: review.event,
        body: this.redactText(review.body),
        ...(review.commitId ? { commit_id: review.commitId } : {}),
      });
      return { id: data.id, state: data.state };
    });
  }

  /**
   * Merges only if the head is still `sha` (GitHub answers 409 otherwise), so that what was
   * reviewed is what gets merged.
   */
  async merge(
    number: number,
    opts: { method: MergeMethod; sha: string; title?: string; message?: string },
  ): Promise<{ merged: boolean; sha: string; message: string }> {
    return this.call({ op: `merge pull request #${number}`, merge: true }, async () => {
      const { data } = await this.octokit.rest.pulls.merge({
        ...this.params(),
        pull_number: number,
        merge_method: opts.method,
        sha: opts.sha,
        ...(opts.title !== undefined ? { commit_title: opts.title } : {}),
        ...(opts.message !== undefined ? { commit_message: opts.message } : {}),
      });
      return { merged: data.merged, sha: data.sha, message: data.message };
    });
  }

  // ---- checks and Actions ----

  async listCheckRuns(sha: string): Promise<GitHubCheckRun[]> {
    return this.call({ op: `list check runs of ${sha.slice(0, 12)}` }, async () => {
      const runs = await this.octokit.paginate(this.octokit.rest.checks.listForRef, {
        ...this.params(),
        ref: sha,
        filter: "latest",
        per_page: 100,
      });
      return runs.map((r) => ({
        id: r.id,
        name: r.name,
        status: r.status,
        conclusion: r.conclusion,
        htmlUrl: r.html_url,
        detailsUrl: r.details_url,
        output: { title: r.output.title, summary: r.output.summary, text: r.output.text },
        ...(r.check_suite ? { checkSuiteId: r.check_suite.id } : {}),
        ...(r.app?.slug ? { appSlug: r.app.slug } : {}),
      }));
    });
  }

  async listWorkflowRuns(headSha: string): Promise<GitHubWorkflowRun[]> {
    return this.call({ op: `list workflow runs of ${headSha.slice(0, 12)}` }, async () => {
      const runs = await this.octokit.paginate(this.octokit.rest.actions.listWorkflowRunsForRepo, {
        ...this.params(),
        head_sha: headSha,
        per_page: 100,
      });
      return runs.map((r) => ({
        id: r.id,
        name: r.name ?? "",
        headSha: r.head_sha,
        status: r.status,
        conclusion: r.conclusion,
        checkSuiteId: r.check_suite_id,
        runAttempt: r.run_attempt,
        htmlUrl: r.html_url,
      }));
    });
  }

  /** Reruns the failed (and cancelled) jobs of a completed workflow run; GitHub answers 403 while it still runs. */
  async rerunFailedJobs(runId: number): Promise<void> {
    await this.call({ op: `rerun failed jobs of workflow run ${runId}` }, () =>
      this.octokit.rest.actions.reRunWorkflowFailedJobs({ ...this.params(), run_id: runId }),
    );
  }

  /** Asks the app behind a (non-Actions) check run to run it again. */
  async rerequestCheckRun(checkRunId: number): Promise<void> {
    await this.call({ op: `re-request check run ${checkRunId}` }, () =>
      this.octokit.rest.checks.rerequestRun({ ...this.params(), check_run_id: checkRunId }),
    );
  }

  /**
   * Re-runs the named check runs of a commit (which ones is the caller's rule): an Actions check
   * through its workflow run (found by check suite id, one re-run per run), any other check by
   * re-requesting it.
   */
  async rerunChecks(sha: string, checkRunIds: readonly number[]): Promise<RerunResult> {
    const out: RerunResult = { workflowRuns: [], checkRuns: [], skipped: [] };
    if (checkRunIds.length === 0) return out;
    const checks = (await this.listCheckRuns(sha)).filter((c) => checkRunIds.includes(c.id));
    for (const id of checkRunIds.filter((i) => !checks.some((c) => c.id === i))) {
      out.skipped.push({
        checkRunId: id,
        name: `#${id}`,
        reason: `no check run ${id} on ${sha.slice(0, 12)}`,
      });
    }
    const runs = await this.listWorkflowRuns(sha);
    for (const check of checks) {
      const run = runs.find((r) => r.checkSuiteId !== undefined && r.checkSuiteId === check.checkSuiteId);
      if (run) {
        if (out.workflowRuns.includes(run.id)) continue;
        if (run.status !== "completed") {
          out.skipped.push({
            checkRunId: check.id,
            name: check.name,
            reason: `workflow run ${run.id} is still ${run.status}`,
          });
          continue;
        }
        await this.rerunFailedJobs(run.id);
        out.workflowRuns.push(run.id);
      } else {
        await this.rerequestCheckRun(check.id);
        out.checkRuns.push(check.id);
      }
    }
    return out;
  }

  // ---- Projects v2 (GraphQL) ----

  /** A Projects v2 board by owner and number: an organization's first, else a user's. */
  async getProject(ownerLogin: string, number: number): Promise<GitHubProject> {
    const op = `read project ${ownerLogin}#${number}`;
    type Found = { projectV2: ProjectNode | null } | null;
    let node: ProjectNode | null;
    try {
      const data = await this.call({ op }, () =>
        this.octokit.graphql<{ organization: Found }>(projectQuery("organization"), {
          login: ownerLogin,
          number,
        }),
      );
      node = data.organization?.projectV2 ?? null;
    } catch (err) {
      // "Could not resolve to an Organization": the owner may be a user.
      if (!(
        isEoaError(err) &&
        err.code === "GITHUB_NOT_FOUND" &&
        err.details?.graphql_path === "organization"
      ))
        throw err;
      const data = await this.call({ op }, () =>
        this.octokit.graphql<{ user: Found }>(projectQuery("user"), { login: ownerLogin, number }),
      );
      node = data.user?.projectV2 ?? null;
    }
    if (!node) {
      throw new EoaError(
        "GITHUB_NOT_FOUND",
        `GitHub has no project ${number} owned by ${ownerLogin}`,
        "check github.project (EOA_PROJECT) and that the token has the project scope",
      );
    }
    const field = node.field && "options" in node.field ? node.field : null;
    return {
      id: node.id,
      title: node.title,
      statusField: field
        ? { id: field.id, options: field.options.map((o) => ({ id: o.id, name: o.name })) }
        : null,
    };
  }

  /** Adds an issue or pull request to the board; GitHub returns the existing item when it is already there. */
  async addIssueToProject(projectId: string, contentNodeId: string): Promise<string> {
    const data = await this.call({ op: "add an issue to the project" }, () =>
      this.octokit.graphql<{ addProjectV2ItemById: { item: { id: string } } }>(
        `mutation($projectId: ID!, $contentId: ID!) {
  addProjectV2ItemById(input: { projectId: $projectId, contentId: $contentId }) { item { id } }
}`,
        { projectId, contentId: contentNodeId },
      ),
    );
    return data.addProjectV2ItemById.item.id;
  }

  async setProjectStatus(
    projectId: string,
    itemId: string,
    fieldId: string,
    optionId: string,
  ): Promise<void> {
    await this.call({ op: "set the project status of an item" }, () =>
      this.octokit.graphql(
        `mutation($projectId: ID!, $itemId: ID!, $fieldId: ID!, $optionId: String!) {
  updateProjectV2ItemFieldValue(
    input: { projectId: $projectId, itemId: $itemId, fieldId: $fieldId, value: { singleSelectOptionId: $optionId } }
  ) { projectV2Item { id } }
}`,
        { projectId, itemId, fieldId, optionId },
      ),
    );
  }

  // ---- plumbing ----

  private params(): { owner: string; repo: string } {
    return { owner: this.owner, repo: this.repo };
  }

  private async call<T>(ctx: ErrorContext, fn: () => Promise<T>): Promise<T> {
    this.ready ??= loadOctokit().then((Ctor) => {
      this.octokit = this.build(Ctor);
    });
    await this.ready;
    try {
      return await fn();
    } catch (err) {
      if (isEoaError(err)) throw err;
      throw mapGitHubError(err, ctx, {
        fullName: this.fullName,
        scrub: (t) => this.scrub(t),
        now: () => this.clock.now(),
      });
    }
  }

  /** Never lets the token into text that leaves this client. */
  private scrub(text: string): string {
    return this.redactText(this.token ? text.split(this.token).join("[REDACTED]") : text);
  }
}

interface ProjectNode {
  id: string;
  title: string;
  field: { id: string; name: string; options: { id: string; name: string }[] } | Record<string, never> | null;
}

function projectQuery(owner: "organization" | "user"): string {
  return `query($login: String!, $number: Int!) {
  ${owner}(login: $login) {
    projectV2(number: $number) {
      id
      title
      field(name: "Status") {
        ... on ProjectV2SingleSelectField { id name options { id name } }
      }
    }
  }
}`;
}

function labelNames(labels: readonly (string | { name?: string | undefined })[]): string[] {
  return labels.map((l) => (typeof l === "string" ? l : (l.name ?? ""))).filter(Boolean);
}
