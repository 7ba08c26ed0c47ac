/**
 * The state file: one JSON document, the single source of truth for a night of autonomous
 * operation. Names follow the protocol's vocabulary (assignment, fix round, escalation, backup
 * agent). Derivable values (an agent's load, whether it is busy) are computed, never stored.
 */

export const STATE_VERSION = 1;

export const PRIORITIES = ["critical", "high", "normal", "low"] as const;
export type Priority = (typeof PRIORITIES)[number];

export const EFFORTS = ["xs", "s", "m", "l", "xl"] as const;
export type Effort = (typeof EFFORTS)[number];

export const KANBAN_COLUMNS = [
  "backlog",
  "todo",
  "in-progress",
  "ai-review",
  "human-review",
  "merge-release",
  "done",
  "blocked",
] as const;
export type KanbanColumn = (typeof KANBAN_COLUMNS)[number];

export const ESCALATION_CATEGORIES = [
  "security",
  "data_corruption",
  "infrastructure",
  "architecture",
  "dependency",
  "blocker",
] as const;
export type EscalationCategory = (typeof ESCALATION_CATEGORIES)[number];

export type Availability = "active" | "offline" | "onboarding";

export interface AgentRecord {
  id: string;
  /** AI Maestro name the agent is reached at. */
  session: string;
  capabilities: string[];
  max_concurrent_tasks: number;
  backup: string[];
  availability: Availability;
  missed_heartbeats: number;
  last_seen?: string;
  offline_since?: string;
  offline_reason?: string;
  /** Errors reported too often within the ack window: taking it offline is due (issue 12). */
  failing?: { errors: number; since: string };
}

export interface EscalationRules {
  on_blocked: string;
  on_security_concern: string;
  on_architecture_question: string;
}

export interface HistoryEntry {
  at: string;
  event: string;
  detail?: string;
}

/** A task waiting to be dispatched: the server sends it as soon as the rules allow. */
export interface QueueEntry {
  since: string;
  reason: string;
  preferred_agent?: string;
}

export interface TaskRecord {
  task_id: string;
  issue_number?: number;
  session_id: string;
  title: string;
  priority: Priority;
  effort?: Effort;
  required_capabilities: string[];
  depends_on: string[];
  instructions: string;
  completion_criteria: string[];
  test_requirements: string[];
  /** Globs; empty means no declared scope. */
  files_in_scope: string[];
  escalation_rules: EscalationRules;
  next_task_on_complete?: string;
  status: KanbanColumn;
  previous_status?: KanbanColumn;
  blocked_reason?: string;
  queue?: QueueEntry;
  /** Escalation that parks this task until the user answers. */
  parked_by?: string;
  assignee?: string;
  /** Bumped on every (re)assignment; a message about an older epoch is quarantined. */
  assignment_epoch: number;
  assigned_at?: string;
  assignment_message_id?: string;
  acked_at?: string;
  ack_reminder_at?: string;
  previous_assignees: string[];
  branch?: string;
  pr_number?: number;
  progress_percent?: number;
  progress_note?: string;
  /** Who last reported progress, when, and the percent they said: the report shows it as their claim. */
  progress_claim?: { by: string; at: string; percent?: number };
  fix_rounds: number;
  /** The PR head the CI counters below belong to. */
  review_head?: string;
  ci_polls: number;
  /** When the last CI poll was counted: one counts per poll interval, however often review_pr runs. */
  ci_polled_at?: string;
  ci_failures: number;
  /**
   * A failed CI's re-run, decided by a review and made on the next counted poll cycle (the seed's
   * "retry once after the next poll cycle").
   */
  ci_rerun_due?: {
    sha: string;
    pr_number: number;
    checks: Array<{ id: number; name: string }>;
    seen_at: string;
  };
  /**
   * An agent's question or error report that waits for the orchestrator's judgment (issue 12):
   * shown as an action due while the same agent holds the task under the same epoch.
   */
  awaiting?: {
    kind: "question" | "error";
    message_id: string;
    agent: string;
    epoch: number;
    at: string;
    note: string;
    escalation_id?: string;
    /** An error's kind: the agent's environment (move the task) or the task's own (instruct). */
    error_kind?: "environment" | "task";
  };
  /** Completion reports naming a PR that GitHub does not have (a reply each; the second blocks). */
  missing_pr_reports?: number;
  /** The merge effect of the approval that put the task in merge-release (none: a person merges). */
  merge_effect?: string;
  merged_at?: string;
  merge_sha?: string;
  completed_at?: string;
  created_at: string;
  updated_at: string;
  history: HistoryEntry[];
  /** Older history entries moved to the archive (`<stateDir>/archive/`), in order: see protocol/machine/history.ts. */
  history_archived?: number;
}

export interface EscalationPolicy {
  /** Categories that page the user at once; security is always among them. */
  immediate: EscalationCategory[];
  source: string;
}

