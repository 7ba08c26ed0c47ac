import { z } from "zod";
import { ESCALATION_CATEGORIES } from "../state/schema.js";

/** Output shapes shared by several tools. */

export const EscalationShape = z.object({
  id: z.string(),
  level: z.enum(["immediate", "deferred"]),
  category: z.enum(ESCALATION_CATEGORIES),
  status: z.enum(["open", "resolved"]),
  task_id: z.string().optional(),
  issue: z.string(),
  risk: z.string().optional(),
  context: z.string().optional(),
  current_action: z.string().optional(),
  reversible: z.boolean().optional(),
  action_required: z.string().optional(),
  occurrences: z.number().int(),
  created_at: z.string(),
  updated_at: z.string(),
  channel: z.string(),
  delivery: z.object({
    status: z.enum(["pending", "delivered", "failed"]),
    attempts: z.number().int(),
    last_error: z.string().optional(),
    message_id: z.string().optional(),
  }),
  parked_tasks: z.array(z.string()),
  resolution: z.object({ decision: z.string(), at: z.string() }).optional(),
});
