import { z } from "zod";
import { resolveEscalation } from "../engine/escalation.js";
import { markedEscalation } from "../resources/views.js";
import { defineTool } from "./define-tool.js";
import { EscalationShape } from "./shapes.js";

export const resolveEscalationTool = defineTool({
  name: "resolve_escalation",
  title: "Record the user's answer to an escalation",
  description:
    "Records the user's decision on an open escalation, un-parks the tasks it held (they resume, or go back to dispatch) and " +
    "tells the agent holding them what was decided. A task another open escalation also parked stays parked until that one is resolved.",
  kind: "action",
  input: {
    escalation_id: z.string().regex(/^esc-\d{3,}$/, "an escalation id such as esc-001"),
    decision: z.string().min(1).max(4000),
  },
  output: {
    escalation: EscalationShape,
    unparked: z.array(z.string()),
    still_parked: z.array(z.object({ task_id: z.string(), escalation_id: z.string() })),
    dispatched: z.array(z.string()),
  },
  async handle(args, { rt }) {
    const out = await resolveEscalation(rt, args.escalation_id, args.decision);
    return {
      data: { ...out, escalation: markedEscalation(out.escalation) },
      text: `${out.escalation.id} resolved: ${args.decision}.${out.unparked.length ? ` Un-parked: ${out.unparked.join(", ")}.` : ""}${out.still_parked.length ? ` Still parked: ${out.still_parked.map((p) => `${p.task_id} (until ${p.escalation_id} is resolved)`).join(", ")}.` : ""}${out.dispatched.length ? ` Dispatched: ${out.dispatched.join(", ")}.` : ""}`,
    };
  },
});
