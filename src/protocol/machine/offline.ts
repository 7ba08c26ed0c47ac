import { plain, tasksWhere } from "../../state/records.js";
import type { TaskRecord } from "../../state/schema.js";
import { chooseReplacement, OCCUPYING } from "../assignment.js";
import { stopNoticeMessage } from "../messages.js";
import { dispatch, requeue } from "./dispatch.js";
import { escalate } from "./escalation.js";
import { decide, incident, loadsNow, notice, requireAgent, type Step } from "./records.js";

/**
 * Recovery, rule 5. An offline agent's unfinished tasks go to its first eligible backup, else the
 * best other agent, else the queue; the old agent gets a stop notice and the new one a handoff.
 * With no agent left, assignment halts and the user is paged (once).
 */

export interface OfflineOutcome {
  agent: string;
  already_offline: boolean;
  reassigned: Array<{ task_id: string; to: string }>;
  queued: Array<{ task_id: string; reason: string }>;
  halted: boolean;
  escalation_id?: string;
}

export function markOffline(
  s: Step,
  agentId: string,
  reason: string,
  /** Agents going offline in the same poll cycle: never chosen to take over. */
  leaving: ReadonlySet<string> = new Set(),
): OfflineOutcome {
  const { draft } = s;
  const agent = requireAgent(draft, agentId);
  const already = agent.availability === "offline";
  // A task in merge-release has no work left for an agent: its merge is decided, and the next cycle
  // completes it; handing it over would take it out of merge-release and lose the merge.
  const held = tasksWhere(
    draft,
    (t) => t.assignee === agentId && OCCUPYING.includes(t.status) && t.status !== "merge-release",
  );
  agent.availability = "offline";
  delete agent.failing;
  agent.offline_since ??= s.now.toISOString();
  agent.offline_reason = reason;
  const decision = decide(s, {
    action: "mark-offline",
    rule: "rule 5: an offline agent's tasks are reassigned",
    agent: agentId,
    inputs: { reason, missed_heartbeats: agent.missed_heartbeats, held: held.map((t) => t.task_id) },
    outcome: already ? "already offline" : "offline",
  });
  const reassigned: OfflineOutcome["reassigned"] = [];
  const queued: OfflineOutcome["queued"] = [];
  const loads = loadsNow(draft);
  const excluded = new Set([...leaving].filter((id) => id !== agentId));
  for (const { task_id } of held) {
    const task = draft.tasks[task_id]!;
    notice(
      s,
      decision,
      task_id,
      stopNoticeMessage(plain(task) as TaskRecord, agent.session, `you were marked offline (${reason})`),
    );
    const candidates = Object.values(draft.agents).map((a) =>
      excluded.has(a.id) ? { ...a, availability: "offline" as const } : a,
    );
    const replacement = chooseReplacement(task, agent, candidates, loads);
    if (replacement.agent !== null) {
      const out = dispatch(s, task_id, {
        preferred: replacement.agent,
        handoffFrom: agentId,
        rule: replacement.rule,
        excluded,
        loads,
      });
      if (out.status === "dispatched") reassigned.push({ task_id, to: out.agent });
      else queued.push({ task_id, reason: out.reason });
      continue;
    }
    const why = `${agentId} went offline; ${replacement.reason}`;
    const queuedDecision = decide(s, {
      action: "queue",
      rule: "rule 5: no backup or other agent is eligible",
      task_id,
      agent: agentId,
      inputs: { backups: [...agent.backup] },
      outcome: `queued, taken from ${agentId}, no agent to take it: ${replacement.reason}`,
    });
    requeue(s, task, why, queuedDecision);
    queued.push({ task_id, reason: why });
  }
  if (!already) {
    incident(s, {
      kind: "agent-offline",
      agent: agentId,
      ...(held.length === 1 ? { task_id: held[0]!.task_id } : {}),
      ...(held.length > 1 ? { tasks: held.map((t) => t.task_id) } : {}),
      occurrence: held.length ? `while holding ${held.map((t) => t.task_id).join(", ")}` : "holding no task",
      description: `${agentId} went offline: ${reason}`,
      action: offlineAction(reassigned, queued),
    });
  }

  let halted = false;
  let escalationId: string | undefined;
  const agents = Object.values(draft.agents);
  if (agents.length && agents.every((a) => a.availability === "offline")) {
    halted = true;
    const running = draft.sessions.filter(
      (y) => y.status === "running" || (y.status === "halted" && !y.halted_by),
    );
    // The seed's critical-infrastructure case: the user is paged whatever the directive says, and
    // the night waits for the user's answer, even if agents come back meanwhile.
    const esc = escalate(s, {
      category: "infrastructure",
      issue: "Every developer agent is offline: autonomous operation is halted",
      risk: "No work progresses until the agents are back and you have answered",
      action_required:
        "Restart or reconnect the agents, then answer this escalation (resolve_escalation): assignment stays halted until you do",
      raised_by: "server: all agents offline",
      always_immediate: { rule: "rule 5: every agent offline pages the user, whatever the directive" },
    });
    escalationId = esc.escalation.id;
    // The last agent's going offline is what paged the user: its incident says whether the page went out.
    const last = draft.incidents.findLast((i) => i.kind === "agent-offline" && i.agent === agentId);
    if (last && !already && !last.escalation_id) last.escalation_id = esc.escalation.id;
    for (const x of running) {
      x.status = "halted";
      x.halted_reason = "every agent is offline";
      x.halted_by = esc.escalation.id;
      decide(s, {
        action: "halt",
        rule: "rule 5: all agents offline: stop assigning new tasks until the user answers",
        inputs: { agents: agents.map((a) => a.id), escalation_id: esc.escalation.id },
        outcome: `session ${x.id} halted`,
      });
    }
  }
  return {
    agent: agentId,
    already_offline: already,
    reassigned,
    queued,
    halted,
    ...(escalationId ? { escalation_id: escalationId } : {}),
  };
}

/** What really happened to the agent's tasks, for the incident record. */
function offlineAction(reassigned: OfflineOutcome["reassigned"], queued: OfflineOutcome["queued"]): string {
  const parts = [
    ...reassigned.map((r) => `${r.task_id} reassigned to ${r.to}`),
    ...queued.map((q) => `${q.task_id} queued (${q.reason})`),
  ];
  return parts.length ? parts.join("; ") : "no task to reassign";
}

/** An agent that shows life again comes back; a halted session resumes. */
export function agentBack(s: Step, agentId: string, evidence: string): void {
  const agent = s.draft.agents[agentId];
  if (!agent || agent.availability !== "offline") return;
  agent.availability = "active";
  agent.missed_heartbeats = 0;
  delete agent.offline_since;
  delete agent.offline_reason;
  // What really happened to the incident: the agent came back (report: no sentence without its fact).
  for (const i of s.draft.incidents)
    if (i.kind === "agent-offline" && i.agent === agentId && !i.resolution)
      i.resolution = `${agentId} back at ${s.now.toISOString().slice(11, 16)} (${evidence})`;
  decide(s, {
    action: "agent-back",
    rule: "rule 4: any sign of life brings an offline agent back",
    agent: agentId,
    inputs: { evidence },
    outcome: "active",
  });
  // A halt that waits for the user's answer (all agents offline) stays until that answer.
  for (const x of s.draft.sessions.filter((y) => y.status === "halted" && !y.halted_by)) {
    x.status = "running";
    delete x.halted_reason;
    decide(s, {
      action: "resume",
      rule: "rule 5: assignment resumes when an agent is back",
      agent: agentId,
      inputs: {},
      outcome: `session ${x.id} running`,
    });
  }
}
