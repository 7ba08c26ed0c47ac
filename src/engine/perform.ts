import { EoaError, isEoaError } from "../errors.js";
import { kanbanLabels, matchStatusOption } from "../protocol/kanban.js";
import type { EffectRecord, OutboundMessage } from "../state/schema.js";
import type { Runtime } from "./runtime.js";

/**
 * Makes one side effect through the clients. `mayHaveHappened`: it was tried before, or its
 * process died, so it is looked for before it is made again.
 */
export async function perform(
  rt: Runtime,
  eff: EffectRecord,
  mayHaveHappened: boolean,
): Promise<Record<string, unknown>> {
  switch (eff.kind) {
    case "message": {
      const { message } = eff.payload;
      // Failures before the send itself are certain: nothing was sent.
      try {
        await rt.orchestratorReady();
        if (mayHaveHappened) {
          const found = await findDelivered(rt, eff.id, message);
          // Delivered when the hub says it was, not when this retry found it.
          if (found) return { message_id: found.id, reconciled: true, delivered_at: found.timestamp };
        }
      } catch (err) {
        if (isEoaError(err) && err.details?.may_have_arrived) {
          throw new EoaError(err.code, err.message, err.nextStep, {
            ...err.details,
            may_have_arrived: false,
          });
        }
        throw err;
      }
      const sent = await rt.aimaestro.send({
        from: rt.config.orchestrator,
        to: message.to,
        subject: message.subject,
        priority: message.priority,
        content: { ...message.content, context: { ...message.content.context, effect_id: eff.id } },
      });
      return { message_id: sent.id };
    }
    case "labels":
      return syncKanban(rt, eff.payload.task_id);
    case "review": {
      const p = eff.payload;
      const r = await rt.github.createReview(p.pr_number, { event: p.event, body: p.body, commitId: p.sha });
      return { review_id: r.id };
    }
    case "merge": {
      const p = eff.payload;
      // A merge that may have happened (before a crash, or an attempt whose outcome was lost) is
      // not repeated; a fresh one goes straight to GitHub, which the review read a moment ago.
      if (mayHaveHappened && (await rt.github.getPull(p.pr_number)).merged) {
        return { merged: true, reconciled: true };
      }
      const m = await rt.github.merge(p.pr_number, { method: p.method, sha: p.sha, title: p.title });
      return { merged: m.merged, sha: m.sha };
    }
    case "rerun": {
      const r = await rt.github.rerunChecks(
        eff.payload.sha,
        eff.payload.checks.map((c) => c.id),
      );
      return { workflow_runs: r.workflowRuns, check_runs: r.checkRuns, skipped: r.skipped };
    }
    case "comment": {
      const { issue_number: number, body } = eff.payload;
      // Never twice: a comment that may have been made is looked for by its marker first.
      const marker = `<!-- eoa-mcp ${eff.id} -->`;
      if (mayHaveHappened && (await rt.github.listCommentBodies(number)).some((b) => b.includes(marker)))
        return { reconciled: true };
      const c = await rt.github.comment(number, `${body}\n\n${marker}`);
      return { comment_id: c.id };
    }
    case "pr_label":
      await rt.github.markLabel(eff.payload.pr_number, eff.payload.label, eff.payload.present);
      return {};
    case "close_issue":
      await rt.github.closeIssue(eff.payload.issue_number);
      return {};
  }
}

/** A message sent before a crash carries its effect id in `content.context`: look for it. */
async function findDelivered(
  rt: Runtime,
  effectId: string,
  message: OutboundMessage,
): Promise<{ id: string; timestamp: string } | null> {
  const inbox = await rt.aimaestro.listInbox(message.to, { limit: 0 });
  for (const entry of inbox) {
    if (entry.subject !== message.subject) continue;
    const full = await rt.aimaestro.getMessage(message.to, entry.id);
    const ctx = full?.content.context as Record<string, unknown> | undefined;
    if (ctx?.effect_id === effectId) return { id: full!.id, timestamp: full!.timestamp };
  }
  return null;
}

/** Labels (exactly one `status:`, at most one `assign:`) and the Projects v2 Status, from the task as it is now. */
async function syncKanban(rt: Runtime, taskId: string): Promise<Record<string, unknown>> {
  const task = (await rt.store.read()).tasks[taskId];
  if (!task?.issue_number || !rt.hasGithub) return { skipped: "no issue" };
  const gh = rt.github;
  const issue = await gh.getIssue(task.issue_number);
  const labels = kanbanLabels(issue.labels, task.status, task.assignee);
  const same = labels.length === issue.labels.length && labels.every((l) => issue.labels.includes(l));
  if (!same) await gh.setLabels(task.issue_number, labels);
  let project: string | undefined;
  const number = rt.config.github.project;
  if (number && rt.config.github.repo) {
    const owner = rt.config.github.repo.split("/")[0]!;
    const board = await gh.getProject(owner, number);
    const option = board.statusField ? matchStatusOption(board.statusField.options, task.status) : undefined;
    if (board.statusField && option) {
      const itemId = await gh.addIssueToProject(board.id, issue.nodeId);
      await gh.setProjectStatus(board.id, itemId, board.statusField.id, option.id);
      project = option.name;
    }
  }
  return { labels, ...(project ? { project_status: project } : {}) };
}