export interface SessionRecord {
  id: string;
  status: "awaiting_approval" | "running" | "halted" | "complete";
  directive?: string;
  escalation_policy: EscalationPolicy;
  task_ids: string[];
  created_at: string;
  approved_at?: string;
  started_at?: string;
  ended_at?: string;
  halted_reason?: string;
  /** The escalation whose answer the halt waits for (all agents offline: the user decides). */
  halted_by?: string;
  /** The last report written for this session. */
  report?: { path: string; at: string };
}

export type MessageOutcome = "applied" | "quarantined" | "flagged" | "ignored";

export interface ProcessedMessage {
  id: string;
  at: string;
  from: string;
  subject: string;
  kind: string;
  task_id?: string;
  outcome: MessageOutcome;
  note?: string;
}

export type GateStatus = "pass" | "fail" | "pending";

export interface Finding {
  gate: 1 | 2;
  check: string;
  message: string;
  file?: string;
  line?: number;
  url?: string;
  log_tail?: string;
}

export interface ReviewRecord {
  key: string;
  pr_number: number;
  head_sha: string;
  task_id: string;
  at: string;
  gate1: GateStatus;
  gate2: GateStatus;
  decision: string;
  findings: Finding[];
  files_changed: number;
  additions: number;
  deletions: number;
  tests?: { passed: number; failed: number };
  coverage?: number;
  /** Results that depend only on the head SHA, reused by the next call for the same head. */
  mechanical?: MechanicalResults;
}

export interface MechanicalResults {
  files: Array<{ path: string; additions: number; deletions: number }>;
  gate2_findings: Finding[];
  commands: Array<{
    name: "test" | "lint" | "coverage";
    command: string;
    exit_code: number | null;
    timed_out: boolean;
    duration_ms: number;
  }>;
  conflicts: string[];
  tests?: { passed: number; failed: number };
  coverage?: { percent: number; source: string };
}

export interface EscalationRecord {
  id: string;
  level: "immediate" | "deferred";
  category: EscalationCategory;
  status: "open" | "resolved";
  task_id?: string;
  issue: string;
  risk?: string;
  context?: string;
  current_action?: string;
  reversible?: boolean;
  action_required?: string;
  occurrences: number;
  created_at: string;
  updated_at: string;
  channel: string;
  delivery: {
    status: "pending" | "delivered" | "failed";
    attempts: number;
    last_error?: string;
    message_id?: string;
    /** When the hub accepted it: "paged at" in the report, never assumed. */
    delivered_at?: string;
  };
  parked_tasks: string[];
  resolution?: { decision: string; at: string };
}

export interface DecisionRecord {
  id: string;
  at: string;
  action: string;
  rule: string;
  task_id?: string;
  agent?: string;
  inputs: Record<string, unknown>;
  outcome: string;
}

/** Things that went wrong during the night, for the report's "Issues Encountered". */
export interface IncidentRecord {
  id: string;
  at: string;
  task_id?: string;
  /** The agent it happened to (an agent offline, an agent's error), when it is about one. */
  agent?: string;
  kind: string;
  occurrence: string;
  description: string;
  resolution?: string;
  /** The agent whose own work (a new commit through both gates) resolved it: its "Issues Resolved". */
  resolved_by?: string;
  /** The PR head it was found on, when it is about one: work resolves it only on a later head. */
  head_sha?: string;
  /** Every task it concerns, when there are several (`task_id` names one only when there is one). */
  tasks?: string[];
  /** The escalation it went to the user with: the report reads its delivery and answer from there. */
  escalation_id?: string;
  action: string;
}

export type MessagePriority = "low" | "normal" | "high" | "urgent";

/** A message the orchestrator sends through AI Maestro (see protocol/messages.ts for the formats). */
export interface OutboundMessage {
  to: string;
  subject: string;
  priority: MessagePriority;
  content: { type: string; message: string; context: Record<string, unknown> };
}

/** What a message effect is for, so that its completion or failure updates the right record. */
export type MessagePurpose =
  | {
      purpose: "assignment";
      task_id: string;
      epoch: number;
      revert: { status: KanbanColumn; queue?: QueueEntry };
    }
  | { purpose: "escalation"; escalation_id: string }
  | { purpose: "notice"; task_id?: string };

export type MessagePayload = { message: OutboundMessage } & MessagePurpose;

export type MergeMethod = "merge" | "squash" | "rebase";

/** One payload shape per kind of side effect. */
export interface EffectPayloads {
  message: MessagePayload;
  /** Level-triggered: brings the task's labels (and project status) up to date with its record. */
  labels: { task_id: string };
  /** One note on GitHub (an issue, or a PR as an issue), made once: a hidden marker names the effect. */
  comment: { issue_number: number; body: string };
  /** The `eoa:blocked` label on a blocked task's PR, removed when it unblocks. */
  pr_label: { pr_number: number; label: string; present: boolean };
  review: { pr_number: number; sha: string; event: "APPROVE" | "REQUEST_CHANGES" | "COMMENT"; body: string };
  merge: { pr_number: number; sha: string; method: MergeMethod; title: string; task_id: string };
  close_issue: { issue_number: number };
  /** The failed checks the protocol chose to re-run (never the client's choice). */
  rerun: { sha: string; pr_number: number; checks: Array<{ id: number; name: string }> };
}

