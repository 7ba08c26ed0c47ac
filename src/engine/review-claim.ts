import { randomUUID } from "node:crypto";
import { EoaError } from "../errors.js";
import { PROCESS_ID, processGone } from "../owner.js";
import type { Config } from "../config.js";
import type { State } from "../state/schema.js";
import type { Runtime } from "./runtime.js";

/**
 * One review of a PR at a time, across every process on the state directory: two reviews of one
 * PR would both decide, both approve and both try to merge. A claim is taken in the state before
 * the review reads anything and released on every path; one whose process died, or that outlived
 * any review (its commands' time limit, three times over), is taken over.
 */
/** How long a claim may stand before it is taken over although its process looks alive. */
function staleMs(config: Config): number {
  return 3 * config.review.command_timeout_minutes * 60_000 + 10 * 60_000;
}

/** Whether a review of `pr` holds its claim now (its process alive, the claim not stale). */
export function claimHeld(state: Readonly<State>, pr: number, now: Date, config: Config): boolean {
  const held = state.review_claims[String(pr)];
  return !!held && !processGone(held.owner) && now.getTime() - new Date(held.at).getTime() < staleMs(config);
}

export async function withReviewClaim<T>(
  rt: Runtime,
  pr: number,
  taskId: string,
  review: () => Promise<T>,
): Promise<T> {
  const call = randomUUID();
  const now = rt.now();
  await rt.store.transact((draft) => {
    const held = draft.review_claims[String(pr)];
    if (held && claimHeld(draft as State, pr, now, rt.config)) {
      throw new EoaError(
        "REVIEW_IN_PROGRESS",
        `PR #${pr} is being reviewed by another call (since ${held.at}${held.owner === PROCESS_ID ? "" : ", in another server process"})`,
        `wait for that review to finish, then call review_pr again: it returns the outcome (a merged PR is recorded as done)`,
        { pr_number: pr, since: held.at },
      );
    }
    draft.review_claims[String(pr)] = { owner: PROCESS_ID, call, task_id: taskId, at: now.toISOString() };
  });
  try {
    return await review();
  } finally {
    await rt.store
      .transact((draft) => {
        if (draft.review_claims[String(pr)]?.call === call) delete draft.review_claims[String(pr)];
      })
      .catch((err: Error) => rt.logger.warn("review claim not released", { pr, error: err.message }));
  }
}
