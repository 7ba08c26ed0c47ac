import { EoaError } from "../errors.js";
import { PRIORITY_RANK, missingCapabilities } from "../protocol/assignment.js";
import { checklistFromIssueBody, dependenciesFromIssueBody } from "../protocol/dependencies.js";
import { handoffWarnings } from "../protocol/handoff.js";
import type { TaskSpec } from "../protocol/machine/index.js";
import { cap, oneLine } from "../protocol/text.js";
import {
  EFFORTS,
  PRIORITIES,
  type Effort,
  type Priority,
  type SessionRecord,
  type State,
  type TaskRecord,
} from "../state/schema.js";
import { refuseMisroutedRoster } from "./roster-routing.js";
import type { Runtime } from "./runtime.js";

/**
 * The User Handoff Protocol: the first call reads the tasks and returns the confirmation the seed
 * shows (tasks with priorities, dependencies, scope estimate, available agents) with the session
 * `awaiting_approval`; a second call with `approve: true` starts it and turns the user's directive
 * into the session's escalation policy.
 */

export type InlineTask = TaskSpec;

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
  await refuseMisroutedRoster(rt);
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

  const { result: sessionId } = await rt.step({ type: "session-proposed", specs, directive: args.directive });
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
  const { effects } = await rt.step({
    type: "session-approved",
    session_id: args.session_id,
    directive: args.directive,
  });
  // The kanban shows the approved batch at once (status:todo); a GitHub hiccup is retried next cycle.
  const warnings = (await rt.outbox.flush(effects))
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
