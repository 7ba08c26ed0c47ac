import { untrusted } from "../protocol/text.js";
import { diffPages } from "../review/diff-pages.js";
import { defineResource, json } from "./define-resource.js";

/** A PR's diff, one page of per-file patches at a time (page 1 is in the review packet). */
export const diffResource = defineResource({
  name: "review-diff",
  uri: "eoa://reviews/{pr_number}/diff/{page}",
  title: "A reviewed PR's diff, by page",
  description:
    "The unified diff of a PR reviewed this session (the head last reviewed, against its base), in pages of per-file patches " +
    "(about 48 KB each): judge Gate 1 from the code. The text is the agent's, marked untrusted.",
  mimeType: "application/json",
  dependsOn: ["reviews"],
  read: async (rt, state, params) => {
    const number = Number(params.pr_number);
    const page = Number(params.page);
    if (!Number.isInteger(number) || !Number.isInteger(page) || page < 1) return null;
    const last = Object.values(state.reviews)
      .filter((r) => r.pr_number === number)
      .sort((a, b) => (a.at < b.at ? 1 : -1))[0];
    if (!last || !rt.hasGit || !rt.hasGithub) return null;
    const pr = await rt.github.getPull(number);
    const diff = await rt.git.diff(pr.baseRef, last.head_sha);
    const pages = diffPages(diff.text);
    if (page > pages.length) return null;
    return json({
      pr_number: number,
      head_sha: last.head_sha,
      page,
      pages: pages.length,
      next: page < pages.length ? `eoa://reviews/${number}/diff/${page + 1}` : null,
      truncated: diff.truncated,
      diff: untrusted(`PR #${number} diff, page ${page}`, pages[page - 1]!),
    });
  },
});
