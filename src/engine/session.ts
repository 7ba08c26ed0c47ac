import type { Draft } from "immer";
import { EoaError } from "../errors.js";
import { PRIORITY_RANK, missingCapabilities } from "../protocol/assignment.js";
import { checklistFromIssueBody, dependenciesFromIssueBody, findCycle } from "../protocol/dependencies.js";
import { policyFromDirective } from "../protocol/escalation.js";
import { handoffWarnings } from "../protocol/handoff.js";
import { cap, oneLine } from "../protocol/text.js";
import { enqueueEffect, history, recordDecision } from "../state/records.js";
import { flushEffects } from "./effects.js";
import {
  EFFORTS,
  PRIORITIES,
  type Effort,
  type EscalationRules,
  type Priority,
  type SessionRecord,
  type State,
  type TaskRecord,
} from "../state/schema.js";
import type { Runtime } from "./runtime.js";

/**
 * The User Handoff Protocol: the first call reads the tasks and returns the confirmation the seed
 * shows (tasks with priorities, dependencies, scope estimate, available agents) with the session
 * `awaiting_approval`; a second call with `approve: true` starts it and turns the user's directive
 * into the session's escalation policy.
 */

export const DEFAULT_ESCALATION_RULES: EscalationRules = {
  on_blocked: "Report and move to next available task",
  on_security_concern: "STOP and send urgent escalation",
  on_architecture_question: "Make best judgment, document decision",
};

