import type { EscalationRecord } from "../state/schema.js";
import type { EscalateInput, EscalateOutcome, ResolveOutcome } from "../protocol/machine/index.js";
import type { Runtime } from "./runtime.js";

/** Rule 8 through the state machine: the escalation is recorded, then delivered (or retried). */

export async function escalate(
  rt: Runtime,
  input: EscalateInput,
): Promise<EscalateOutcome & { delivered: boolean; delivery_error?: string }> {
  const { result: out, effects } = await rt.step({ type: "escalation-raised", input });
  if (!out.delivery_effect) return { ...out, delivered: out.escalation.delivery.status === "delivered" };
  const result = (await rt.outbox.flush(effects)).find((o) => o.id === out.delivery_effect);
  const esc = (await rt.store.read()).escalations.find((e) => e.id === out.escalation.id) ?? out.escalation;
  return {
    ...out,
    escalation: structuredClone(esc) as EscalationRecord,
    delivered: result?.ok ?? false,
    ...(result && !result.ok ? { delivery_error: result.error! } : {}),
  };
}

export async function resolveEscalation(
  rt: Runtime,
  escalationId: string,
  decision: string,
): Promise<ResolveOutcome> {
  const { result, effects } = await rt.step({
    type: "escalation-answered",
    escalation_id: escalationId,
    decision,
  });
  await rt.outbox.flush(effects);
  // And anything older still pending: a dispatch this answer allowed may follow earlier effects.
  await rt.outbox.flush();
  return result;
}
