import type { Draft } from "immer";
import { EoaError } from "../errors.js";
import { PROCESS_ID, processGone } from "../owner.js";
import type { IdempotencyRecord, State } from "../state/schema.js";
import { plain } from "../state/records.js";

/** How long a pending idempotency record blocks a replay before it counts as abandoned (a crash). */
const IDEMPOTENCY_PENDING_MS = 10 * 60_000;

/** The call's idempotency key, claimed by its first transaction. */
export interface CallKey {
  id: string;
  tool: string;
  name: string;
  argsHash: string;
}

/** The first call's result found under the lock: the replay answers with it. */
export class Replay extends Error {
  constructor(readonly record: IdempotencyRecord) {
    super("replayed");
  }
}

/** Claims the call's key in its first transaction, or finds that another process has it. */
export function claimKey(draft: Draft<State>, key: CallKey, now: Date): void {
  const rec = draft.idempotency[key.id];
  // A plain copy: the draft is revoked when the transaction ends.
  if (rec && replayOf(rec, key.tool, key.name, key.argsHash, now)) throw new Replay(plain(rec));
  draft.idempotency[key.id] = {
    tool: key.tool,
    status: "pending",
    at: now.toISOString(),
    // The owner lets a replay after a crash run again at once instead of waiting out the window.
    result: { args_hash: key.argsHash, owner: PROCESS_ID },
  };
}

/**
 * What a recorded call means for a replay: its answer (done), a refusal (still running, or the key
 * used for other arguments), or nothing (abandoned by a crash: run again).
 */
export function replayOf<T>(
  rec: IdempotencyRecord,
  tool: string,
  key: string,
  argsHash: string,
  now: Date,
): { value: T } | undefined {
  if (rec.status === "done") {
    const stored = rec.result as { args_hash: string; value: T };
    if (stored.args_hash !== argsHash) {
      throw new EoaError(
        "IDEMPOTENCY_KEY_REUSED",
        `idempotency_key ${JSON.stringify(key)} was already used for a different ${tool} call`,
        "use a fresh idempotency_key for a different call",
      );
    }
    return { value: stored.value };
  }
  const owner = (rec.result as { owner?: unknown } | undefined)?.owner;
  if (now.getTime() - new Date(rec.at).getTime() < IDEMPOTENCY_PENDING_MS && !processGone(owner))
    throw inProgress(tool, key);
  return undefined;
}

export function inProgress(tool: string, key: string): EoaError {
  return new EoaError(
    "IDEMPOTENCY_IN_PROGRESS",
    `a ${tool} call with idempotency_key ${JSON.stringify(key)} is still running`,
    "wait for the first call to finish, then replay to read its result",
  );
}
