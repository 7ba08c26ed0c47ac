import { decide, type Step } from "./records.js";

/**
 * The configured roster is the truth for who the agents are and what they can do; the state keeps
 * what the night learned about them (availability, missed heartbeats, last seen).
 */
export function rosterSynced(s: Step): void {
  const { draft, config } = s;
  const limit = config.limits.max_concurrent_tasks;
  const configured = new Set(config.agents.map((a) => a.id));
  for (const a of config.agents) {
    const existing = draft.agents[a.id];
    const fields = {
      id: a.id,
      session: (a.session ?? a.id).toLowerCase(),
      capabilities: a.capabilities,
      // An agent may set a lower limit than the config's, never a higher one.
      max_concurrent_tasks: Math.min(a.max_concurrent_tasks ?? limit, limit),
      backup: a.backup ?? [],
    };
    if (existing) {
      const changed =
        JSON.stringify(fields) !==
        JSON.stringify({
          id: existing.id,
          session: existing.session,
          capabilities: existing.capabilities,
          max_concurrent_tasks: existing.max_concurrent_tasks,
          backup: existing.backup,
        });
      if (changed) Object.assign(existing, fields);
      if (existing.availability === "onboarding" && !a.onboarding) existing.availability = "active";
    } else {
      draft.agents[a.id] = {
        ...fields,
        availability: a.onboarding ? "onboarding" : "active",
        missed_heartbeats: 0,
      };
    }
  }
  for (const id of Object.keys(draft.agents)) {
    if (configured.has(id)) continue;
    const holds = Object.values(draft.tasks).some((t) => t.assignee === id && t.status !== "done");
    if (!holds) {
      delete draft.agents[id];
      decide(s, {
        action: "roster-remove",
        rule: "the configured roster is the source of agents",
        agent: id,
        inputs: {},
        outcome: "removed (no task held)",
      });
    }
  }
}
