import { error, list, noPush, notFound, obj, route, type Route, str, validation } from "./http.js";
import { addIssue } from "./issues.js";
import type { IssueRec, PullRec, ReviewRec } from "./records.js";
import { idOf, sha1, type SimState } from "./state.js";
import type { GitHubStandIn, MergeableState, PullFileSpec } from "./types.js";

/** Pull requests: the pull itself, its files, reviews and the merge. */

/** What GitHub computes about a pull request: from git for a real head, else as scripted. */
interface Computed {
  files: PullFileSpec[];
  commits: number;
  mergeable: boolean | null;
  mergeableState: MergeableState;
  baseSha: string;
}

async function compute(s: SimState, p: PullRec): Promise<Computed> {
  const scripted: Computed = {
    files: p.files ?? [],
    commits: p.shas.length,
    mergeable: p.mergeable,
    mergeableState: p.mergeableState,
    baseSha: sha1(`base:${p.baseRef}`),
  };
  if (!s.git || !(await s.git.has(p.headSha))) return scripted;
  const baseSha = p.baseAtMerge ?? (await s.git.tip(p.baseRef));
  const diff = p.files === null ? await s.git.diff(baseSha, p.headSha) : null;
  // A merged PR's head is in its base already; GitHub stops computing mergeability then.
  const clean = p.scriptedMergeable || p.merged ? null : await s.git.mergesCleanly(p.baseRef, p.headSha);
  return {
    files: diff?.files ?? scripted.files,
    commits: diff?.commits ?? scripted.commits,
    mergeable: clean === null ? p.mergeable : clean,
    mergeableState: clean === null ? p.mergeableState : clean ? "clean" : "dirty",
    baseSha,
  };
}

function pullJson(s: SimState, base: string, i: IssueRec, p: PullRec, c: Computed) {
  const additions = c.files.reduce((n, f) => n + f.additions, 0);
  const deletions = c.files.reduce((n, f) => n + f.deletions, 0);
  const url = `${s.repoUrl(base)}/pulls/${i.number}`;
  const issueUrl = `${s.repoUrl(base)}/issues/${i.number}`;
  const html = `${s.htmlRepo}/pull/${i.number}`;
  const statuses = `${s.repoUrl(base)}/statuses/${p.headSha}`;
  const href = (h: string) => ({ href: h });
  const headOwner = (p.headRepo ?? s.fullName).split("/")[0]!;
  return {
    url,
    id: p.id,
    node_id: i.node_id,
    html_url: html,
    diff_url: `${html}.diff`,
    patch_url: `${html}.patch`,
    issue_url: issueUrl,
    commits_url: `${url}/commits`,
    review_comments_url: `${url}/comments`,
    review_comment_url: `${s.repoUrl(base)}/pulls/comments{/number}`,
    comments_url: `${issueUrl}/comments`,
    statuses_url: statuses,
    number: i.number,
    state: i.state,
    locked: false,
    title: i.title,
    user: s.user(base, i.user),
    body: i.body,
    labels: i.labels.map((l) => s.labelJson(base, l)),
    milestone: null,
    active_lock_reason: null,
    created_at: i.created_at,
    updated_at: i.updated_at,
    closed_at: i.closed_at,
    merged_at: p.mergedAt,
    merge_commit_sha: p.mergeCommitSha,
    assignee: null,
    assignees: [],
    requested_reviewers: [],
    requested_teams: [],
    draft: c.mergeableState === "draft",
    head: {
      label: `${headOwner}:${p.headRef}`,
      ref: p.headRef,
      sha: p.headSha,
      user: s.user(base, headOwner),
      repo: p.headRepo === null ? null : s.repoJson(base, p.headRepo),
    },
    base: {
      label: `${s.owner}:${p.baseRef}`,
      ref: p.baseRef,
      sha: c.baseSha,
      user: s.user(base, s.owner),
      repo: s.repoJson(base),
    },
    _links: {
      self: href(url),
      html: href(html),
      issue: href(issueUrl),
      comments: href(`${issueUrl}/comments`),
      review_comments: href(`${url}/comments`),
      review_comment: href(`${s.repoUrl(base)}/pulls/comments{/number}`),
      commits: href(`${url}/commits`),
      statuses: href(statuses),
    },
    author_association: s.association(i.user),
    auto_merge: null,
    merged: p.merged,
    // Once merged GitHub stops computing mergeability.
    mergeable: p.merged ? null : c.mergeable,
    mergeable_state: p.merged ? "unknown" : c.mergeableState,
    merged_by: p.merged ? s.user(base, s.login) : null,
    comments: i.comments.length,
    review_comments: 0,
    maintainer_can_modify: false,
    commits: c.commits,
    additions,
    deletions,
    changed_files: c.files.length,
  };
}

