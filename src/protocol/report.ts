import type {
  DecisionRecord,
  EscalationRecord,
  IncidentRecord,
  PollGap,
  KanbanColumn,
  TaskRecord,
} from "../state/schema.js";
import { oneLine, untrustedInline } from "./text.js";

/**
 * Phase 5: the completion report in the seed's format, plus what awaits the user, a timeline and a
 * dependency graph. Pure: every figure comes from the model the engine builds out of state and
 * GitHub, and the summary's totals are computed from the same per-task rows it prints.
 * Free text (agents' notes, issue titles, reasons) is flattened to one line wherever it lands, so
 * that a note holding "\n## Summary" cannot forge a section of the report.
 */

export interface TaskRow {
  task: TaskRecord;
  pr: {
    number: number;
    merged: boolean;
    state: string;
    /** Figures from GitHub or the last review's git diff; a string says why they are unknown. */
    scope: { files: number; additions: number; deletions: number } | string;
  } | null;
  tests: { passed: number; failed: number } | null;
  /** The branch the agent named, as git found it on the remote: an agent's word is not a fact. */
  branch?: { name: string; exists: boolean } | { name: string; unknown: string };
}

export interface ReportModel {
  sessionId: string;
  generatedAt: Date;
  directive: string | null;
  rows: TaskRow[];
  incidents: IncidentRecord[];
  escalations: EscalationRecord[];
  decisions: DecisionRecord[];
  agents: string[];
  attention: Attention;
}

/** When the server looked (issue 11): the facts behind "nothing happened" or "nothing was seen". */
export interface Attention {
  last_cycle_at: string | null;
  interval_seconds: number;
  /** Gaps of more than two intervals between counted cycles during the session. */
  gaps: PollGap[];
  /** The orchestrator's inbox as the report was written: unread messages, or why unknown. */
  unread: { now: number } | { unknown: string; at_last_cycle: number | null };
}

export interface ReportFigures {
  tasks_total: number;
  tasks_completed: number;
  prs_merged: number;
  issues_encountered: number;
  escalations: number;
}

const STATUS_WORD: Record<KanbanColumn, string> = {
  backlog: "NOT STARTED",
  todo: "QUEUED",
  "in-progress": "IN PROGRESS",
  "ai-review": "IN REVIEW",
  "human-review": "AWAITING HUMAN REVIEW",
  "merge-release": "MERGING",
  done: "COMPLETE",
  blocked: "BLOCKED",
};

export function reportFigures(m: ReportModel): ReportFigures {
  return {
    tasks_total: m.rows.length,
    tasks_completed: m.rows.filter((r) => r.task.status === "done").length,
    prs_merged: m.rows.filter((r) => r.pr?.merged).length,
    issues_encountered: m.incidents.length,
    escalations: m.escalations.length,
  };
}

export function renderReport(m: ReportModel): string {
  const f = reportFigures(m);
  const out: string[] = [
    "# Autonomous Operation Report",
    `**Session**: ${m.sessionId}`,
    `**Generated**: ${m.generatedAt.toISOString().replace("T", " ").slice(0, 19)} UTC`,
    ...(m.directive ? [`**Directive**: ${m.directive}`] : []),
    "",
    "## Summary",
    `- Tasks Completed: ${f.tasks_completed}/${f.tasks_total}`,
    `- PRs Merged: ${f.prs_merged}`,
    `- Issues Encountered: ${f.issues_encountered}`,
    `- Escalations: ${f.escalations}`,
    ...attention(m),
    "",
    ...waitingForYou(m),
    "## Task Status",
    "",
  ];
  for (const r of m.rows) out.push(...taskSection(r), "");
  out.push("## Issues Encountered", "");
  if (!m.incidents.length) out.push("None.", "");
  m.incidents.forEach((i, n) => {
    const esc = i.escalation_id ? m.escalations.find((e) => e.id === i.escalation_id) : undefined;
    out.push(
      `### Issue ${n + 1}: ${title(i.kind)}`,
      `- **Task**: ${i.task_id ?? i.tasks?.join(", ") ?? "none"}`,
      `- **Occurrence**: ${text(i.occurrence)} (${short(i.at)})`,
      `- **Description**: ${note(i.task_id ?? i.id, "incident", i.description)}`,
      `- **Resolution**: ${text(incidentResolution(i, esc))}`,
      `- **Action Taken**: ${text(i.action)}${esc ? `; ${text(delivery(esc))}` : ""}`,
      "",
    );
  });
  out.push("## Recommendations", "");
  recommendations(m).forEach((r, n) => out.push(`${n + 1}. ${r}`));
  out.push(
    "",
    "## Agent Performance",
    "",
    "| Agent | Tasks Completed | PRs Merged | Issues Resolved |",
    "|-------|-----------------|------------|-----------------|",
  );
  for (const a of m.agents) {
    const mine = m.rows.filter((r) => r.task.assignee === a && r.task.status === "done");
    // Only what the agent's own work got past (recorded by review when a later commit passed).
    const resolved = m.incidents.filter((i) => i.resolved_by === a).length;
    out.push(`| ${a} | ${mine.length} | ${mine.filter((r) => r.pr?.merged).length} | ${resolved} |`);
  }
  out.push("", "## Dependency Graph", "", "```mermaid", ...mermaid(m.rows), "```", "");
  const gantt = ganttChart(m.rows, m.generatedAt);
  if (gantt.length) out.push("## Night at a Glance", "", "```mermaid", ...gantt, "```", "");
  out.push("## Timeline", "");
  const timeline = m.decisions.filter(
    (d) => d.action !== "review" || /merge|fix_request|conflict|blocked/.test(d.outcome),
  );
  for (const d of timeline.slice(-100)) {
    out.push(
      `- ${short(d.at)} ${d.action}${d.task_id ? ` ${d.task_id}` : ""}${d.agent ? ` (${d.agent})` : ""}: ${text(d.outcome)}`,
    );
  }
  if (timeline.length > 100) out.push(`- … ${timeline.length - 100} earlier entries in eoa://decisions`);
  return out.join("\n") + "\n";
}

