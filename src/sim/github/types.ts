import type { Clock } from "../../clock.js";

/**
 * The GitHub stand-in's public face: its options, the fixture specs tests and rehearsals hand it,
 * and the views they read back. See `index.ts` for what it simulates and what it simplifies.
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
  /**
   * The bare repository standing in for the remote. A pull request whose head is a commit in it
   * is merged there for real, and its files, counts and mergeability come from git unless scripted.
   */
  gitDir?: string;
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
  /** Runs `hook` once, after the next such request is done and before it is answered. */
  beforeReply(method: string, path: string, hook: () => Promise<void>): void;
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
