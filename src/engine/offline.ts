import type { OfflineOutcome } from "../protocol/machine/index.js";
import type { Runtime } from "./runtime.js";

/** Recovery, rule 5: the state machine moves the agent's work; a halt also snapshots the state. */

export type OfflineResult = OfflineOutcome & {
  snapshot?: string;
  /** With a halt: whether the page reached the user's channel (else it is retried every cycle). */
  paged?: boolean;
};

export async function markAgentOffline(rt: Runtime, agentId: string, reason: string): Promise<OfflineResult> {
  const { result, effects } = await rt.step({ type: "agent-offline-reported", agent: agentId, reason });
  return finishOffline(rt, result, effects);
}

/** Sends what the transaction decided; takes the state snapshot the protocol asks for on a halt. */
export async function finishOffline(
  rt: Runtime,
  out: OfflineOutcome,
  effects: readonly string[],
): Promise<OfflineResult> {
  const snapshot = out.halted ? await rt.snapshot(`every agent offline after ${out.agent}`) : undefined;
  if (effects.length) await rt.outbox.flush(effects);
  if (!out.escalation_id) return { ...out, ...(snapshot ? { snapshot } : {}) };
  const esc = (await rt.store.read()).escalations.find((e) => e.id === out.escalation_id);
  return { ...out, ...(snapshot ? { snapshot } : {}), paged: esc?.delivery.status === "delivered" };
}