function reviewJson(s: SimState, base: string, i: IssueRec, r: ReviewRec) {
  const html = `${s.htmlRepo}/pull/${i.number}#pullrequestreview-${r.id}`;
  const pullUrl = `${s.repoUrl(base)}/pulls/${i.number}`;
  return {
    id: r.id,
    node_id: r.node_id,
    user: s.user(base, r.user),
    body: r.body,
    state: r.state,
    html_url: html,
    pull_request_url: pullUrl,
    _links: { html: { href: html }, pull_request: { href: pullUrl } },
    submitted_at: r.submitted_at,
    commit_id: r.commit_id,
    author_association: s.association(r.user),
  };
}

function blockedReason(s: SimState, p: PullRec): string {
  const rules = s.protections.get(p.baseRef);
  const approvals = p.reviews.filter((r) => r.state === "APPROVED" && r.commit_id === p.headSha).length;
  if (rules && approvals < rules.requiredApprovals) {
    return `At least ${rules.requiredApprovals} approving review${rules.requiredApprovals === 1 ? " is" : "s are"} required by reviewers with write access.`;
  }
  const failing = rules?.requiredChecks.find((name) => {
    const run = s.checks.get(p.headSha)?.runs.find((r) => r.spec.name === name);
    return !run || run.spec.status !== "completed" || run.spec.conclusion !== "success";
  });
  return failing ? `Required status check "${failing}" is expected.` : "Pull Request is not mergeable";
}

export function addPull(s: SimState, spec: Parameters<GitHubStandIn["addPull"]>[0]): number {
  const number = spec.number ?? s.nextNumber();
  if (s.issues.has(number)) throw new Error(`issue or pull request #${number} already exists`);
  addIssue(s, {
    number,
    title: spec.title,
    body: spec.body ?? "",
    labels: spec.labels ?? [],
    author: spec.author ?? "dev-agent-1",
  });
  const i = s.issues.get(number)!;
  // A pull request is an issue with a pull request attached, sharing its number (and here its node id).
  i.node_id = `PR_kwDOsim${String(number).padStart(6, "0")}`;
  i.pull = {
    id: s.nextId(),
    headSha: spec.headSha,
    shas: [spec.headSha],
    headRef: spec.headRef,
    headRepo: spec.headRepo === undefined ? s.fullName : spec.headRepo,
    baseRef: spec.baseRef ?? s.defaultBranch,
    files: spec.files ?? (s.git ? null : []),
    scriptedMergeable: spec.mergeable !== undefined || spec.mergeableState !== undefined,
    mergeable: spec.mergeable === undefined ? true : spec.mergeable,
    mergeableState:
      spec.mergeableState ??
      (spec.mergeable === false ? "dirty" : spec.mergeable === null ? "unknown" : "clean"),
    merged: false,
    mergedAt: null,
    mergeCommitSha: null,
    baseAtMerge: null,
    mergeMethod: null,
    reviews: [],
  };
  return number;
}

/** GitHub's default merge and squash commit texts, unless the request gives its own. */
function commitText(
  s: SimState,
  i: IssueRec,
  p: PullRec,
  method: string,
  b: Record<string, unknown>,
): { title: string; message: string } {
  const owner = (p.headRepo ?? s.fullName).split("/")[0];
  const title =
    str(b.commit_title) ??
    (method === "squash"
      ? `${i.title} (#${i.number})`
      : `Merge pull request #${i.number} from ${owner}/${p.headRef}`);
  const message = str(b.commit_message) ?? (method === "squash" ? (i.body ?? "") : i.title);
  return { title, message };
}

