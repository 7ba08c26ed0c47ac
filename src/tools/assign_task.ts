import { z } from "zod";
import { PRIORITIES } from "../state/schema.js";
import { assignTask } from "../engine/assign.js";
import { defineTool } from "./define-tool.js";
import { AgentId, TaskId } from "./shapes.js";

export const assignTaskTool = defineTool({
  name: "assign_task",
  title: "Assign a task to a developer agent",
  description:
    "Phase 1–2: dispatch one task of the running session. Without `agent` the server picks an active agent whose " +
    "capabilities cover the task and who has room (least loaded first). Returns `dispatched` (with the AI Maestro message id) " +
    "or `queued` with the reason (dependencies not done, every capable agent at its limit, assignment halted): a queued task " +
    "is dispatched by the server itself as soon as it can go. Refuses unknown tasks or agents, an agent lacking the task's " +
    "capabilities, and dependency cycles.",
  kind: "action",
  input: {
    task_id: TaskId,
    agent: AgentId.optional(),
    priority: z.enum(PRIORITIES).optional(),
    instructions: z.string().min(1).max(20_000).optional(),
    completion_criteria: z.array(z.string().min(1).max(1000)).max(100).optional(),
    test_requirements: z.array(z.string().min(1).max(1000)).max(100).optional(),
    escalation_rules: z
      .strictObject({
        on_blocked: z.string().min(1).max(500).optional(),
        on_security_concern: z.string().min(1).max(500).optional(),
        on_architecture_question: z.string().min(1).max(500).optional(),
      })
      .optional(),
    next_task_on_complete: TaskId.optional(),
    depends_on: z.array(TaskId).max(100).optional(),
  },
  output: {
    status: z.enum(["dispatched", "queued"]),
    task_id: z.string(),
    agent: z.string().nullable(),
    assignment_epoch: z.number().int().nullable(),
    message_id: z.string().nullable(),
    reason: z.string().nullable(),
    warnings: z.array(z.string()),
  },
  async handle(args, { rt }) {
    const { outcome, message_id, warnings } = await assignTask(rt, args);
    const data =
      outcome.status === "dispatched"
        ? {
            status: outcome.status,
            task_id: outcome.task_id,
            agent: outcome.agent,
            assignment_epoch: outcome.epoch,
            message_id,
            reason: null,
            warnings,
          }
        : {
            status: outcome.status,
            task_id: outcome.task_id,
            agent: null,
            assignment_epoch: null,
            message_id: null,
            reason: outcome.reason,
            warnings,
          };
    const text =
      outcome.status === "dispatched"
        ? `${outcome.task_id} dispatched to ${outcome.agent} (epoch ${outcome.epoch}, message ${message_id}).`
        : `${outcome.task_id} queued: ${outcome.reason}. The server dispatches it by itself when it can.`;
    return { data, text: [text, ...warnings.map((w) => `Warning: ${w}`)].join("\n") };
  },
});
