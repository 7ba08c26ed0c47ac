import { z } from "zod";
import { ESCALATION_CATEGORIES } from "../state/schema.js";
import { escalate } from "../engine/escalation.js";
import { markedEscalation } from "../resources/views.js";
import { defineTool } from "./define-tool.js";
import { EscalationShape, TaskId } from "./shapes.js";

export const escalateTool = defineTool({
  name: "escalate",
  title: "Escalate an issue to the user",
  description:
    "Immediate escalation (security, data corruption, critical infrastructure: pages the user on the user channel, urgent, and " +
    "blocks the task) or deferred escalation (architecture, dependency, non-critical blockers: queued for the user's review while " +
    "work goes on). The session directive narrows what is immediate; security always is. An open escalation of the same task " +
    "and category absorbs this one. If delivery fails the escalation is kept and retried every poll cycle.",
  kind: "action",
  input: {
    category: z.enum(ESCALATION_CATEGORIES),
    issue: z.string().min(1).max(2000),
    task_id: TaskId.optional(),
    risk: z.string().min(1).max(1000).optional(),
    context: z.string().min(1).max(4000).optional(),
    current_action: z.string().min(1).max(1000).optional(),
    reversible: z.boolean().optional(),
    action_required: z.string().min(1).max(1000).optional(),
  },
  output: {
    escalation: EscalationShape,
    merged: z.boolean(),
    delivered: z.boolean(),
    delivery_error: z.string().nullable(),
  },
  async handle(args, { rt }) {
    const out = await escalate(rt, { ...args, raised_by: "orchestrator" });
    const e = out.escalation;
    const text = out.merged
      ? `Merged into open escalation ${e.id} (${e.occurrences} occurrences); no new message sent.`
      : `${e.id}: ${e.level} ${e.category} escalation to ${e.channel} — ${out.delivered ? "delivered" : `NOT delivered yet (${out.delivery_error}); it is retried every poll cycle`}.` +
        (e.parked_tasks.length ? ` Parked until resolved: ${e.parked_tasks.join(", ")}.` : "");
    return {
      data: {
        // Merged into an agent's open escalation, its text is that agent's: marked as data.
        escalation: markedEscalation(e),
        merged: out.merged,
        delivered: out.delivered,
        delivery_error: out.delivery_error ?? null,
      },
      text,
    };
  },
});