export function pullRoutes(s: SimState): Route[] {
  return [
    route("GET", "{repo}/pulls/(\\d+)", async (m, ctx) => {
      const i = s.getIssue(m[3]);
      return i?.pull
        ? { status: 200, body: pullJson(s, ctx.base, i, i.pull, await compute(s, i.pull)) }
        : notFound();
    }),
    route("GET", "{repo}/pulls/(\\d+)/files", async (m, ctx) => {
      const i = s.getIssue(m[3]);
      if (!i?.pull) return notFound();
      const files = (await compute(s, i.pull)).files.map((f) => {
        const blob = sha1(`${i.pull!.headSha}:${f.filename}`);
        return {
          sha: blob,
          filename: f.filename,
          status: f.status ?? "modified",
          additions: f.additions,
          deletions: f.deletions,
          changes: f.additions + f.deletions,
          blob_url: `${s.htmlRepo}/blob/${i.pull!.headSha}/${f.filename}`,
          raw_url: `${s.htmlRepo}/raw/${i.pull!.headSha}/${f.filename}`,
          contents_url: `${s.repoUrl(ctx.base)}/contents/${f.filename}?ref=${i.pull!.headSha}`,
          ...(f.patch !== undefined ? { patch: f.patch } : {}),
        };
      });
      return list(files, ctx);
    }),
    route("GET", "{repo}/pulls/(\\d+)/reviews", (m, ctx) => {
      const i = s.getIssue(m[3]);
      return i?.pull
        ? list(
            i.pull.reviews.map((r) => reviewJson(s, ctx.base, i, r)),
            ctx,
          )
        : notFound();
    }),
    route("POST", "{repo}/pulls/(\\d+)/reviews", (m, ctx) => {
      const i = s.getIssue(m[3]);
      if (!i?.pull) return notFound();
      const b = obj(ctx.body);
      const event = str(b.event);
      const body = str(b.body) ?? "";
      if (event !== undefined && !["APPROVE", "REQUEST_CHANGES", "COMMENT"].includes(event)) {
        return validation([{ resource: "PullRequestReview", code: "invalid", field: "event" }]);
      }
      if ((event === "APPROVE" || event === "REQUEST_CHANGES") && i.user === s.login) {
        const verb = event === "APPROVE" ? "approve" : "request changes on";
        return error(422, "Unprocessable Entity", {
          errors: [`Review Can not ${verb} your own pull request`],
        });
      }
      if ((event === "REQUEST_CHANGES" || event === "COMMENT") && !body) {
        return error(422, "Unprocessable Entity", {
          errors: [`Review body is required when the review event is ${event}`],
        });
      }
      const commitId = str(b.commit_id) ?? i.pull.headSha;
      if (!i.pull.shas.includes(commitId))
        return error(422, "Unprocessable Entity", {
          errors: [`Commit ${commitId} is not part of the pull request`],
        });
      const state =
        event === "APPROVE"
          ? "APPROVED"
          : event === "REQUEST_CHANGES"
            ? "CHANGES_REQUESTED"
            : event === "COMMENT"
              ? "COMMENTED"
              : "PENDING";
      const id = s.nextId();
      const rec: ReviewRec = {
        id,
        node_id: `PRR_${id}`,
        event: event ?? "PENDING",
        state,
        body,
        commit_id: commitId,
        user: s.login,
        submitted_at: s.now(),
      };
      i.pull.reviews.push(rec);
      return { status: 200, body: reviewJson(s, ctx.base, i, rec) };
    }),
    route("PUT", "{repo}/pulls/(\\d+)/merge", async (m, ctx) => {
      const i = s.getIssue(m[3]);
      if (!i?.pull) return notFound();
      if (!s.permissions.push) return noPush("contents=write");
      const p = i.pull;
      const b = obj(ctx.body);
      const method = str(b.merge_method) ?? "merge";
      if (method !== "merge" && method !== "squash" && method !== "rebase")
        return validation([{ resource: "PullRequest", code: "invalid", field: "merge_method" }]);
      if (p.merged || i.state === "closed") return error(405, "Pull Request is not mergeable");
      const sha = str(b.sha);
      if (sha !== undefined && sha !== p.headSha)
        return error(409, "Head branch was modified. Review and try the merge again.");
      const c = await compute(s, p);
      if (c.mergeable === false || c.mergeableState === "dirty" || c.mergeableState === "draft")
        return error(405, "Pull Request is not mergeable");
      if (c.mergeableState === "blocked") return error(405, blockedReason(s, p));
      let mergeSha = sha1(`merge:${i.number}:${p.headSha}:${method}`);
      if (s.git && (await s.git.has(p.headSha))) {
        const done = await s.git.merge({
          method,
          baseBranch: p.baseRef,
          head: p.headSha,
          ...commitText(s, i, p, method, b),
          author: { name: s.login, email: `${idOf(s.login)}+${s.login}@users.noreply.github.com` },
        });
        if ("refused" in done)
          return error(
            405,
            done.refused === "conflict"
              ? "Pull Request is not mergeable"
              : "Base branch was modified. Review and try the merge again.",
          );
        mergeSha = done.sha;
        p.baseAtMerge = done.base;
      }
      p.merged = true;
      p.mergedAt = s.now();
      p.mergeMethod = method;
      p.mergeCommitSha = mergeSha;
      s.closeIssue(i);
      if (p.baseRef === s.defaultBranch) {
        // GitHub closes the issues a merged PR's description links with a closing keyword.
        for (const ref of (i.body ?? "").matchAll(
          /\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\s*:?\s+#(\d+)\b/gi,
        )) {
          const linked = s.issues.get(Number(ref[1]));
          if (linked && !linked.pull) s.closeIssue(linked);
        }
      }
      return {
        status: 200,
        body: { sha: p.mergeCommitSha, merged: true, message: "Pull Request successfully merged" },
      };
    }),
  ];
}
