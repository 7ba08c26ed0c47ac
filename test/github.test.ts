import { afterEach, describe, expect, it } from "vitest";
import { GitHubClient, type GitHubClientOptions } from "../src/clients/github.js";
import { EoaError } from "../src/errors.js";
import { listedPullFiles } from "./fixtures/pull-requests.js";
import { createLogger } from "../src/log.js";
import { type GitHubServerOptions, type GitHubStandIn, startGitHubServer } from "../src/sim/github/index.js";

const TOKEN = "ghp_simTokenValue0123456789abcdefABCDEF";

let gh: GitHubStandIn | undefined;

afterEach(async () => {
  await gh?.close();
  gh = undefined;
});

async function setup(
  server: GitHubServerOptions = {},
  client: Partial<GitHubClientOptions> = {},
): Promise<{ gh: GitHubStandIn; client: GitHubClient }> {
  gh = await startGitHubServer({ token: TOKEN, scopes: ["repo", "project"], ...server });
  const c = new GitHubClient({
    repo: `${gh.owner}/${gh.repo}`,
    token: TOKEN,
    apiUrl: gh.url,
    retries: 0,
    retryBaseMs: 1,
    throttle: false,
    ...client,
  });
  return { gh, client: c };
}

async function failure(p: Promise<unknown>): Promise<EoaError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(EoaError);
  return err as EoaError;
}

function allText(err: EoaError): string {
  return `${err.message}\n${err.nextStep}\n${JSON.stringify(err.details ?? {})}\n${err.stack ?? ""}`;
}

