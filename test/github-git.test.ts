import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { GitHubClient } from "../src/clients/github.js";
import { EoaError } from "../src/errors.js";
import { LocalRepo } from "../src/sim/git-repo.js";
import { type GitHubStandIn, startGitHubServer } from "../src/sim/github/index.js";
import { listedPullFiles } from "./fixtures/pull-requests.js";

/**
 * Issue 15, item 1: the GitHub stand-in over a real bare repository. Pull requests are pushed as
 * real commits; their files, counts and mergeability come from git, and merges happen in git.
 */

let root: string;
let repo: LocalRepo;
let gh: GitHubStandIn;
let client: GitHubClient;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "eoa-gh-git-"));
  repo = await LocalRepo.create(join(root, "git"));
  gh = await startGitHubServer({ gitDir: repo.bare });
  client = new GitHubClient({ repo: "acme/webapp", token: "t", apiUrl: gh.url, retries: 0, throttle: false });
});
afterEach(async () => {
  await gh.close();
  await rm(root, { recursive: true, force: true });
});

const git = (...args: string[]) => execFileSync("git", args, { cwd: repo.bare, encoding: "utf8" }).trim();
const main = () => git("rev-parse", "refs/heads/main");
const parents = (sha: string) => git("rev-list", "--parents", "-n", "1", sha).split(" ").slice(1);

async function openPr(number: number, branch: string, files: Record<string, string>): Promise<string> {
  const sha = await repo.pushPullRequest(number, branch, files);
  gh.addPull({
    number,
    title: `PR ${number}`,
    body: `Closes #${number - 100}`,
    headSha: sha,
    headRef: branch,
  });
  return sha;
}

describe("the GitHub stand-in over a real git remote", () => {
  it("computes files, line counts, patches and statuses from git", async () => {
    await openPr(147, "feature/auth", {
      "src/auth/core.py": "def login():\n    return True\n",
      "src/app.py": "def main():\n    return 1\n",
    });
    const pull = await client.getPull(147);
    expect(pull).toMatchObject({ additions: 3, deletions: 1, changedFiles: 2, mergeable: true });
    expect(pull.mergeableState).toBe("clean");
    const files = await listedPullFiles(gh.url, 147);
    expect(files).toEqual([
      {
        filename: "src/app.py",
        status: "modified",
        additions: 1,
        deletions: 1,
        patch: "@@ -1,2 +1,2 @@\n def main():\n-    return 0\n+    return 1",
      },
      {
        filename: "src/auth/core.py",
        status: "added",
        additions: 2,
        deletions: 0,
        patch: "@@ -0,0 +1,2 @@\n+def login():\n+    return True",
      },
    ]);
  });

  it("squash: one new commit on main, a real object, with the PR's changes", async () => {
    const before = main();
    const head = await openPr(147, "feature/auth", { "src/auth/core.py": "x = 1\n" });
    const merged = await client.merge(147, { method: "squash", sha: head });
    expect(main()).toBe(merged.sha);
    expect(git("cat-file", "-t", merged.sha)).toBe("commit");
    expect(parents(merged.sha)).toEqual([before]);
    expect(git("show", `${merged.sha}:src/auth/core.py`)).toBe("x = 1");
    expect(git("log", "-1", "--format=%s", merged.sha)).toBe("PR 147 (#147)");
    expect(gh.pull(147)?.mergeCommitSha).toBe(merged.sha);
  });

  it("merge: a merge commit with the base and the head as parents", async () => {
    const before = main();
    const head = await openPr(147, "feature/auth", { "src/auth/core.py": "x = 1\n" });
    const merged = await client.merge(147, { method: "merge", sha: head });
    expect(main()).toBe(merged.sha);
    expect(parents(merged.sha)).toEqual([before, head]);
    expect(git("log", "-1", "--format=%s", merged.sha)).toBe(
      "Merge pull request #147 from acme/feature/auth",
    );
    // Its head is now in main; what it changed is still what it changed.
    expect(await client.getPull(147)).toMatchObject({ merged: true, changedFiles: 1, additions: 1 });
    expect((await listedPullFiles(gh.url, 147)).map((f) => f.filename)).toEqual(["src/auth/core.py"]);
  });

  it("rebase: each of the PR's commits replayed on main, authors kept", async () => {
    await openPr(147, "feature/auth", { "src/auth/core.py": "x = 1\n" });
    const head = await repo.pushFix(147, "feature/auth", { "tests/auth.test": "pass\n" });
    gh.pushHead(147, head);
    await repo.commitToMain({ "README.md": "# webapp, moved on\n" });
    const before = main();
    const merged = await client.merge(147, { method: "rebase", sha: head });
    expect(main()).toBe(merged.sha);
    const replayed = git("rev-list", "--reverse", `${before}..${merged.sha}`).split("\n");
    expect(replayed).toHaveLength(2);
    expect(parents(replayed[0]!)).toEqual([before]);
    expect(git("log", "-1", "--format=%an %s", replayed[1]!)).toBe("dev-agent feature/auth: fix");
    expect(git("show", `${merged.sha}:README.md`)).toBe("# webapp, moved on");
  });

  it("a later PR touching the lines an earlier merge changed conflicts: dirty, and its merge is refused", async () => {
    const first = await openPr(147, "feature/a", { "tests/conftest.py": 'FIXTURES = ["a"]\n' });
    const second = await openPr(148, "feature/b", { "tests/conftest.py": 'FIXTURES = ["b"]\n' });
    expect(await client.getPull(148)).toMatchObject({ mergeable: true, mergeableState: "clean" });
    await client.merge(147, { method: "squash", sha: first });
    const tip = main();

    expect(await client.getPull(148)).toMatchObject({ mergeable: false, mergeableState: "dirty" });
    const err = await client.merge(148, { method: "squash", sha: second }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EoaError);
    expect((err as EoaError).code).toBe("GITHUB_NOT_MERGEABLE");
    expect(main()).toBe(tip);
    expect(gh.pull(148)?.merged).toBe(false);
  });

  it("a push to main before the merge is kept: the merge starts from it", async () => {
    const head = await openPr(147, "feature/auth", { "src/auth/core.py": "x = 1\n" });
    const pushed = await repo.commitToMain({ "README.md": "# pushed\n" });
    const merged = await client.merge(147, { method: "squash", sha: head });
    // The merge starts from the pushed commit, so nothing on main is lost.
    expect(parents(merged.sha)).toEqual([pushed]);
  });
});
