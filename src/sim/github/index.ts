import { checkRoutes, scriptChecks } from "./checks.js";
import { graphqlRoutes } from "./graphql.js";
import { serve } from "./http.js";
import { addIssue, issueRoutes } from "./issues.js";
import { addPull, pullRoutes } from "./pulls.js";
import type { ProjectRec } from "./records.js";
import { repoRoutes } from "./repos.js";
import { idOf, sha1, SimState } from "./state.js";
import type { GitHubServerOptions, GitHubStandIn } from "./types.js";

export type * from "./types.js";

/**
 * An in-memory GitHub stand-in on 127.0.0.1, for tests and `eoa-mcp simulate`. It answers the
 * REST routes and the Projects v2 GraphQL operations eoa-mcp uses, the way GitHub's documentation
 * says: snake_case bodies, real status codes and error bodies, `Link` pagination, mergeable states,
 * check-run conclusions, rate-limit headers. Everything it receives is recorded in `calls`.
 *
 * The routes live by resource: `repos.ts` (user, repository, branch protection), `issues.ts`
 * (issues, labels, comments), `pulls.ts` (pulls, files, reviews, merge), `checks.ts` (check runs,
 * Actions runs and workflows), `graphql.ts` (Projects v2); `http.ts` serves them. A new endpoint
 * goes into its resource's file; `test/github-shapes.test.ts` then holds its answer to GitHub's
 * published description once the client calls it. The controls below are the fixture model tests
 * and rehearsals drive it with.
 *
 * Simplifications (each written down so that nobody mistakes them for GitHub's behaviour):
 * - one repository, one authenticated user;
 * - with `gitDir` (the rehearsal's bare repository), a PR whose head is a commit there is real: it
 *   is merged there (merge, squash or rebase, moving the base branch), and its files, line counts
 *   and mergeability come from git unless a test scripts them. Without it, or for a head that is
 *   not a commit there, a PR head is just a SHA and everything about it is scripted;
 * - check runs are scripted per commit: `scriptChecks(sha, stages)` gives the runs a rerun moves
 *   through. Runs are grouped by workflow (or, for non-Actions checks, by name); rerunning a
 *   workflow run's failed jobs, or re-requesting a check run, moves only that group to its next
 *   stage, with fresh check-run ids, as GitHub creates new runs on a rerun;
 * - GraphQL is matched on the operation's root field (organization/user projectV2, node
 *   projectItems, addProjectV2ItemById, updateProjectV2ItemFieldValue), reads its inputs from
 *   `variables` only, and answers the fields eoa-mcp's own queries select.
 */
export async function startGitHubServer(opts: GitHubServerOptions = {}): Promise<GitHubStandIn> {
  const s = new SimState(opts);
  const served = await serve({
    ...(opts.port !== undefined ? { port: opts.port } : {}),
    ...(opts.token !== undefined ? { token: opts.token } : {}),
    ...(opts.scopes !== undefined ? { scopes: opts.scopes } : {}),
    clock: s.clock,
    userId: idOf(s.login),
    routes: [...repoRoutes(s), ...graphqlRoutes(s), ...issueRoutes(s), ...pullRoutes(s), ...checkRoutes(s)],
    inRepo: s.inRepo,
    calls: s.calls,
  });

  const api: GitHubStandIn = {
    url: served.url,
    owner: s.owner,
    repo: s.repoName,
    login: s.login,
    calls: s.calls,
    close: served.close,
    addIssue: (spec) => addIssue(s, spec),
    addPull: (spec) => addPull(s, spec),
    pushHead(number, sha, files) {
      const p = s.issues.get(number)?.pull;
      if (!p) throw new Error(`no pull request #${number}`);
      p.headSha = sha;
      p.shas.push(sha);
      if (files) p.files = files;
      s.issues.get(number)!.updated_at = s.now();
    },

    setMergeable(number, mergeable, state) {
      const p = s.issues.get(number)?.pull;
      if (!p) throw new Error(`no pull request #${number}`);
      p.scriptedMergeable = true;
      p.mergeable = mergeable;
      p.mergeableState = state ?? (mergeable === false ? "dirty" : mergeable === null ? "unknown" : "clean");
    },

    setCheckRuns: (sha, runs) => scriptChecks(s, sha, [runs]),
    scriptChecks: (sha, stages) => scriptChecks(s, sha, stages),
    onRerun: (cb) => void s.rerunListeners.push(cb),
    reruns: () => s.rerunLog.map((e) => ({ ...e })),

    addWorkflow(spec) {
      const id = s.nextId();
      s.workflows.push({
        id,
        name: spec.name,
        path: spec.path ?? `.github/workflows/${spec.name.toLowerCase().replace(/[^a-z0-9]+/g, "-")}.yml`,
        state: spec.state ?? "active",
        created_at: s.now(),
      });
      return id;
    },

    setCollaborator(name, role) {
      s.collaborators.set(name.toLowerCase(), role);
    },

    protectBranch(branch, rules = {}) {
      s.protections.set(branch, {
        requiredChecks: rules.requiredChecks ?? [],
        requiredApprovals: rules.requiredApprovals ?? 0,
      });
    },

    failNext: served.failNext,
    beforeReply: served.beforeReply,

    setProject(spec) {
      const ownerType = spec.ownerType ?? (spec.owner === s.login ? "user" : "organization");
      const existing = s.projects.findIndex((p) => p.owner === spec.owner && p.number === spec.number);
      const id = `PVT_kwDOsim${spec.number}${ownerType === "user" ? "u" : "o"}`;
      const rec: ProjectRec = {
        id,
        owner: spec.owner,
        ownerType,
        number: spec.number,
        title: spec.title,
        fieldId: `PVTSSF_sim${spec.number}`,
        options: spec.statuses.map((name) => ({ id: sha1(`${id}:${name}`).slice(0, 8), name })),
        items: existing >= 0 ? s.projects[existing]!.items : [],
      };
      if (existing >= 0) s.projects[existing] = rec;
      else s.projects.push(rec);
      return id;
    },

    issue(number) {
      const i = s.issues.get(number);
      if (!i) return undefined;
      return {
        number: i.number,
        nodeId: i.node_id,
        title: i.title,
        body: i.body,
        state: i.state,
        stateReason: i.state_reason,
        labels: [...i.labels],
        comments: i.comments.map((c) => ({ id: c.id, body: c.body, user: c.user, createdAt: c.created_at })),
        isPullRequest: i.pull !== undefined,
      };
    },

    pull(number) {
      const i = s.issues.get(number);
      const p = i?.pull;
      if (!i || !p) return undefined;
      return {
        number,
        state: i.state,
        headSha: p.headSha,
        mergeable: p.mergeable,
        mergeableState: p.mergeableState,
        merged: p.merged,
        mergeMethod: p.mergeMethod,
        mergeCommitSha: p.mergeCommitSha,
        mergedAt: p.mergedAt,
        reviews: p.reviews.map((r) => ({
          id: r.id,
          event: r.event,
          state: r.state,
          body: r.body,
          commitId: r.commit_id,
          user: r.user,
        })),
      };
    },

    labels: () =>
      [...s.repoLabels.values()].map((l) => ({ name: l.name, color: l.color, description: l.description })),

    projectItems: () =>
      s.projects.flatMap((p) =>
        p.items.map((item) => ({
          project: `${p.owner}#${p.number}`,
          projectId: p.id,
          itemId: item.id,
          contentId: item.contentId,
          issueNumber: s.contentByNode(item.contentId)?.number ?? null,
          status: p.options.find((o) => o.id === item.optionId)?.name ?? null,
        })),
      ),
  };
  return api;
}