/** The server's own looking: the last poll cycle, the gaps nobody looked, the messages left unread. */
function attention(m: ReportModel): string[] {
  const a = m.attention;
  const interval = a.interval_seconds * 1000;
  const out = [
    a.last_cycle_at
      ? `- Last poll cycle: ${short(a.last_cycle_at)} (every ${a.interval_seconds} s)`
      : "- Last poll cycle: unknown (no poll cycle has run)",
  ];
  const gaps = [...a.gaps];
  // Not looking right up to now is a gap too, though no cycle has recorded it yet.
  if (a.last_cycle_at && m.generatedAt.getTime() - new Date(a.last_cycle_at).getTime() > 2 * interval)
    gaps.push({ from: a.last_cycle_at, to: m.generatedAt.toISOString() });
  for (const g of gaps) out.push(`- No poll between ${short(g.from)} and ${short(g.to)}`);
  const u = a.unread;
  out.push(
    "now" in u
      ? `- Messages unread in the orchestrator's inbox now: ${u.now}`
      : `- Messages unread in the orchestrator's inbox now: unknown (${text(u.unknown)})${
          u.at_last_cycle === null ? "" : `; ${u.at_last_cycle} left unread by the last poll cycle`
        }`,
  );
  return out;
}

function taskSection(r: TaskRow): string[] {
  const t = r.task;
  const lines = [
    `### ${t.task_id}: ${note(t.task_id, "title", t.title)}`,
    `- **Status**: ${STATUS_WORD[t.status]}`,
    `- **Agent**: ${t.assignee ?? "unassigned"}`,
  ];
  if (r.pr) {
    lines.push(`- **PR**: #${r.pr.number} (${r.pr.merged ? "merged" : r.pr.state})`);
    const sc = r.pr.scope;
    lines.push(
      typeof sc === "string"
        ? `- **Scope**: unknown (${sc})`
        : `- **Scope**: ${sc.files} file${sc.files === 1 ? "" : "s"} modified, ${sc.additions} lines added, ${sc.deletions} removed`,
    );
  } else if (r.branch) {
    const b = r.branch;
    lines.push(
      `- **Branch**: ${note(t.task_id, "branch", b.name)} (${"exists" in b ? (b.exists ? "exists on the remote" : "not found on the remote") : `unknown: ${text(b.unknown)}`})`,
    );
  }
  lines.push(
    `- **Tests**: ${r.tests ? `${r.tests.passed} passed, ${r.tests.failed} failed` : "not run yet"}`,
  );
  if (t.status === "blocked")
    lines.push(`- **Blocker**: ${note(t.task_id, "blocked_reason", t.blocked_reason ?? "unknown")}`);
  else if (t.status !== "done") lines.push(`- **Blocker**: ${t.queue ? text(t.queue.reason) : "None"}`);
  if (t.fix_rounds) lines.push(`- **Fix rounds**: ${t.fix_rounds}`);
  // The agent's words are its claim, attributed and dated, never the report's statement.
  if (t.status !== "done" && t.progress_claim)
    lines.push(
      `- **Agent's claim**: ${claim(t)}${t.progress_note ? `: ${note(t.task_id, "progress_note", t.progress_note)}` : ""}`,
    );
  return lines;
}

