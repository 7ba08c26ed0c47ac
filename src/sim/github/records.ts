import type { CheckRunSpec, MergeableState, PullFileSpec } from "./types.js";

/** The stand-in's stored records, in GitHub's own field names where GitHub has one. */

export interface LabelRec {
  id: number;
  node_id: string;
  name: string;
  color: string;
  description: string | null;
  default: boolean;
}

export interface CommentRec {
  id: number;
  node_id: string;
  body: string;
  user: string;
  created_at: string;
}

export interface IssueRec {
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

export interface ReviewRec {
  id: number;
  node_id: string;
  event: string;
  state: string;
  body: string;
  commit_id: string;
  user: string;
  submitted_at: string;
}

export interface PullRec {
  id: number;
  headSha: string;
  shas: string[];
  headRef: string;
  headRepo: string | null;
  baseRef: string;
  /** Scripted files; null to read them from git. */
  files: PullFileSpec[] | null;
  /** Set by hand (`addPull`, `setMergeable`) rather than computed from git. */
  scriptedMergeable: boolean;
  mergeable: boolean | null;
  mergeableState: MergeableState;
  merged: boolean;
  mergedAt: string | null;
  mergeCommitSha: string | null;
  /** The base branch's tip when the PR was merged in git: its files stay what they were then. */
  baseAtMerge: string | null;
  mergeMethod: string | null;
  reviews: ReviewRec[];
}

export interface CheckRunRec {
  id: number;
  group: string;
  spec: CheckRunSpec;
  started_at: string;
  completed_at: string | null;
}

export interface GroupRec {
  stage: number;
  suiteId: number;
  workflowRunId: number | null;
  runAttempt: number;
  createdAt: string;
  updatedAt: string;
}

export interface CheckState {
  stages: CheckRunSpec[][];
  groups: Map<string, GroupRec>;
  runs: CheckRunRec[];
}

export interface ProjectRec {
  id: string;
  owner: string;
  ownerType: "organization" | "user";
  number: number;
  title: string;
  fieldId: string;
  options: { id: string; name: string }[];
  items: { id: string; contentId: string; optionId: string | null }[];
}
