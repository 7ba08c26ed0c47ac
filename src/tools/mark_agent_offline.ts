import { z } from "zod";
import { markAgentOffline } from "../engine/offline.js";
import { defineTool } from "./define-tool.js";
import { AgentId } from "./shapes.js";

export const markAgentOfflineTool = defineTool({
  name: "mark_agent_offline",
  title: "Mark an agent offline and reassign its work",
  description:
    "Recovery: marks a roster agent offline. Each of its unfinished tasks goes to its first active, capable backup with room, " +
    "else the best other agent, else the queue; the agent gets a stop notice and the new one a handoff (branch, PR, progress). " +
    "If no agent is left, assignment halts, the state is snapshotted and the user is paged. The agent comes back by itself " +
    "when it shows life again.",
  kind: "action",
  input: {
    agent: AgentId,
    reason: z.string().min(1).max(1000).optional(),
  },
  output: {
    agent: z.string(),
    already_offline: z.boolean(),
    reassigned: z.array(z.object({ task_id: z.string(), to: z.string() })),
    queued: z.array(z.object({ task_id: z.string(), reason: z.string() })),
    halted: z.boolean(),
    escalation_id: z.string().nullable(),
    snapshot: z.string().nullable(),
  },
  async handle(args, { rt }) {
    const out = await markAgentOffline(rt, args.agent, args.reason ?? "marked offline by the orchestrator");
    const data = {
      agent: out.agent,
      already_offline: out.already_offline,
      reassigned: out.reassigned,
      queued: out.queued,
      halted: out.halted,
      escalation_id: out.escalation_id ?? null,
      snapshot: out.snapshot ?? null,
    };
    const lines = [
      `${out.agent} is offline${out.already_offline ? " (it already was)" : ""}.`,
      ...out.reassigned.map((r) => `- ${r.task_id} handed off to ${r.to}`),
      ...out.queued.map((q) => `- ${q.task_id} queued: ${q.reason}`),
      ...(out.halted
        ? [
            `Every agent is offline: assignment halted until the user answers ${out.escalation_id}; ` +
              (out.paged
                ? "the user was paged (urgent)"
                : "the page is not delivered yet and is retried every cycle") +
              `; snapshot ${out.snapshot}.`,
          ]
        : []),
    ];
    return { data, text: lines.join("\n") };
  },
});
