import { describe, expect, it } from "vitest";
import { mergeRefusal } from "../src/clients/github-errors.js";
import { GitHubClient } from "../src/clients/github.js";
import { isEoaError } from "../src/errors.js";
import { startGitHubServer } from "../src/sim/github/index.js";

/** Why GitHub refused a merge (405), read from its message: each handled as what it is. */
describe("a 405 on merge, read for its reason", () => {
  it.each([
    ["Pull Request is not mergeable", "conflict"],
    ["At least 2 approving reviews are required by reviewers with write access.", "approvals"],
    ["At least 1 approving review is required by reviewers with write access.", "approvals"],
    ["Review required", "approvals"],
    ['Required status check "ci" is expected.', "checks"],
    ['Required status check "build" is failing.', "checks"],
    ["2 of 3 required status checks are expected.", "checks"],
    ["Base branch was modified. Review and try the merge again.", "base_moved"],
    ["Repository rule violations found", "unknown"],
  ] as const)("%s → %s", (message, reason) => {
    expect(mergeRefusal(message)).toBe(reason);
  });

  it("the client's GITHUB_NOT_MERGEABLE carries the reason and a next step that fits it", async () => {
    const gh = await startGitHubServer();
    try {
      const client = new GitHubClient({
        repo: "acme/webapp",
        token: "t",
        apiUrl: gh.url,
        retries: 0,
        throttle: false,
      });
      gh.addPull({ number: 5, title: "x", headSha: "a".repeat(40), headRef: "feature/x" });
      gh.failNext({
        status: 405,
        method: "PUT",
        path: "/repos/acme/webapp/pulls/5/merge",
        body: { message: "At least 2 approving reviews are required by reviewers with write access." },
      });
      const err = await client.merge(5, { method: "squash", sha: "a".repeat(40) }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(isEoaError(err) && err.code).toBe("GITHUB_NOT_MERGEABLE");
      expect(isEoaError(err) && err.details).toMatchObject({ status: 405, reason: "approvals" });
      expect(isEoaError(err) && err.nextStep).toMatch(/approv/);
    } finally {
      await gh.close();
    }
  });
});
