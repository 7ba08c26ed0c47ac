import { isDraft, original } from "immer";
import type { Step } from "./records.js";

/**
 * What the state need not keep for ever (issue 16: a long night must not grow every transaction's
 * cost). Forgotten once a poll interval, by the counted cycle.
 */

/**
 * Processed message ids: a message whose read mark failed is listed again within cycles, never
 * days later, and only then must it be known as processed.
 */
export const MESSAGES_KEPT_MS = 7 * 24 * 3600_000;
/** Tool calls' results for replays: a replay follows a lost answer within minutes, not days. */
export const CALL_RESULTS_KEPT_MS = 24 * 3600_000;

export function forgetOld(s: Step): void {
  const now = s.now.getTime();
  // Read from the committed maps: walking the drafts would draft every record in them.
  const committed = <T extends object>(m: T): T => (isDraft(m) ? (original(m as never) as T) : m);
  for (const [id, m] of Object.entries(committed(s.draft.messages)))
    if (now - Date.parse(m.at) > MESSAGES_KEPT_MS) delete s.draft.messages[id];
  for (const [id, r] of Object.entries(committed(s.draft.idempotency)))
    if (now - Date.parse(r.at) > CALL_RESULTS_KEPT_MS) delete s.draft.idempotency[id];
}
