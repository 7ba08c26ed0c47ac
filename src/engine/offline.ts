import type { Draft } from "immer";
import type { Config } from "../config.js";
import { agentLoads, chooseReplacement } from "../protocol/assignment.js";
import { stopNoticeMessage } from "../protocol/messages.js";
import { enqueueEffect, history, plain, recordDecision, recordIncident, tasksNow } from "../state/records.js";
import type { State, TaskRecord } from "../state/schema.js";
import { dispatchInDraft, requireAgent } from "./dispatch.js";
import { enqueueNotice, flushEffects } from "./effects.js";
import { escalateInDraft } from "./escalation.js";
import type { Runtime } from "./runtime.js";

/**
 * Recovery, rule 5. An offline agent's unfinished tasks go to its first eligible backup, else the
 * best other agent, else the queue; the old agent gets a stop notice and the new one a handoff.
 * With no agent left, assignment halts, the state is snapshotted and the user is paged (once).
 */

type S = Draft<State>;

/** Tasks whose work an agent holds: dispatched and not finished or parked. */
const HELD: readonly TaskRecord["status"][] = ["in-progress", "ai-review", "merge-release"];

export interface OfflineOutcome {
  agent: string;
  already_offline: boolean;
  reassigned: Array<{ task_id: string; to: string }>;
  queued: Array<{ task_id: string; reason: string }>;
  halted: boolean;
  escalation_id?: string;
  effects: string[];
}

export function markOfflineInDraft(
  draft: S,
  now: Date,
  config: Config,
  agentId: string,
  reason: string,
  /** Agents going offline in the same poll cycle: never chosen to take over. */
  leaving: ReadonlySet<string> = new Set(),
): OfflineOutcome {
  const agent = requireAgent(draft, agentId);
  const already = agent.availability === "offline";
  agent.availability = "offline";
  agent.offline_since ??= now.toISOString();
  agent.offline_reason = reason;
  const effects: string[] = [];
  const reassigned: OfflineOutcome["reassigned"] = [];
  const queued: OfflineOutcome["queued"] = [];
  const held = tasksNow(draft).filter((t) => t.assignee === agentId && HELD.includes(t.status));
  if (!already) {
    recordDecision(draft, now, {
      action: "mark-offline",
      rule: "rule 5: an offline agent's tasks are reassigned",
      agent: agentId,
      inputs: { reason, missed_heartbeats: agent.missed_heartbeats },
      outcome: "offline",
    });
    recordIncident(draft, now, {
      kind: "agent-offline",
      occurrence: `while holding ${held.length} task(s)`,
      description: `${agentId} went offline: ${reason}`,
      action: "its tasks were reassigned to backup agents",
    });
  }

  const loads = agentLoads(tasksNow(draft));
  for (const { task_id } of held) {
    const task = draft.tasks[task_id]!;
    effects.push(
      enqueueNotice(
        draft,
        now,
        task.task_id,
        stopNoticeMessage(plain(task) as TaskRecord, agent.session, `you were marked offline (${reason})`),
      ),
    );
    const candidates = Object.values(draft.agents).map((a) =>
      leaving.has(a.id) && a.id !== agentId ? { ...a, availability: "offline" as const } : a,
    );
    const replacement = chooseReplacement(task, agent, candidates, loads);
    if (replacement.agent !== null) {
      const out = dispatchInDraft(draft, now, task.task_id, {
        preferred: replacement.agent,
        handoffFrom: agentId,
        rule: replacement.rule,
        loads,
      });
      if (out.status === "dispatched") {
        effects.push(...out.effects);
        reassigned.push({ task_id: task.task_id, to: out.agent });
        continue;
      }
      queued.push({ task_id: task.task_id, reason: out.reason });
      continue;
    }
    if (!task.previous_assignees.includes(agentId)) task.previous_assignees.push(agentId);
    delete task.assignee;
    task.status = "todo";
    task.queue = { since: now.toISOString(), reason: `${agentId} went offline; ${replacement.reason}` };
    history(task, now, "queued", task.queue.reason);
    recordDecision(draft, now, {
      action: "queue",
      rule: "rule 5: no backup or other agent is eligible",
      task_id: task.task_id,
      agent: agentId,
      inputs: { backups: [...agent.backup] },
      outcome: `queued: ${replacement.reason}`,
    });
    effects.push(enqueueEffect(draft, now, "labels", { task_id: task.task_id }));
    queued.push({ task_id: task.task_id, reason: task.queue.reason });
  }

  let halted = false;
  let escalationId: string | undefined;
  const agents = Object.values(draft.agents);
  if (agents.length && agents.every((a) => a.availability === "offline")) {
    halted = true;
    for (const s of draft.sessions.filter((x) => x.status === "running")) {
      s.status = "halted";
      s.halted_reason = "every agent is offline";
      recordDecision(draft, now, {
        action: "halt",
        rule: "All Agents Offline: stop assigning new tasks",
        inputs: { agents: agents.map((a) => a.id) },
        outcome: `session ${s.id} halted`,
      });
    }
    const esc = escalateInDraft(draft, now, config, {
      category: "infrastructure",
      issue: "Every developer agent is offline: autonomous operation is halted",
      risk: "No work progresses until an agent comes back",
      action_required: "Restart or reconnect the agents; assignment resumes by itself when one shows life",
      raised_by: "server: all agents offline",
    });
    escalationId = esc.escalation.id;
    effects.push(...esc.effects);
  }
  return {
    agent: agentId,
    already_offline: already,
    reassigned,
    queued,
    halted,
    ...(escalationId ? { escalation_id: escalationId } : {}),
    effects,
  };
}

export async function markAgentOffline(
  rt: Runtime,
  agentId: string,
  reason: string,
): Promise<OfflineOutcome & { snapshot?: string }> {
  const now = rt.now();
  const out = await rt.store.transact((draft) => markOfflineInDraft(draft, now, rt.config, agentId, reason));
  return finishOffline(rt, out);
}

/** Sends what the transaction decided; takes the state snapshot the protocol asks for on a halt. */
export async function finishOffline(
  rt: Runtime,
  out: OfflineOutcome,
): Promise<OfflineOutcome & { snapshot?: string }> {
  const snapshot = out.halted ? await rt.snapshot(`every agent offline after ${out.agent}`) : undefined;
  if (out.effects.length) await flushEffects(rt, out.effects);
  return { ...out, ...(snapshot ? { snapshot } : {}) };
}

/** An agent that shows life again comes back; a halted session resumes. */
export function agentBackInDraft(draft: S, now: Date, agentId: string, evidence: string): void {
  const agent = draft.agents[agentId];
  if (!agent || agent.availability !== "offline") return;
  agent.availability = "active";
  agent.missed_heartbeats = 0;
  delete agent.offline_since;
  delete agent.offline_reason;
  recordDecision(draft, now, {
    action: "agent-back",
    rule: "rule 4: any sign of life brings an offline agent back",
    agent: agentId,
    inputs: { evidence },
    outcome: "active",
  });
  for (const s of draft.sessions.filter((x) => x.status === "halted")) {
    s.status = "running";
    delete s.halted_reason;
    recordDecision(draft, now, {
      action: "resume",
      rule: "assignment resumes when an agent is back",
      agent: agentId,
      inputs: {},
      outcome: `session ${s.id} running`,
    });
  }
}
