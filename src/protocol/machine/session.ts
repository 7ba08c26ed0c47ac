import { EoaError } from "../../errors.js";
import type { Effort, EscalationRules, Priority, SessionRecord, TaskRecord } from "../../state/schema.js";
import { findCycle } from "../dependencies.js";
import { policyFromDirective } from "../escalation.js";
import { settled } from "../kanban.js";
import { decide, note, syncLabels, type Step } from "./records.js";

/**
 * The User Handoff Protocol and Phase 5 as state changes: a confirmation proposed (tasks in the
 * backlog, the session awaiting approval), approved (the batch to `todo`, the directive's escalation
 * policy in force), and completed when the report is written with every task settled.
 */

export const DEFAULT_ESCALATION_RULES: EscalationRules = {
  on_blocked: "Report and move to next available task",
  on_security_concern: "STOP and send urgent escalation",
  on_architecture_question: "Make best judgment, document decision",
};

export interface TaskSpec {
  task_id: string;
  title: string;
  priority?: Priority | undefined;
  effort?: Effort | undefined;
  depends_on?: string[] | undefined;
  instructions?: string | undefined;
  completion_criteria?: string[] | undefined;
  test_requirements?: string[] | undefined;
  required_capabilities?: string[] | undefined;
  files_in_scope?: string[] | undefined;
  next_task_on_complete?: string | undefined;
  issue_number?: number | undefined;
}

export function sessionProposed(
  s: Step,
  e: { specs: readonly TaskSpec[]; directive?: string | undefined },
): string {
  const { draft, now } = s;
  const active = draft.sessions.find((x) => x.status === "running" || x.status === "halted");
  if (active) {
    throw new EoaError(
      "SESSION_ALREADY_RUNNING",
      `session ${active.id} is still ${active.status}`,
      "finish it first (write_report), or keep working in it with assign_task",
    );
  }
  // A confirmation nobody approved is replaced by the new one.
  for (const x of draft.sessions.filter((y) => y.status === "awaiting_approval")) {
    for (const id of x.task_ids) if (draft.tasks[id]?.session_id === x.id) delete draft.tasks[id];
    draft.sessions.splice(draft.sessions.indexOf(x), 1);
  }
  const ids = e.specs.map((t) => t.task_id);
  for (const id of ids) {
    const existing = draft.tasks[id];
    if (existing && existing.status !== "done") {
      throw new EoaError(
        "TASK_IN_ANOTHER_SESSION",
        `${id} already belongs to session ${existing.session_id} (${existing.status})`,
        "leave it out of this batch, or finish that session first",
      );
    }
  }
  const graph = Object.create(null) as Record<string, string[]>;
  for (const t of e.specs) graph[t.task_id] = t.depends_on ?? [];
  for (const t of Object.values(draft.tasks)) graph[t.task_id] ??= [...t.depends_on];
  const cycle = findCycle(graph);
  if (cycle) {
    throw new EoaError(
      "DEPENDENCY_CYCLE",
      `the tasks depend on each other in a cycle: ${cycle.join(" → ")}`,
      "remove one of those dependencies (in the issue body or the inline spec) and call start_session again",
      { cycle },
    );
  }
  const id = nextSessionId(draft.sessions, now);
  const session: SessionRecord = {
    id,
    status: "awaiting_approval",
    ...(e.directive ? { directive: e.directive } : {}),
    escalation_policy: policyFromDirective(e.directive),
    task_ids: ids,
    created_at: now.toISOString(),
  };
  draft.sessions.push(session);
  draft.current_session_id = id;
  for (const spec of e.specs) {
    draft.tasks[spec.task_id] = newTask(spec, id, now);
    note(s, draft.tasks[spec.task_id]!, "created", `in ${id}`);
  }
  return id;
}