describe("GitHubClient against the stand-in", () => {
  it("reads the user, its scopes, the repository and its workflows", async () => {
    const { gh, client } = await setup();
    gh.addWorkflow({ name: "CI", path: ".github/workflows/ci.yml" });
    expect(await client.getAuth()).toEqual({ login: "eoa-bot", scopes: ["repo", "project"] });
    expect(await client.getRepo()).toEqual({
      fullName: "acme/webapp",
      defaultBranch: "main",
      private: false,
      permissions: { push: true, admin: false },
    });
    expect(await client.listWorkflows()).toEqual([
      expect.objectContaining({ name: "CI", path: ".github/workflows/ci.yml", state: "active" }),
    ]);
  });

  it("reports null scopes when GitHub sends no x-oauth-scopes (fine-grained tokens)", async () => {
    const { client } = await setup({ scopes: undefined });
    expect((await client.getAuth()).scopes).toBeNull();
  });

  it("gives branch push evidence: unprotected (404), protected (admin) and unknown (not admin, or 403)", async () => {
    const { gh, client } = await setup();
    // GitHub answers a non-admin 404 for a protected branch too: that is not "unprotected".
    gh.protectBranch("main", { requiredChecks: ["ci"] });
    expect(await client.getBranchPermission("main")).toMatchObject({
      canPush: true,
      admin: false,
      protection: "unknown",
    });
    expect(gh.calls.find((c) => c.path.endsWith("/protection"))?.status).toBe(404);
    gh.failNext({
      status: 403,
      path: /\/protection$/,
      body: { message: "Resource not accessible by personal access token" },
    });
    expect(await client.getBranchPermission("main")).toMatchObject({ protection: "unknown" });
    await gh.close();

    const admin = await setup({ permissions: { push: true, admin: true } });
    expect(await admin.client.getBranchPermission("main")).toMatchObject({
      canPush: true,
      protection: "none",
      requiredChecks: [],
    });
    admin.gh.protectBranch("main", { requiredChecks: ["ci"], requiredApprovals: 1 });
    expect(await admin.client.getBranchPermission("main")).toMatchObject({
      protection: "protected",
      requiredChecks: ["ci"],
      requiredApprovals: 1,
    });
  });

  it("reads an issue with its labels and node id", async () => {
    const { gh, client } = await setup();
    gh.addIssue({
      number: 101,
      title: "User Authentication",
      body: "Implement login",
      labels: ["status:todo", "backend"],
    });
    const issue = await client.getIssue(101);
    expect(issue).toMatchObject({
      number: 101,
      title: "User Authentication",
      body: "Implement login",
      state: "open",
      labels: ["status:todo", "backend"],
      isPullRequest: false,
    });
    expect(issue.nodeId).toMatch(/^I_/);
  });

  it("reads a pull request and all its files across pages", async () => {
    const { gh, client } = await setup();
    const files = Array.from({ length: 150 }, (_, k) => ({
      filename: `src/f${k}.ts`,
      additions: 2,
      deletions: 1,
      patch: "@@ -1 +1,2 @@",
    }));
    gh.addPull({
      number: 147,
      title: "GH-101: auth",
      body: "Closes #101",
      headSha: "a".repeat(40),
      headRef: "feature/auth",
      files,
    });
    const pull = await client.getPull(147);
    expect(pull).toMatchObject({
      number: 147,
      state: "open",
      merged: false,
      mergeable: true,
      mergeableState: "clean",
      headSha: "a".repeat(40),
      headRef: "feature/auth",
      headRepoFullName: "acme/webapp",
      baseRef: "main",
      baseRepoFullName: "acme/webapp",
      additions: 300,
      deletions: 150,
      changedFiles: 150,
    });
    expect((await client.getIssue(147)).isPullRequest).toBe(true);

    const listed = await listedPullFiles(gh.url, 147, "acme/webapp", TOKEN);
    expect(listed).toHaveLength(150);
    expect(listed[149]).toEqual({
      filename: "src/f149.ts",
      status: "modified",
      additions: 2,
      deletions: 1,
      patch: "@@ -1 +1,2 @@",
    });
    const pages = gh.calls.filter((c) => c.path === "/repos/acme/webapp/pulls/147/files");
    expect(pages.map((c) => c.query.page ?? "1")).toEqual(["1", "2"]);
  });

  it("lists check runs of a commit", async () => {
    const { gh, client } = await setup();
    const sha = "b".repeat(40);
    gh.setCheckRuns(sha, [
      { name: "test", status: "completed", conclusion: "success" },
      {
        name: "lint",
        status: "completed",
        conclusion: "failure",
        output: { title: "2 errors", summary: "src/a.ts:3 no-unused-vars" },
      },
      { name: "deploy-preview", status: "in_progress", workflow: null },
    ]);
    const runs = await client.listCheckRuns(sha);
    expect(runs.map((r) => [r.name, r.status, r.conclusion]).sort()).toEqual([
      ["deploy-preview", "in_progress", null],
      ["lint", "completed", "failure"],
      ["test", "completed", "success"],
    ]);
    const lint = runs.find((r) => r.name === "lint")!;
    expect(lint.output).toEqual({ title: "2 errors", summary: "src/a.ts:3 no-unused-vars", text: null });
    expect(lint.appSlug).toBe("github-actions");
    expect(lint.checkSuiteId).toBe(runs.find((r) => r.name === "test")!.checkSuiteId);
  });

  it("reruns failed checks and sees the conclusions flip", async () => {
    const { gh, client } = await setup();
    const sha = "c".repeat(40);
    gh.scriptChecks(sha, [
      [
        { name: "test", status: "completed", conclusion: "failure" },
        { name: "build", status: "completed", conclusion: "success" },
        { name: "external-ci", status: "completed", conclusion: "timed_out", workflow: null },
      ],
      [
        { name: "test", status: "completed", conclusion: "success" },
        { name: "build", status: "completed", conclusion: "success" },
        { name: "external-ci", status: "completed", conclusion: "success", workflow: null },
      ],
    ]);
    const [run] = await client.listWorkflowRuns(sha);
    expect(run).toMatchObject({ name: "CI", status: "completed", conclusion: "failure", runAttempt: 1 });
    const before = await client.listCheckRuns(sha);

    const failed = before.filter((r) => r.conclusion !== "success").map((r) => r.id);
    const result = await client.rerunChecks(sha, failed);
    expect(result.workflowRuns).toEqual([run!.id]);
    expect(result.checkRuns).toEqual([before.find((r) => r.name === "external-ci")!.id]);
    expect(result.skipped).toEqual([]);
    expect(
      gh.calls
        .filter((c) => c.method === "POST")
        .map((c) => c.path)
        .sort(),
    ).toEqual([
      `/repos/acme/webapp/actions/runs/${run!.id}/rerun-failed-jobs`,
      `/repos/acme/webapp/check-runs/${result.checkRuns[0]}/rerequest`,
    ]);

    const after = await client.listCheckRuns(sha);
    expect(after.every((r) => r.conclusion === "success")).toBe(true);
    expect(after.find((r) => r.name === "test")!.id).not.toBe(before.find((r) => r.name === "test")!.id);
    expect((await client.listWorkflowRuns(sha))[0]).toMatchObject({
      id: run!.id,
      conclusion: "success",
      runAttempt: 2,
    });
    // Nothing named: nothing is rerun (which checks to re-run is the protocol's rule, not the client's).
    expect(await client.rerunChecks(sha, [])).toEqual({ workflowRuns: [], checkRuns: [], skipped: [] });
  });

  it("skips a workflow run that is still running (GitHub answers 403 there)", async () => {
    const { gh, client } = await setup();
    const sha = "d".repeat(40);
    gh.setCheckRuns(sha, [
      { name: "test", status: "completed", conclusion: "failure" },
      { name: "e2e", status: "in_progress" },
    ]);
    const failed = (await client.listCheckRuns(sha))
      .filter((r) => r.conclusion === "failure")
      .map((r) => r.id);
    const result = await client.rerunChecks(sha, failed);
    expect(result.workflowRuns).toEqual([]);
    expect(result.skipped).toEqual([
      expect.objectContaining({ name: "test", reason: expect.stringContaining("in_progress") }),
    ]);
    const [run] = await client.listWorkflowRuns(sha);
    const err = await failure(client.rerunFailedJobs(run!.id));
    expect(err.code).toBe("GITHUB_FORBIDDEN");
    expect(err.message).toContain("This workflow is already running");
  });

  it("approves at the head SHA, squash-merges, and the linked issue is closed", async () => {
    const { gh, client } = await setup();
    gh.addIssue({ number: 101, title: "User Authentication", labels: ["status:ai-review"] });
    const head = "e".repeat(40);
    gh.addPull({
      number: 147,
      title: "GH-101: auth",
      body: "Implements login.\n\nCloses #101",
      headSha: head,
      headRef: "feature/auth",
    });

    const review = await client.createReview(147, {
      event: "APPROVE",
      body: "Both gates passed.",
      commitId: head,
    });
    expect(review.state).toBe("APPROVED");
    const merged = await client.merge(147, { method: "squash", sha: head, title: "GH-101: auth (#147)" });
    expect(merged.merged).toBe(true);
    expect(merged.sha).toMatch(/^[0-9a-f]{40}$/);

    expect(gh.pull(147)).toMatchObject({
      merged: true,
      mergeMethod: "squash",
      state: "closed",
      reviews: [expect.objectContaining({ state: "APPROVED", commitId: head })],
    });
    expect((await client.getPull(147)).merged).toBe(true);
    expect(gh.issue(147)?.state).toBe("closed");
    expect((await client.getIssue(101)).state).toBe("closed");
    const mergeCall = gh.calls.find((c) => c.method === "PUT" && c.path.endsWith("/merge"));
    expect(mergeCall?.body).toEqual({
      merge_method: "squash",
      sha: head,
      commit_title: "GH-101: auth (#147)",
    });
  });

  it("maps 405 (not mergeable) to GITHUB_NOT_MERGEABLE without retrying", async () => {
    const { gh, client } = await setup({}, { retries: 3 });
    gh.addPull({ number: 150, title: "conflicting", headSha: "f".repeat(40), headRef: "feature/x" });
    gh.setMergeable(150, false, "dirty");
    expect(await client.getPull(150)).toMatchObject({ mergeable: false, mergeableState: "dirty" });
    const err = await failure(client.merge(150, { method: "squash", sha: "f".repeat(40) }));
    expect(err.code).toBe("GITHUB_NOT_MERGEABLE");
    expect(err.message).toContain("Pull Request is not mergeable");
    expect(err.details).toMatchObject({ status: 405 });
    expect(gh.calls.filter((c) => c.path.endsWith("/merge"))).toHaveLength(1);
    expect(gh.pull(150)?.merged).toBe(false);
  });

  it("maps 409 (head moved since the review) to GITHUB_HEAD_CHANGED", async () => {
    const { gh, client } = await setup({}, { retries: 3 });
    const reviewed = "1".repeat(40);
    gh.addPull({ number: 151, title: "moving", headSha: reviewed, headRef: "feature/y" });
    gh.pushHead(151, "2".repeat(40));
    const err = await failure(client.merge(151, { method: "squash", sha: reviewed }));
    expect(err.code).toBe("GITHUB_HEAD_CHANGED");
    expect(err.message).toContain("Head branch was modified");
    expect(gh.calls.filter((c) => c.path.endsWith("/merge"))).toHaveLength(1);
  });

  it("replaces an issue's labels", async () => {
    const { gh, client } = await setup();
    gh.addIssue({ number: 7, title: "t", labels: ["status:todo", "bug"] });
    expect(await client.setLabels(7, ["bug", "status:in-progress", "assign:dev-agent-1"])).toEqual([
      "bug",
      "status:in-progress",
      "assign:dev-agent-1",
    ]);
    expect(gh.issue(7)?.labels).toEqual(["bug", "status:in-progress", "assign:dev-agent-1"]);
  });

  it("comments on and closes issues", async () => {
    const { gh, client } = await setup();
    gh.addIssue({ number: 8, title: "Follow-up", labels: ["status:backlog"] });
    await client.comment(8, "Blocked: CI blocked after 5 polls.");
    await client.closeIssue(8);
    expect(gh.issue(8)).toMatchObject({
      title: "Follow-up",
      state: "closed",
      stateReason: "completed",
      labels: ["status:backlog"],
      comments: [expect.objectContaining({ body: "Blocked: CI blocked after 5 polls.", user: "eoa-bot" })],
    });
  });

  it("moves an issue on a Projects v2 board (organization, then user fallback)", async () => {
    const { gh, client } = await setup();
    gh.addIssue({ number: 101, title: "User Authentication" });
    gh.setProject({
      owner: "acme",
      number: 3,
      title: "Night shift",
      statuses: ["Backlog", "Todo", "In Progress", "AI Review", "Done"],
    });

    const board = await client.getProject("acme", 3);
    expect(board.title).toBe("Night shift");
    expect(board.statusField?.options.map((o) => o.name)).toEqual([
      "Backlog",
      "Todo",
      "In Progress",
      "AI Review",
      "Done",
    ]);
    const issue = await client.getIssue(101);
    const itemId = await client.addIssueToProject(board.id, issue.nodeId);
    expect(await client.addIssueToProject(board.id, issue.nodeId)).toBe(itemId);
    const inProgress = board.statusField!.options.find((o) => o.name === "In Progress")!;
    await client.setProjectStatus(board.id, itemId, board.statusField!.id, inProgress.id);
    expect(gh.projectItems()).toEqual([
      expect.objectContaining({ itemId, issueNumber: 101, status: "In Progress" }),
    ]);

    const err = await failure(client.setProjectStatus(board.id, itemId, board.statusField!.id, "nope"));
    expect(err.code).toBe("GITHUB_VALIDATION");

    gh.setProject({ owner: "eoa-bot", number: 1, title: "Mine", statuses: ["Todo"] });
    expect((await client.getProject("eoa-bot", 1)).title).toBe("Mine");
    expect((await failure(client.getProject("acme", 99))).code).toBe("GITHUB_NOT_FOUND");
    expect((await failure(client.getProject("nobody", 1))).code).toBe("GITHUB_NOT_FOUND");
  });

  it("maps a token without the project scope to GITHUB_FORBIDDEN", async () => {
    const { gh, client } = await setup({ scopes: ["repo"] });
    gh.setProject({ owner: "acme", number: 3, title: "Night shift", statuses: ["Todo"] });
    const err = await failure(client.getProject("acme", 3));
    expect(err.code).toBe("GITHUB_FORBIDDEN");
    expect(err.message).toContain("read:project");
  });
});

