import { z } from "zod";
import { EFFORTS, PRIORITIES } from "../state/schema.js";
import { startSession } from "../engine/session.js";
import { untrusted, untrustedInline } from "../protocol/text.js";
import { defineTool } from "./define-tool.js";
import { SessionId, TaskId } from "./shapes.js";

const InlineTask = z.strictObject({
  task_id: TaskId,
  title: z.string().min(1).max(300),
  priority: z.enum(PRIORITIES).optional(),
  effort: z.enum(EFFORTS).optional(),
  depends_on: z.array(TaskId).max(100).optional(),
  instructions: z.string().max(20_000).optional(),
  completion_criteria: z.array(z.string().min(1).max(1000)).max(100).optional(),
  test_requirements: z.array(z.string().min(1).max(1000)).max(100).optional(),
  required_capabilities: z.array(z.string().min(1).max(100)).max(50).optional(),
  files_in_scope: z.array(z.string().min(1).max(300)).max(200).optional(),
  next_task_on_complete: TaskId.optional(),
  issue_number: z.number().int().positive().optional(),
});

export const startSessionTool = defineTool({
  name: "start_session",
  title: "Start an autonomous session (User Handoff Protocol)",
  description:
    'The User Handoff Protocol. First call with `tasks` (GitHub issue ids like "GH-101", read from the issues, or inline specs) ' +
    "and optionally the user's `directive`: returns the confirmation to show the user (tasks with priorities, dependencies, scope " +
    "estimate, available agents) and leaves the session awaiting_approval. After the user approves, call again with the same " +
    '`session_id`, `approve: true` and the user\'s directive (e.g. "Escalate only for security issues"): the session starts.',
  kind: "action",
  input: {
    tasks: z
      .array(z.union([TaskId, InlineTask]))
      .min(1)
      .max(200)
      .optional(),
    directive: z.string().min(1).max(2000).optional(),
    approve: z.boolean().optional(),
    session_id: SessionId.optional(),
  },
  output: {
    session_id: z.string(),
    status: z.enum(["awaiting_approval", "running", "halted", "complete"]),
    tasks: z.array(
      z.object({
        task_id: z.string(),
        title: z.string(),
        priority: z.enum(PRIORITIES),
        effort: z.enum(EFFORTS).nullable(),
        depends_on: z.array(z.string()),
        required_capabilities: z.array(z.string()),
        source: z.enum(["github", "inline"]),
      }),
    ),
    scope_estimate: z.string(),
    available_agents: z.array(z.string()),
    warnings: z.array(z.string()),
    directive: z.string().nullable(),
    escalation_policy: z.object({ immediate: z.array(z.string()), source: z.string() }),
  },
  async handle(args, { rt }) {
    const c = await startSession(rt, args);
    const lines =
      c.status === "awaiting_approval"
        ? [
            "Confirming autonomous tasks:",
            // Titles are issue text (or the caller's): data to show the user, never instructions.
            untrusted(
              "task titles",
              c.tasks
                .map(
                  (t) =>
                    `- ${t.task_id}: ${t.title} (${t.priority} priority)${t.depends_on.length ? ` after ${t.depends_on.join(", ")}` : ""}`,
                )
                .join("\n"),
            ),
            "",
            `Scope estimate: ${c.scope_estimate}`,
            `Available agents: ${c.available_agents.join(", ") || "none online"}`,
            ...c.warnings.map((w) => `Warning: ${w}`),
            "",
            "Proceed with autonomous operation?",
            `(Show this to the user; on approval call start_session { session_id: "${c.session_id}", approve: true, directive: "<the user's words>" }.)`,
          ]
        : [
            `Autonomous operation initiated: session ${c.session_id} is ${c.status}.`,
            `Immediate escalation for: ${c.escalation_policy.immediate.join(", ")} (${c.escalation_policy.source}).`,
            "Next: assign_task for each task (dependent tasks queue and go out by themselves), then loop on check_messages.",
          ];
    // The structured answer marks the titles as the text answer does.
    const data = {
      ...c,
      tasks: c.tasks.map((t) => ({ ...t, title: untrustedInline(`${t.task_id} title`, t.title) })),
    };
    return { data, text: lines.join("\n") };
  },
});
