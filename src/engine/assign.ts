import { EoaError } from "../errors.js";
import type { AssignRequest, DispatchOutcome } from "../protocol/machine/index.js";
import type { Runtime } from "./runtime.js";

/** Phase 1–2 for one task: the state machine decides (dispatch or queue), then the message goes out. */

export interface AssignResult {
  outcome: DispatchOutcome;
  message_id: string | null;
  warnings: string[];
}

export async function assignTask(rt: Runtime, args: AssignRequest): Promise<AssignResult> {
  const { result: outcome } = await rt.step({ type: "assign-requested", request: args });
  if (outcome.status === "queued") return { outcome, message_id: null, warnings: [] };
  const flushed = await rt.outbox.flush(outcome.effects);
  const msg = flushed.find((f) => f.id === outcome.effects[0]);
  if (msg && !msg.ok && msg.uncertain) {
    return {
      outcome,
      message_id: null,
      warnings: [
        `delivery to ${outcome.agent} is unconfirmed (${msg.error}): the next check_messages finds the message or sends it again`,
      ],
    };
  }
  if (!msg?.ok) {
    throw new EoaError(
      "ASSIGNMENT_NOT_SENT",
      `${args.task_id} was not assigned: the message to ${outcome.agent} failed: ${msg?.error ?? "unknown error"}`,
      "check AI Maestro (preflight), then call assign_task again; the task is back where it was",
      { agent: outcome.agent },
    );
  }
  const warnings = flushed
    .filter((f) => !f.ok)
    .map((f) => `${f.kind} not updated yet (retried next cycle): ${f.error}`);
  return { outcome, message_id: (msg.result?.message_id as string) ?? null, warnings };
}