/** "dev-agent-1 said 70% at 02:10": who said it and when, as the progress report was received. */
function claim(t: TaskRecord): string {
  const c = t.progress_claim!;
  return `${c.by} said${c.percent !== undefined ? ` ${c.percent}%` : " it was under way"} at ${short(c.at)}`;
}

/** What became of an incident: as recorded, or the user's answer to its escalation. */
function incidentResolution(i: IncidentRecord, esc: EscalationRecord | undefined): string {
  const answered = esc?.resolution
    ? `answered by the user at ${short(esc.resolution.at)}: ${esc.resolution.decision}`
    : undefined;
  if (i.resolution && answered) return `${i.resolution}; ${answered}`;
  return i.resolution ?? answered ?? "none yet";
}

/** Whether the escalation reached its channel: "paged" only once the hub accepted the message. */
function delivery(esc: EscalationRecord): string {
  const to = esc.level === "immediate" ? "user paged" : `queued for the user (${esc.channel})`;
  if (esc.delivery.status === "delivered")
    return `${esc.id}: ${to}${esc.delivery.delivered_at ? ` at ${short(esc.delivery.delivered_at)}` : ""}`;
  return `${esc.id}: ${esc.level === "immediate" ? "page pending" : "not delivered yet"} (${esc.delivery.last_error ?? `${esc.delivery.attempts} attempts so far`})`;
}

function waitingForYou(m: ReportModel): string[] {
  const open = m.escalations.filter((e) => e.status === "open");
  const human = m.rows.filter((r) => r.task.status === "human-review");
  const blocked = m.rows.filter((r) => r.task.status === "blocked");
  if (!open.length && !human.length && !blocked.length)
    return ["## Waiting for You", "", "Nothing: no open escalation, no human review, no blocked task.", ""];
  const out = ["## Waiting for You", ""];
  for (const e of open) {
    out.push(
      `- **${e.id}** (${e.level} ${e.category}${e.task_id ? `, ${e.task_id}` : ""}): ${note(e.task_id ?? e.id, "escalation", e.issue)}${e.action_required ? ` — action required: ${text(e.action_required)}` : ""}${e.current_action ? ` — current action: ${note(e.task_id ?? e.id, "current action", e.current_action)}` : ""}${e.delivery.status !== "delivered" ? ` — not delivered yet (${text(e.delivery.last_error ?? "pending")})` : ""}`,
    );
  }
  for (const r of human)
    out.push(
      `- **${r.task.task_id}** awaits your review and merge: PR #${r.pr?.number ?? r.task.pr_number ?? "?"}`,
    );
  for (const r of blocked)
    out.push(
      `- **${r.task.task_id}** is blocked: ${note(r.task.task_id, "blocked_reason", r.task.blocked_reason ?? "unknown")}`,
    );
  out.push("");
  return out;
}

function recommendations(m: ReportModel): string[] {
  const recs: string[] = [];
  const kinds = (k: string) => m.incidents.filter((i) => i.kind === k);
  const ciTasks = [...new Set(kinds("ci-failure").map((i) => i.task_id))];
  if (ciTasks.length) recs.push(`Investigate CI stability: failures on ${ciTasks.join(", ")} needed re-runs`);
  const pending = [...new Set(kinds("ci-blocked").map((i) => i.task_id))];
  if (pending.length)
    recs.push(`CI never finished for ${pending.join(", ")}: check the runners and the workflow's triggers`);
  const offline = [...new Set(kinds("agent-offline").map((i) => i.description.split(" ")[0]))];
  if (offline.length) recs.push(`Check the health of ${offline.join(", ")}: went offline during the session`);
  for (const r of m.rows.filter((x) => x.task.fix_rounds >= 3)) {
    recs.push(
      `${r.task.task_id} needed ${r.task.fix_rounds} fix rounds: sharpen its completion criteria or split it`,
    );
  }
  for (const r of m.rows.filter((x) => x.task.status === "blocked"))
    recs.push(
      `Unblock ${r.task.task_id}: ${note(r.task.task_id, "blocked_reason", r.task.blocked_reason ?? "see its history")}`,
    );
  for (const r of m.rows.filter((x) => !["done", "blocked", "human-review"].includes(x.task.status))) {
    recs.push(
      `${r.task.task_id} is ${STATUS_WORD[r.task.status].toLowerCase()}${r.task.progress_claim ? ` (${claim(r.task)})` : ""}: let the next session finish it`,
    );
  }
  for (const r of m.rows.filter((x) => x.task.status === "human-review"))
    recs.push(`Review and merge PR #${r.pr?.number ?? r.task.pr_number} (${r.task.task_id}) yourself`);
  const q = m.escalations.filter((e) => e.status === "open");
  if (q.length)
    recs.push(
      `Answer ${q.length} open escalation(s) with resolve_escalation: ${q.map((e) => e.id).join(", ")}`,
    );
  if (!recs.length)
    recs.push("All tasks were reviewed through both gates and merged; nothing needs attention");
  return recs;
}