export interface InlineTask {
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

export interface StartSessionArgs {
  session_id?: string | undefined;
  tasks?: Array<string | InlineTask> | undefined;
  directive?: string | undefined;
  approve?: boolean | undefined;
}

export interface Confirmation {
  session_id: string;
  status: SessionRecord["status"];
  tasks: Array<{
    task_id: string;
    title: string;
    priority: Priority;
    effort: Effort | null;
    depends_on: string[];
    required_capabilities: string[];
    source: "github" | "inline";
  }>;
  scope_estimate: string;
  available_agents: string[];
  warnings: string[];
  directive: string | null;
  escalation_policy: { immediate: string[]; source: string };
}

const GH_ID = /^GH-(\d{1,9})$/;

export async function startSession(rt: Runtime, args: StartSessionArgs): Promise<Confirmation> {
  if (args.approve) return approve(rt, args);
  if (args.session_id) {
    throw new EoaError(
      "APPROVAL_EXPECTED",
      "a session_id was given without approve: true",
      "call start_session with session_id and approve: true to start it, or without session_id to prepare a new one",
    );
  }
  if (!args.tasks?.length) {
    throw new EoaError(
      "NO_TASKS",
      "start_session needs at least one task",
      'pass tasks: ["GH-101", ...] (GitHub issue ids) or inline task specs',
    );
  }
  const warnings: string[] = [];
  const specs = await resolveTasks(rt, args.tasks, warnings);
  const now = rt.now();
  const policy = policyFromDirective(args.directive);

  const sessionId = await rt.store.transact((draft) => {
    const active = draft.sessions.find((s) => s.status === "running" || s.status === "halted");
    if (active) {
      throw new EoaError(
        "SESSION_ALREADY_RUNNING",
        `session ${active.id} is still ${active.status}`,
        "finish it first (write_report), or keep working in it with assign_task",
      );
    }
    // A confirmation nobody approved is replaced by the new one.
    for (const s of draft.sessions.filter((x) => x.status === "awaiting_approval")) {
      for (const id of s.task_ids) if (draft.tasks[id]?.session_id === s.id) delete draft.tasks[id];
      draft.sessions.splice(draft.sessions.indexOf(s), 1);
    }
    const ids = specs.map((t) => t.task_id);
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
    for (const t of specs) graph[t.task_id] = t.depends_on ?? [];
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
    const id = nextSessionId(draft, now);
    const session: SessionRecord = {
      id,
      status: "awaiting_approval",
      ...(args.directive ? { directive: args.directive } : {}),
      escalation_policy: policy,
      task_ids: ids,
      created_at: now.toISOString(),
    };
    draft.sessions.push(session);
    draft.current_session_id = id;
    for (const spec of specs) {
      const task = newTask(spec, id, now);
      history(task as Draft<TaskRecord>, now, "created", `in ${id}`);
      draft.tasks[spec.task_id] = task;
    }
    return id;
  });
  return confirmation(rt, sessionId, warnings);
}

async function approve(rt: Runtime, args: StartSessionArgs): Promise<Confirmation> {
  if (!args.session_id) {
    throw new EoaError(
      "CONFIRMATION_REQUIRED",
      "approve: true needs the session_id of a confirmation the user has seen",
      "call start_session with tasks first, show the confirmation to the user, then approve with its session_id",
    );
  }
  if (args.tasks?.length) {
    throw new EoaError(
      "TASKS_WITH_APPROVAL",
      "tasks cannot change while approving",
      "approve with session_id (and directive) only, or prepare a new confirmation without session_id",
    );
  }
  const now = rt.now();
  const labelEffects: string[] = [];
  await rt.store.transact((draft) => {
    const session = draft.sessions.find((s) => s.id === args.session_id);
    if (!session) {
      throw new EoaError(
        "SESSION_NOT_FOUND",
        `no session ${args.session_id}`,
        "read eoa://session for the current session, or call start_session with tasks to prepare one",
      );
    }
    if (session.status !== "awaiting_approval") {
      throw new EoaError(
        "SESSION_NOT_AWAITING_APPROVAL",
        `session ${session.id} is ${session.status}, not awaiting approval`,
        session.status === "complete"
          ? "prepare a new session with start_session"
          : "it is already started: go on with assign_task",
      );
    }
    const directive = args.directive ?? session.directive;
    session.status = "running";
    session.approved_at = now.toISOString();
    session.started_at = now.toISOString();
    if (directive) session.directive = directive;
    session.escalation_policy = policyFromDirective(directive);
    for (const id of session.task_ids) {
      const t = draft.tasks[id];
      if (t && t.status === "backlog") {
        t.status = "todo";
        history(t, now, "approved", directive ? `directive: ${directive}` : undefined);
        labelEffects.push(enqueueEffect(draft, now, "labels", { task_id: id }));
      }
    }
    recordDecision(draft, now, {
      action: "start-session",
      rule: "User Handoff Protocol: the user approved the confirmation",
      inputs: { tasks: [...session.task_ids], directive: directive ?? null },
      outcome: `running; immediate escalation for ${session.escalation_policy.immediate.join(", ")}`,
    });
  });
  // The kanban shows the approved batch at once (status:todo); a GitHub hiccup is retried next cycle.
  const warnings = (await flushEffects(rt, labelEffects))
    .filter((o) => !o.ok)
    .map((o) => `kanban labels not updated yet (retried next cycle): ${o.error}`);
  return confirmation(rt, args.session_id, warnings);
}

async function confirmation(rt: Runtime, sessionId: string, warnings: string[]): Promise<Confirmation> {
  const state = await rt.store.read();
  const session = state.sessions.find((s) => s.id === sessionId)!;
  const tasks = session.task_ids.map((id) => state.tasks[id]!).filter(Boolean);
  const agents = Object.values(state.agents);
  warnings.push(...handoffWarnings(rt.config));
  const online = await presence(rt, warnings);
  const available = agents
    .filter((a) => a.availability === "active" && (online === null || online.has(a.session.toLowerCase())))
    .map((a) => a.id);
  for (const t of tasks) {
    if (!agents.some((a) => missingCapabilities(a, t).length === 0)) {
      warnings.push(
        `${t.task_id} needs ${t.required_capabilities.join(", ")}: no agent on the roster has all of it`,
      );
    }
  }
  return {
    session_id: session.id,
    status: session.status,
    tasks: [...tasks]
      .sort(
        (a, b) => PRIORITY_RANK[a.priority] - PRIORITY_RANK[b.priority] || a.task_id.localeCompare(b.task_id),
      )
      .map((t) => ({
        task_id: t.task_id,
        title: t.title,
        priority: t.priority,
        effort: t.effort ?? null,
        depends_on: [...t.depends_on],
        required_capabilities: [...t.required_capabilities],
        source: t.issue_number ? ("github" as const) : ("inline" as const),
      })),
    scope_estimate: scopeEstimate(tasks, agents, state),
    available_agents: available,
    warnings,
    directive: session.directive ?? null,
    escalation_policy: {
      immediate: [...session.escalation_policy.immediate],
      source: session.escalation_policy.source,
    },
  };
}

/** Lower-cased AI Maestro names that are online, or null when the hub could not be asked. */
async function presence(rt: Runtime, warnings: string[]): Promise<Set<string> | null> {
  try {
    const list = await rt.aimaestro.listAgents();
    return new Set(list.filter((a) => a.online).map((a) => a.name.toLowerCase()));
  } catch (err) {
    warnings.push(`agent presence unknown: ${(err as Error).message}`);
    return null;
  }
}

function scopeEstimate(
  tasks: readonly TaskRecord[],
  agents: readonly { max_concurrent_tasks: number; availability: string }[],
  state: Readonly<State>,
): string {
  const inBatch = new Set(tasks.map((t) => t.task_id));
  const outside = [
    ...new Set(
      tasks.flatMap((t) => t.depends_on).filter((d) => !inBatch.has(d) && state.tasks[d]?.status !== "done"),
    ),
  ];
  const depth = new Map<string, number>();
  const level = (id: string, seen = new Set<string>()): number => {
    if (depth.has(id)) return depth.get(id)!;
    if (seen.has(id)) return 1;
    seen.add(id);
    const t = state.tasks[id];
    const d =
      t && inBatch.has(id)
        ? 1 + Math.max(0, ...t.depends_on.filter((x) => inBatch.has(x)).map((x) => level(x, seen)))
        : 0;
    depth.set(id, d);
    return d;
  };
  const waves = Math.max(0, ...tasks.map((t) => level(t.task_id)));
  const capacity = agents
    .filter((a) => a.availability !== "offline")
    .reduce((n, a) => n + a.max_concurrent_tasks, 0);
  const large = tasks.filter((t) => t.effort === "l" || t.effort === "xl").map((t) => t.task_id);
  const parts = [
    `${tasks.length} task(s) in ${waves} dependency wave(s)`,
    `capacity ${capacity} concurrent task(s) across ${agents.length} agent(s)`,
    outside.length ? `depends on work outside this batch: ${outside.join(", ")}` : "all within current batch",
  ];
  if (large.length) parts.push(`large tasks stop at human review: ${large.join(", ")}`);
  return parts.join("; ");
}

function nextSessionId(draft: Draft<State>, now: Date): string {
  const day = now.toISOString().slice(0, 10);
  const n = draft.sessions.filter((s) => s.id.startsWith(`${day}-session-`)).length + 1;
  return `${day}-session-${String(n).padStart(2, "0")}`;
}

function newTask(spec: InlineTask, sessionId: string, now: Date): TaskRecord {
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

/** Reads `GH-<n>` ids from GitHub issues; inline specs pass through. Duplicates are refused. */
async function resolveTasks(
  rt: Runtime,
  tasks: Array<string | InlineTask>,
  warnings: string[],
): Promise<InlineTask[]> {
  const out: InlineTask[] = [];
  const seen = new Set<string>();
  for (const t of tasks) {
    const id = typeof t === "string" ? t.trim().toUpperCase() : t.task_id;
    if (seen.has(id)) {
      throw new EoaError("DUPLICATE_TASK", `${id} is listed twice`, "list each task once");
    }
    seen.add(id);
    // An inline spec is the task itself; it is tied to an issue only when it names issue_number.
    if (typeof t !== "string") {
      out.push(t);
      continue;
    }
    const m = GH_ID.exec(id);
    if (!m) {
      throw new EoaError(
        "BAD_TASK_ID",
        `${JSON.stringify(t)} is not a GitHub issue id`,
        'use "GH-<issue number>" (e.g. "GH-101") or an inline task spec object',
      );
    }
    out.push(await fromIssue(rt, Number(m[1]), warnings));
  }
  const ids = new Set(out.map((t) => t.task_id));
  for (const t of out) {
    if (t.next_task_on_complete && !ids.has(t.next_task_on_complete)) {
      throw new EoaError(
        "UNKNOWN_TASK",
        `${t.task_id}: next_task_on_complete ${t.next_task_on_complete} is not in this batch`,
        "add that task to the batch or drop next_task_on_complete",
      );
    }
    for (const d of t.depends_on ?? [])
      if (!ids.has(d)) warnings.push(`${t.task_id} depends on ${d}, which is not in this batch`);
  }
  return out;
}

async function fromIssue(rt: Runtime, number: number, warnings: string[]): Promise<InlineTask> {
  let issue;
  try {
    issue = await rt.github.getIssue(number);
  } catch (err) {
    if (err instanceof EoaError && err.code === "GITHUB_NOT_FOUND") {
      throw new EoaError(
        "UNKNOWN_TASK",
        `GH-${number}: no such issue in ${rt.config.github.repo}`,
        "check the issue number (and EOA_REPO), then call start_session again",
      );
    }
    throw err;
  }
  if (issue.isPullRequest) {
    throw new EoaError(
      "UNKNOWN_TASK",
      `GH-${number} is a pull request, not an issue`,
      "pass the issue the PR implements",
    );
  }
  if (issue.state === "closed") warnings.push(`GH-${number} is already closed on GitHub`);
  const body = issue.body ?? "";
  const labels = issue.labels.map((l) => l.toLowerCase());
  const labelValue = (prefix: RegExp) => labels.map((l) => prefix.exec(l)?.[1]?.trim()).find(Boolean);
  const priority = labelValue(/^priority:\s*(\w+)$/);
  const effort = labelValue(/^(?:effort|size):\s*(\w+)$/);
  const capabilities = labels
    .map((l) => /^(?:capability|needs|skill):\s*(.+)$/.exec(l)?.[1]?.trim())
    .filter((c): c is string => !!c);
  const deps = dependenciesFromIssueBody(body).filter((d) => d !== `GH-${number}`);
  return {
    task_id: `GH-${number}`,
    issue_number: number,
    title: oneLine(issue.title, 200),
    ...(priority && (PRIORITIES as readonly string[]).includes(priority)
      ? { priority: priority as Priority }
      : {}),
    ...(effort && (EFFORTS as readonly string[]).includes(effort) ? { effort: effort as Effort } : {}),
    depends_on: deps,
    instructions: cap(`${issue.title}\n\n${body}`, 8000),
    completion_criteria: checklistFromIssueBody(body).map((c) => cap(c, 300)),
    test_requirements: section(body, /^#+\s*(tests?|test requirements)\b/i).map((c) => cap(c, 300)),
    required_capabilities: capabilities,
    files_in_scope: section(body, /^#+\s*(scope|files in scope|files)\b/i)
      .map((l) => l.replace(/`/g, "").trim())
      .filter((l) => /^[\w./*{}\-[\]!?]+$/.test(l)),
  };
}

/** Bullet items under a markdown heading matching `heading`, up to the next heading. */
function section(body: string, heading: RegExp): string[] {
  const lines = body.split(/\r?\n/);
  const start = lines.findIndex((l) => heading.test(l.trim()));
  if (start < 0) return [];
  const out: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (/^#+\s/.test(line.trim())) break;
    const m = /^\s*[-*]\s+(?:\[[ xX]\]\s+)?(.+?)\s*$/.exec(line);
    if (m) out.push(m[1]!);
  }
  return out;
}
