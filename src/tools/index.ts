import type { AnyTool } from "./define-tool.js";
import { assignTaskTool } from "./assign_task.js";
import { checkMessagesTool } from "./check_messages.js";
import { escalateTool } from "./escalate.js";
import { markAgentOfflineTool } from "./mark_agent_offline.js";
import { preflightTool } from "./preflight.js";
import { reassignTaskTool } from "./reassign_task.js";
import { resolveEscalationTool } from "./resolve_escalation.js";
import { reviewPrTool } from "./review_pr.js";
import { sendInstructionsTool } from "./send_instructions.js";
import { startSessionTool } from "./start_session.js";
import { writeReportTool } from "./write_report.js";

/** Every tool, in the order of the protocol. */
export const tools: readonly AnyTool[] = [
  preflightTool,
  startSessionTool,
  assignTaskTool,
  checkMessagesTool,
  sendInstructionsTool,
  reassignTaskTool,
  reviewPrTool,
  escalateTool,
  resolveEscalationTool,
  markAgentOfflineTool,
  writeReportTool,
];
