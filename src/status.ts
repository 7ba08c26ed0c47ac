import { agentLoads } from "./protocol/assignment.js";
import { oneLine, untrustedInline } from "./protocol/text.js";
import { KANBAN_COLUMNS, type State } from "./state/schema.js";

/**
 * `eoa-mcp status`: the current session at a glance, from the state directory alone (read-only, so
 * it can watch a night another process runs). Agents' words and issue titles are marked untrusted.
 */

const DECISIONS_SHOWN = 10;

export function renderStatus(state: Readonly<State>, now: Date, stateDir: string): string {
  const out = [`eoa-mcp status · ${stateDir} · ${clock(now.toISOString())} UTC`, ""];
  const session = state.sessions.find((s) => s.id === state.current_session_id);
  if (!session) return [...out, "No session yet: hand a batch over first (start_session)."].join("\n") + "\n";
  out.push(
    `Session ${session.id}: ${session.status}${session.halted_reason ? ` (${oneLine(session.halted_reason, 200)})` : ""}`,
  );
  if (session.directive)
    out.push(`Directive: ${untrustedInline("directive", oneLine(session.directive, 200))}`);
  out.push(lastCycle(state, now));

  const tasks = session.task_ids.map((id) => state.tasks[id]).filter((t) => t !== undefined);
  const counts = KANBAN_COLUMNS.map((c) => [c, tasks.filter((t) => t.status === c).length] as const).filter(
    ([, n]) => n > 0,
  );
  out.push("", `Tasks (${tasks.length}): ${counts.map(([c, n]) => `${c} ${n}`).join(" · ") || "none"}`);
  for (const t of tasks) {
    if (t.status === "done" || t.status === "backlog") continue;
    const detail = [
      t.assignee ?? (t.queue ? `queued: ${oneLine(t.queue.reason, 80)}` : "unassigned"),
      t.pr_number !== undefined ? `PR #${t.pr_number}` : "",
      t.progress_percent !== undefined ? `${t.assignee ?? "agent"} says ${t.progress_percent}%` : "",
    ].filter(Boolean);
    out.push(
      `  ${t.status.padEnd(13)} ${t.task_id} ${untrustedInline(`${t.task_id} title`, oneLine(t.title, 60))} (${detail.join(", ")})`,
    );
  }

  const loads = agentLoads(Object.values(state.tasks));
  out.push("", "Agents:");
  for (const a of Object.values(state.agents)) {
    const seen = a.last_seen ? `last seen ${clock(a.last_seen)}` : "not seen yet";
    const missed = a.missed_heartbeats ? `, missed ${a.missed_heartbeats} beat(s)` : "";
    out.push(
      `  ${a.id.padEnd(16)} ${a.availability.padEnd(10)} ${loads.get(a.id) ?? 0}/${a.max_concurrent_tasks} tasks  ${seen}${missed}`,
    );
  }

  const open = state.escalations.filter((e) => e.status === "open");
  const blocked = tasks.filter((t) => t.status === "blocked" || t.status === "human-review");
  out.push("", "Waiting for you:");
  if (!open.length && !blocked.length) out.push("  nothing");
  for (const e of open)
    out.push(
      `  ${e.id} (${e.level} ${e.category}${e.task_id ? `, ${e.task_id}` : ""}, ${e.delivery.status}): ${untrustedInline(`${e.id} issue`, oneLine(e.issue, 160))}`,
    );
  for (const t of blocked)
    out.push(
      `  ${t.task_id} ${t.status}${t.blocked_reason ? `: ${untrustedInline(`${t.task_id} blocked_reason`, oneLine(t.blocked_reason, 160))}` : ""}`,
    );

  out.push("", `Last ${Math.min(DECISIONS_SHOWN, state.decisions.length)} decisions:`);
  for (const d of state.decisions.slice(-DECISIONS_SHOWN))
    out.push(
      `  ${clock(d.at)} ${d.action}${d.task_id ? ` ${d.task_id}` : ""}${d.agent ? ` (${d.agent})` : ""}: ${oneLine(d.outcome, 160)}`,
    );
  return out.join("\n") + "\n";
}

function lastCycle(state: Readonly<State>, now: Date): string {
  const at = state.cycle.last_at;
  if (!at) return "Last poll cycle: unknown (no cycle yet)";
  const ago = Math.round((now.getTime() - new Date(at).getTime()) / 60_000);
  const lease = state.night_lease ? `; cycles run by ${state.night_lease.holder}` : "";
  return `Last poll cycle: ${clock(at)} UTC (${ago} min ago, cycle ${state.cycle.count})${lease}`;
}

function clock(iso: string): string {
  return iso.replace("T", " ").slice(0, 16);
}
