import { z } from "zod";
import type { PromptDefinition } from "./index.js";

export const handoffPrompt: PromptDefinition = {
  name: "handoff",
  title: "Hand tasks over before leaving",
  description:
    "The User Handoff Protocol: confirm the batch with the user, get approval and the directive, start.",
  args: {
    tasks: z.string().describe('The user\'s tasks, e.g. "GH-101, GH-102, GH-103"'),
    directive: z
      .string()
      .optional()
      .describe('The user\'s directive, e.g. "Escalate only for security issues"'),
  },
  render: ({ tasks, directive }) =>
    [
      `The user wants these completed autonomously: ${tasks}.`,
      "1. Run preflight and tell the user about any failing item.",
      `2. Call start_session with tasks: [${(tasks ?? "")
        .split(/[\s,]+/)
        .filter(Boolean)
        .map((t) => JSON.stringify(t))
        .join(
          ", ",
        )}]. Show the user the confirmation exactly: tasks with priorities, dependencies, scope estimate,`,
      '   available agents, warnings, ending with "Proceed with autonomous operation?".',
      "3. Only after the user approves, call start_session again with the session_id, approve: true and the user's",
      `   directive${directive ? ` ("${directive}")` : ""}.`,
      "4. Assign the tasks with assign_task (dependents queue and go out by themselves), then follow the",
      "   autonomous-operation prompt's loop.",
    ].join("\n"),
};
