import { z } from "zod";
import { ESCALATION_CATEGORIES } from "../state/schema.js";

/** Input and output shapes shared by several tools. */

export const TaskId = z.string().regex(/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/, "a task id such as GH-101");
export const AgentId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, "a roster agent id");
export const SessionId = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}-session-\d{2,}$/, "a session id such as 2025-12-30-session-01");

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
    delivered_at: z.string().optional(),
  }),
  parked_tasks: z.array(z.string()),
  resolution: z.object({ decision: z.string(), at: z.string() }).optional(),
});