describe("GitHubClient error mapping", () => {
  it("401 → GITHUB_AUTH, and the token is never in the error", async () => {
    const wrong = "ghp_wrongTokenValue9876543210zyxwvuZYXWVU";
    const { client } = await setup({}, { token: wrong });
    const err = await failure(client.getAuth());
    expect(err.code).toBe("GITHUB_AUTH");
    expect(err.nextStep).toContain("GITHUB_TOKEN");
    expect(err.message).toContain("Bad credentials");
    expect(allText(err)).not.toContain(wrong);
    expect(allText(err)).not.toContain(TOKEN);
  });

  it("404 → GITHUB_NOT_FOUND (unknown issue, unknown pull request)", async () => {
    const { gh, client } = await setup();
    gh.addIssue({ number: 5, title: "plain issue" });
    expect((await failure(client.getIssue(999))).code).toBe("GITHUB_NOT_FOUND");
    const err = await failure(client.getPull(5));
    expect(err.code).toBe("GITHUB_NOT_FOUND");
    expect(err.message).toContain("pull request #5");
    expect(allText(err)).not.toContain(TOKEN);
  });

  it("422 → GITHUB_VALIDATION with GitHub's errors[]", async () => {
    const { gh, client } = await setup();
    gh.addIssue({ number: 5, title: "t" });
    gh.failNext({ status: 422, method: "POST" });
    const err = await failure(client.comment(5, "x"));
    expect(err.code).toBe("GITHUB_VALIDATION");
    expect(err.message).toContain("Validation Failed");
    expect(err.message).toContain("body is too long (simulated)");
    expect(err.details?.errors).toEqual(["body is too long (simulated)"]);
  });

  it("422 with string errors (GitHub's review errors) keeps the text", async () => {
    const { gh, client } = await setup();
    gh.addPull({ number: 9, title: "mine", headSha: "9".repeat(40), headRef: "x", author: "eoa-bot" });
    const err = await failure(client.createReview(9, { event: "APPROVE", body: "ok" }));
    expect(err.code).toBe("GITHUB_VALIDATION");
    expect(err.message).toContain("Can not approve your own pull request");
  });

  it("403 rate limit → GITHUB_RATE_LIMITED with the reset time; no in-process wait (the reset is an hour away)", async () => {
    const { gh, client } = await setup({}, { throttle: true, retries: 3 });
    const reset = Math.floor(Date.now() / 1000) + 3600;
    gh.failNext({ status: 403, headers: { "x-ratelimit-reset": reset } });
    const err = await failure(client.getRepo());
    expect(err.code).toBe("GITHUB_RATE_LIMITED");
    const iso = new Date(reset * 1000).toISOString();
    expect(err.message).toContain(iso);
    expect(err.details).toMatchObject({ reset_at: iso, status: 403 });
    expect(gh.calls).toHaveLength(1);
  });

  it("a rate limit that resets within seconds is retried once", async () => {
    const { gh, client } = await setup({}, { throttle: true });
    gh.failNext({ status: 403, headers: { "x-ratelimit-reset": Math.floor(Date.now() / 1000) - 5 } });
    expect((await client.getRepo()).fullName).toBe("acme/webapp");
    expect(gh.calls.map((c) => c.status)).toEqual([403, 200]);
  });

  it("429 secondary rate limit (retry-after 60) is surfaced, not slept on", async () => {
    const { gh, client } = await setup({}, { throttle: true, retries: 3 });
    gh.failNext({ status: 429 });
    const err = await failure(client.getRepo());
    expect(err.code).toBe("GITHUB_RATE_LIMITED");
    expect(err.details).toMatchObject({ retry_after_s: 60 });
    expect(gh.calls).toHaveLength(1);
  });

  it("403 without a rate limit → GITHUB_FORBIDDEN naming the missing permission", async () => {
    const { gh, client } = await setup({ permissions: { push: false, admin: false } });
    gh.addPull({ number: 3, title: "t", headSha: "3".repeat(40), headRef: "x" });
    const err = await failure(client.merge(3, { method: "squash", sha: "3".repeat(40) }));
    expect(err.code).toBe("GITHUB_FORBIDDEN");
    expect(err.message).toContain("contents=write");
    gh.failNext({
      status: 403,
      headers: { "x-accepted-oauth-scopes": "repo", "x-oauth-scopes": "read:org" },
      body: { message: "Forbidden" },
    });
    const scoped = await failure(client.getRepo());
    expect(scoped.code).toBe("GITHUB_FORBIDDEN");
    expect(scoped.message).toContain("needs one of the token scopes: repo; the token has: read:org");
    expect(scoped.details).toMatchObject({ accepted_scopes: "repo" });
  });

  it("502 is retried: one failure recovers, repeated failures → GITHUB_UNAVAILABLE", async () => {
    const { gh, client } = await setup({}, { retries: 1 });
    gh.addIssue({ number: 1, title: "t" });
    gh.failNext({ status: 502 });
    expect((await client.getIssue(1)).number).toBe(1);
    expect(gh.calls.map((c) => c.status)).toEqual([502, 200]);

    gh.calls.length = 0;
    gh.failNext({ status: 502, count: 5 });
    const err = await failure(client.getIssue(1));
    expect(err.code).toBe("GITHUB_UNAVAILABLE");
    expect(gh.calls.map((c) => c.status)).toEqual([502, 502]);
    expect(allText(err)).not.toContain(TOKEN);
  });

  it("an unreachable server → GITHUB_UNAVAILABLE", async () => {
    const { gh, client } = await setup();
    await gh.close();
    const err = await failure(client.getRepo());
    expect(err.code).toBe("GITHUB_UNAVAILABLE");
    expect(allText(err)).not.toContain(TOKEN);
  });

  it("a host name that does not resolve: the real cause, no invented status, and no retries", async () => {
    const lines: string[] = [];
    const logger = createLogger("github", {
      level: "debug",
      stderr: false,
      sinks: new Set([(_level, _name, line) => void lines.push(String(line))]),
    });
    const client = new GitHubClient({
      repo: "acme/webapp",
      token: TOKEN,
      apiUrl: "http://eoa-no-such-host.invalid",
      retries: 3,
      retryBaseMs: 1,
      throttle: false,
      logger,
    });
    const err = await failure(client.getRepo());
    expect(err.code).toBe("GITHUB_UNAVAILABLE");
    expect(err.message).toBe(
      "GitHub could not be reached at http://eoa-no-such-host.invalid while trying to read repository acme/webapp: " +
        "getaddrinfo ENOTFOUND eoa-no-such-host.invalid (the host name does not resolve)",
    );
    expect(err.nextStep).toContain("DNS");
    // Octokit's request log has a line per attempt: one, since a retry cannot make the name resolve.
    expect(lines.filter((l) => l.startsWith("GET /repos/acme/webapp"))).toHaveLength(1);
  });

  it("refuses a malformed repository name", () => {
    expect(() => new GitHubClient({ repo: "no-slash" })).toThrow(EoaError);
  });
});
