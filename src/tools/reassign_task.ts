import { z } from "zod";
import { reassignTask } from "../engine/instruct.js";
import { defineTool } from "./define-tool.js";
import { AgentId, TaskId } from "./shapes.js";

export const reassignTaskTool = defineTool({
  name: "reassign_task",
  title: "Move one task to another agent",
  description:
    'Phase 3, "reassign to a different agent if agent issue": moves one held task to the named agent if it is active, capable ' +
    "and has room, else to the best such agent other than its holder. The old holder gets a stop notice, the new one a handoff " +
    "(branch, PR, progress), under a new epoch; recorded as a decision. Refused, changing nothing, when no other agent may take " +
    "it. To move every task of an agent that is gone, use mark_agent_offline.",
  kind: "action",
  input: {
    task_id: TaskId,
    agent: AgentId.optional(),
    reason: z.string().min(1).max(1000),
  },
  output: {
    task_id: z.string(),
    from: z.string(),
    to: z.string(),
    assignment_epoch: z.number().int(),
    warnings: z.array(z.string()),
  },
  async handle(args, { rt }) {
    const out = await reassignTask(rt, args);
    const data = {
      task_id: out.task_id,
      from: out.from,
      to: out.to,
      assignment_epoch: out.epoch,
      warnings: out.warnings,
    };
    return {
      data,
      text: [
        `${out.task_id} moved from ${out.from} to ${out.to} (epoch ${out.epoch}): stop notice and handoff sent.`,
        ...out.warnings.map((w) => `Warning: ${w}`),
      ].join("\n"),
    };
  },
});
