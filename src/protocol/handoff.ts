import { gitRemoteOf, type Config } from "../config.js";

/**
 * What the night will lack, said at handoff: the user approves a batch knowing which parts of the
 * protocol cannot run (a night with no GitHub can assign work but never review or merge it).
 */
export function handoffWarnings(config: Pick<Config, "github" | "git" | "review">): string[] {
  const out: string[] = [];
  if (!config.github.repo)
    out.push(
      "no GitHub repository configured (EOA_REPO, GITHUB_TOKEN): no PR can be reviewed or merged tonight, and no issue labelled",
    );
  else if (!config.github.token)
    out.push(
      "no GitHub token configured (GITHUB_TOKEN): github.com refuses writes without one (reviews, labels, merges); set it before a real night",
    );
  if (!gitRemoteOf(config))
    out.push(
      "no git remote to fetch PRs from (EOA_GIT_REMOTE or EOA_REPO): review_pr cannot check a PR out, so nothing is merged",
    );
  const missing = (["test", "lint"] as const).filter((k) => !config.review.commands[k]);
  if (missing.length)
    out.push(
      `no review.commands.${missing.join(" or ")} configured: Gate 2 cannot run ${missing.join(" or ")} on a PR and relies on CI checks alone`,
    );
  if (!config.github.project)
    out.push("no Projects v2 board configured (EOA_PROJECT): the kanban is kept in status: labels only");
  return out;
}