export type EffectKind = keyof EffectPayloads;

interface EffectBase {
  id: string;
  status: "pending" | "done" | "failed";
  /** The decision that called for this effect (no effect without its decision). */
  decision: string;
  created_at: string;
  attempts: number;
  done_at?: string;
  result?: Record<string, unknown>;
  error?: string;
  error_code?: string;
  /** GitHub refused it for good (e.g. 422: a review of a closed PR): never tried again. */
  refused?: boolean;
  /** The process making the effect now (`host:pid:nonce`); another process leaves it alone unless that one died. */
  claimed_by?: string;
  claimed_at?: string;
}

/**
 * The outbox: a side effect is recorded here before it is made and marked done after, so that a
 * retry or a restart neither repeats it nor forgets it.
 */
export type EffectRecord = {
  [K in EffectKind]: EffectBase & { kind: K; payload: EffectPayloads[K] };
}[EffectKind];

export type EffectOf<K extends EffectKind> = Extract<EffectRecord, { kind: K }>;

/** A review of a PR under way (one at a time across processes), released on every path. */
export interface ReviewClaim {
  /** The process reviewing (`host:pid:nonce`) and its call. */
  owner: string;
  call: string;
  task_id: string;
  at: string;
}

export interface IdempotencyRecord {
  tool: string;
  status: "pending" | "done";
  at: string;
  result?: unknown;
}

export interface PollGap {
  from: string;
  to: string;
}

export interface State {
  version: number;
  /** Which lines of the journal (state.journal) apply to this document: those of the same generation. */
  generation: number;
  counters: { escalation: number; decision: number; effect: number; incident: number };
  current_session_id: string | null;
  sessions: SessionRecord[];
  agents: Record<string, AgentRecord>;
  tasks: Record<string, TaskRecord>;
  messages: Record<string, ProcessedMessage>;
  reviews: Record<string, ReviewRecord>;
  escalations: EscalationRecord[];
  decisions: DecisionRecord[];
  incidents: IncidentRecord[];
  outbox: EffectRecord[];
  idempotency: Record<string, IdempotencyRecord>;
  /** Reviews under way, by PR number. */
  review_claims: Record<string, ReviewClaim>;
  /**
   * Counted poll cycles (at most one per poll interval; heartbeats and ack deadlines are judged in
   * them), when the last one ran, the gaps of more than two intervals between two of them (the
   * last 50), and the messages left unread in the inbox after the last cycle.
   */
  cycle: { count: number; last_at?: string; gaps?: PollGap[]; unread?: number };
  /** Which server process runs the night's cycles, until when (src/engine/night.ts). */
  night_lease?: { holder: string; expires_at: string };
}

export function emptyState(): State {
  return {
    version: STATE_VERSION,
    generation: 0,
    counters: { escalation: 0, decision: 0, effect: 0, incident: 0 },
    current_session_id: null,
    sessions: [],
    agents: idMap(),
    tasks: idMap(),
    messages: idMap(),
    reviews: idMap(),
    escalations: [],
    decisions: [],
    incidents: [],
    outbox: [],
    idempotency: idMap(),
    review_claims: idMap(),
    cycle: { count: 0 },
  };
}

/**
 * Brings an older document up to STATE_VERSION. Version 1 is the first; the function exists so
 * that the next change to the document has a place to go, and so that a newer file is refused
 * rather than silently truncated by an older server.
 */
export function migrate(doc: unknown): State {
  if (!doc || typeof doc !== "object") return emptyState();
  const version = (doc as { version?: unknown }).version;
  if (typeof version !== "number")
    return withIdMaps({ ...emptyState(), ...(doc as Partial<State>), version: STATE_VERSION });
  if (version > STATE_VERSION) {
    throw new Error(
      `state file version ${version} is newer than this server understands (${STATE_VERSION}); upgrade eoa-mcp`,
    );
  }
  // Fill in any top-level key a crash or an older build left out.
  return withIdMaps({ ...emptyState(), ...(doc as Partial<State>) });
}

/**
 * A map keyed by ids that come from outside (task ids, agent names, message ids) has no prototype:
 * `tasks["constructor"]` or `agents["toString"]` is undefined, not a function inherited from
 * Object.prototype that the engine would take for a record. JSON.parse gives every object
 * Object.prototype, so the maps are rebuilt on every load (immer keeps the prototype on its copies).
 */
function idMap<T>(from?: Record<string, T>): Record<string, T> {
  return Object.assign(Object.create(null) as Record<string, T>, from);
}

function withIdMaps(state: State): State {
  return {
    ...state,
    agents: idMap(state.agents),
    tasks: idMap(state.tasks),
    messages: idMap(state.messages),
    reviews: idMap(state.reviews),
    idempotency: idMap(state.idempotency),
    review_claims: idMap(state.review_claims),
  };
}