const CLASS: Record<KanbanColumn, string> = {
  backlog: "waiting",
  todo: "waiting",
  "in-progress": "active",
  "ai-review": "active",
  "merge-release": "active",
  "human-review": "human",
  done: "done",
  blocked: "blocked",
};

/**
 * The night per task as a Mermaid gantt (issue 13, item 4), from recorded times only: waiting for
 * the acknowledgement, the work up to the PR, the review up to the merge or the block, with each
 * review round and the end as milestones. Task ids and fixed words only: no title reaches it.
 */
export function ganttChart(rows: TaskRow[], now: Date): string[] {
  const at = (iso: string) => iso.replace("T", " ").slice(0, 16);
  const section = (s: string) => s.replace(/[^A-Za-z0-9_.-]/g, "_");
  const out: string[] = [];
  let n = 0;
  for (const { task: t } of rows) {
    const first = (...events: string[]) => t.history.find((h) => events.includes(h.event))?.at;
    const assigned = first("assigned", "handoff");
    if (!assigned) continue;
    const acked = first("acknowledged") ?? (t.acked_at && t.acked_at >= assigned ? t.acked_at : undefined);
    const pr = first("completion-report");
    const end =
      first("merged") ??
      (t.status === "blocked" ? t.history.findLast((h) => h.event === "blocked")?.at : undefined);
    const lines = [`  section ${section(t.task_id)}`];
    const bar = (label: string, from: string, to: string | undefined, tag = "") => {
      const stop = to ?? now.toISOString();
      if (stop > from) lines.push(`  ${label} :${tag}t${n++}, ${at(from)}, ${at(stop)}`);
    };
    bar("waiting for ack", assigned, acked ?? pr ?? end);
    if (acked) bar("work", acked, pr ?? end, pr ? "done, " : "active, ");
    if (pr) bar("review", pr, end, end ? "done, " : "active, ");
    let round = 0;
    for (const h of t.history.filter((x) => x.event === "review"))
      lines.push(`  review ${++round} :milestone, t${n++}, ${at(h.at)}, 0m`);
    if (end)
      lines.push(
        `  ${t.status === "done" ? "merged" : "blocked"} :milestone, ${t.status === "done" ? "" : "crit, "}t${n++}, ${at(end)}, 0m`,
      );
    if (lines.length > 1) out.push(...lines);
  }
  if (!out.length) return [];
  return [
    "gantt",
    "  title The night per task (UTC)",
    "  dateFormat YYYY-MM-DD HH:mm",
    "  axisFormat %H:%M",
    ...out,
  ];
}

function mermaid(rows: TaskRow[]): string[] {
  const id = (s: string) => s.replace(/[^A-Za-z0-9_]/g, "_");
  // Ids and statuses only: an issue title here would sit outside any untrusted marking.
  const lines = ["graph TD"];
  for (const r of rows)
    lines.push(
      `  ${id(r.task.task_id)}["${r.task.task_id}<br/>${STATUS_WORD[r.task.status]}"]:::${CLASS[r.task.status]}`,
    );
  const known = new Set(rows.map((r) => r.task.task_id));
  for (const r of rows)
    for (const d of r.task.depends_on) if (known.has(d)) lines.push(`  ${id(d)} --> ${id(r.task.task_id)}`);
  lines.push(
    "  classDef done fill:#c8e6c9,stroke:#2e7d32",
    "  classDef active fill:#bbdefb,stroke:#1565c0",
    "  classDef waiting fill:#eeeeee,stroke:#757575",
    "  classDef human fill:#fff9c4,stroke:#f9a825",
    "  classDef blocked fill:#ffcdd2,stroke:#c62828",
  );
  return lines;
}

/** Free text as one line of markdown. */
function text(s: string): string {
  return oneLine(s, 600);
}

/** Issue and agent text, marked as check_messages marks it: the report is read by the model too. */
function note(taskId: string, field: string, s: string): string {
  return untrustedInline(`${taskId} ${field}`, text(s));
}

function title(kind: string): string {
  const s = kind.replace(/-/g, " ");
  return s[0]!.toUpperCase() + s.slice(1);
}

function short(iso: string): string {
  return iso.replace("T", " ").slice(0, 16);
}
