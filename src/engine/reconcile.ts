import { errorMessage, isEoaError } from "../errors.js";
import type { EffectOf } from "../state/schema.js";
import { byTaskId, tasksUnder } from "../state/task-index.js";
import { claimHeld } from "./review-claim.js";
import type { Runtime } from "./runtime.js";

/**
 * Finishes what a committed decision started when the process that made it is gone (docs/PROTOCOL.md,
 * Durability): a task left in `merge-release` whose PR GitHub shows merged is completed (done,
 * capacity freed, dependents and the next task dispatched); one whose own merge (the effect of the
 * approval that put it there) failed goes back to review; one at human review whose PR a person
 * merged is completed the same way. Runs at start-up and in every poll cycle;
 * the outbox has made (or looked up) any merge a dead process left pending before this runs. A PR
 * a review is working on right now (its claim is held) is that review's to finish.
 */
export async function reconcileMerges(rt: Runtime): Promise<string[]> {
  if (!rt.hasGithub) return [];
  const state = await rt.store.read();
  const now = rt.now();
  // At human review a person merges on GitHub: the cycle sees it and the night goes on (dependents).
  const waiting = tasksUnder(state.tasks, ["merge-release", "human-review"])
    .filter((t) => t.pr_number && !claimHeld(state, t.pr_number, now, rt.config))
    .sort(byTaskId);
  const done: string[] = [];
  for (const task of waiting) {
    const merge = task.merge_effect
      ? (state.outbox.find((e) => e.id === task.merge_effect) as EffectOf<"merge"> | undefined)
      : undefined;
    // Being made right now (this process or a live one): its own caller completes it.
    if (merge && (merge.status === "pending" || rt.outbox.busy(merge.id))) continue;
    let pr;
    try {
      pr = await rt.github.getPull(task.pr_number!);
    } catch (err) {
      rt.logger.warn("merge reconciliation: PR not read", { task: task.task_id, error: errorMessage(err) });
      continue;
    }
    const sha = merge?.payload.sha ?? task.review_head ?? "";
    try {
      if (pr.merged) {
        const out = await rt.step({
          type: "merge-observed",
          task_id: task.task_id,
          pr_number: task.pr_number!,
          head_sha: sha,
          merge_sha: (merge?.result?.sha as string | undefined) ?? pr.mergeCommitSha,
          method: merge?.payload.method ?? rt.config.review.merge_method,
          by_person: task.status === "human-review",
        });
        await rt.outbox.flush(out.effects);
        done.push(task.task_id);
      } else if (merge?.status === "failed") {
        const out = await rt.step({
          type: "merge-refused",
          task_id: task.task_id,
          pr: { number: task.pr_number!, head_sha: sha, base_ref: "" },
          reason: "failed",
          error: merge.error ?? "the merge failed",
        });
        await rt.outbox.flush(out.effects);
      }
      // Approved without a merge effect (auto_merge off): it waits for a person to merge it.
    } catch (err) {
      // The task moved on between the read and the step (a review finished it): nothing to finish.
      if (!(isEoaError(err) && err.code === "TASK_CHANGED")) throw err;
    }
  }
  return done;
}
