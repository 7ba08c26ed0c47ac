import { z } from "zod";
import { sendInstructions } from "../engine/instruct.js";
import { defineTool } from "./define-tool.js";
import { TaskId } from "./shapes.js";

export const sendInstructionsTool = defineTool({
  name: "send_instructions",
  title: "Send instructions to the agent holding a task",
  description:
    "Phase 3: a message to the agent that holds the task now, under its assignment epoch: fix instructions after an error " +
    "report, or your answer to its question (judge conservatively and reversibly). Recorded as a decision. The task must be " +
    "held (in progress, in review or being merged); a queued task gets its instructions through assign_task.",
  kind: "action",
  input: {
    task_id: TaskId,
    instructions: z.string().min(1).max(8000),
    in_reply_to: z
      .string()
      .min(1)
      .max(200)
      .optional()
      .describe("the message or escalation this answers (e.g. its id)"),
  },
  output: {
    task_id: z.string(),
    agent: z.string(),
    assignment_epoch: z.number().int(),
    message_id: z.string().nullable(),
    pending: z.string().nullable(),
  },
  async handle(args, { rt }) {
    const out = await sendInstructions(rt, args);
    const data = {
      task_id: out.task_id,
      agent: out.agent,
      assignment_epoch: out.epoch,
      message_id: out.message_id,
      pending: out.pending,
    };
    return {
      data,
      text: out.message_id
        ? `Instructions for ${out.task_id} sent to ${out.agent} (epoch ${out.epoch}, message ${out.message_id}).`
        : `Instructions for ${out.task_id} to ${out.agent} are recorded but not delivered yet (${out.pending}); they are retried every cycle.`,
    };
  },
});