export function sessionApproved(s: Step, e: { session_id: string; directive?: string | undefined }): void {
  const { draft, now } = s;
  const session = requireSession(s, e.session_id);
  if (session.status !== "awaiting_approval") {
    throw new EoaError(
      "SESSION_NOT_AWAITING_APPROVAL",
      `session ${session.id} is ${session.status}, not awaiting approval`,
      session.status === "complete"
        ? "prepare a new session with start_session"
        : "it is already started: go on with assign_task",
    );
  }
  const directive = e.directive ?? session.directive;
  session.status = "running";
  session.approved_at = now.toISOString();
  session.started_at = now.toISOString();
  if (directive) session.directive = directive;
  session.escalation_policy = policyFromDirective(directive);
  const decision = decide(s, {
    action: "start-session",
    rule: "User Handoff Protocol: the user approved the confirmation",
    inputs: { tasks: [...session.task_ids], directive: directive ?? null },
    outcome: `running; immediate escalation for ${session.escalation_policy.immediate.join(", ")}`,
  });
  for (const id of session.task_ids) {
    const t = draft.tasks[id];
    if (t && t.status === "backlog") {
      t.status = "todo";
      note(s, t, "approved", directive ? `directive: ${directive}` : undefined);
      // The kanban shows the approved batch at once (status:todo).
      syncLabels(s, decision, id);
    }
  }
}

/** Phase 5: the report is recorded; with every task settled the session is complete. */
export function reportWritten(s: Step, e: { session_id: string; path: string }): { complete: boolean } {
  const { draft, now } = s;
  const session = requireSession(s, e.session_id);
  const tasks = session.task_ids.flatMap((id) => (draft.tasks[id] ? [draft.tasks[id]] : []));
  const complete = tasks.every((t) => settled(t.status));
  session.report = { path: e.path, at: now.toISOString() };
  if (complete && session.status !== "complete") {
    session.status = "complete";
    session.ended_at = now.toISOString();
    decide(s, {
      action: "complete-session",
      rule: "Phase 5: every task is done, at human review or blocked",
      inputs: { tasks: tasks.map((t) => `${t.task_id}:${t.status}`) },
      outcome: "session complete; report written",
    });
  }
  return { complete };
}

function requireSession(s: Step, id: string) {
  const session = s.draft.sessions.find((x) => x.id === id);
  if (!session) {
    throw new EoaError(
      "SESSION_NOT_FOUND",
      `no session ${id}`,
      "read eoa://session for the current session, or call start_session with tasks to prepare one",
    );
  }
  return session;
}

function nextSessionId(sessions: readonly SessionRecord[], now: Date): string {
  const day = now.toISOString().slice(0, 10);
  const n = sessions.filter((x) => x.id.startsWith(`${day}-session-`)).length + 1;
  return `${day}-session-${String(n).padStart(2, "0")}`;
}

function newTask(spec: TaskSpec, sessionId: string, now: Date): TaskRecord {
  return {
    task_id: spec.task_id,
    ...(spec.issue_number ? { issue_number: spec.issue_number } : {}),
    session_id: sessionId,
    title: spec.title,
    priority: spec.priority ?? "normal",
    ...(spec.effort ? { effort: spec.effort } : {}),
    required_capabilities: spec.required_capabilities ?? [],
    depends_on: spec.depends_on ?? [],
    instructions: spec.instructions ?? "",
    completion_criteria: spec.completion_criteria ?? [],
    test_requirements: spec.test_requirements ?? [],
    files_in_scope: spec.files_in_scope ?? [],
    escalation_rules: { ...DEFAULT_ESCALATION_RULES },
    ...(spec.next_task_on_complete ? { next_task_on_complete: spec.next_task_on_complete } : {}),
    status: "backlog",
    assignment_epoch: 0,
    previous_assignees: [],
    fix_rounds: 0,
    ci_polls: 0,
    ci_failures: 0,
    created_at: now.toISOString(),
    updated_at: now.toISOString(),
    history: [],
  };
}
