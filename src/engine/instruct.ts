import type { Runtime } from "./runtime.js";

/** Phase 3's moves on one task (rule 5b): the state machine decides, then the messages go out. */

export interface SendResult {
  /** AI Maestro's id of the message; null when it is not delivered yet. */
  message_id: string | null;
  /** Why it is not delivered yet (it is retried every cycle). */
  pending: string | null;
}

export async function sendInstructions(
  rt: Runtime,
  args: { task_id: string; instructions: string; in_reply_to?: string | undefined },
): Promise<{ task_id: string; agent: string; epoch: number } & SendResult> {
  const { result, effects } = await rt.step({ type: "instructions-sent", ...args });
  const sent = (await rt.outbox.flush(effects)).find((o) => o.id === result.effect);
  return {
    task_id: result.task_id,
    agent: result.agent,
    epoch: result.epoch,
    message_id: sent?.ok ? ((sent.result?.message_id as string | undefined) ?? null) : null,
    pending: sent?.ok ? null : (sent?.error ?? "not sent yet"),
  };
}

export async function reassignTask(
  rt: Runtime,
  args: { task_id: string; agent?: string | undefined; reason: string },
): Promise<{ task_id: string; from: string; to: string; epoch: number; warnings: string[] }> {
  const { result, effects } = await rt.step({ type: "reassign-requested", ...args });
  const flushed = await rt.outbox.flush(effects);
  const warnings = flushed
    .filter((f) => !f.ok)
    .map((f) => `${f.kind} ${f.id} not done yet (retried next cycle): ${f.error}`);
  return { task_id: result.task_id, from: result.from, to: result.to, epoch: result.epoch, warnings };
}
