import { execFile, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  assertRefName,
  GitMirror,
  gitVersion,
  gitVersionSupported,
  stripCredentials,
} from "../src/clients/git.js";
import { EoaError } from "../src/errors.js";
import type { Logger } from "../src/log.js";

const exec = promisify(execFile);

const GIT_ENV = {
  PATH: process.env.PATH ?? "/usr/bin:/bin",
  HOME: process.env.HOME ?? tmpdir(),
  GIT_AUTHOR_NAME: "Test",
  GIT_AUTHOR_EMAIL: "test@example.com",
  GIT_COMMITTER_NAME: "Test",
  GIT_COMMITTER_EMAIL: "test@example.com",
};

async function git(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await exec("git", args, { cwd, env: GIT_ENV });
  return stdout.trim();
}

let root: string;
let remote: string;
let work: string;
let pr7Sha: string;
let pr8Sha: string;

/**
 * The remote: a bare repository with `main` (README.md, app.txt), PR #7 adding feature.txt and
 * changing app.txt's last line, PR #8 changing app.txt's first line (while main changes it too).
 */
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "eoa-git-"));
  remote = join(root, "remote.git");
  work = join(root, "work");
  await git(root, "init", "--bare", "--quiet", "-b", "main", remote);
  await git(root, "clone", "--quiet", remote, work);
  await git(work, "checkout", "--quiet", "-B", "main");
  await writeFile(join(work, "README.md"), "# demo\n");
  await writeFile(join(work, "app.txt"), "line 1\nline 2\nline 3\n");
  await git(work, "add", ".");
  await git(work, "commit", "--quiet", "-m", "base");
  await git(work, "push", "--quiet", "origin", "main");

  await git(work, "checkout", "--quiet", "-b", "feature");
  await writeFile(join(work, "feature.txt"), "a\nb\nc\n");
  await writeFile(join(work, "app.txt"), "line 1\nline 2\nline 3 changed\n");
  await git(work, "add", ".");
  await git(work, "commit", "--quiet", "-m", "feature");
  pr7Sha = await git(work, "rev-parse", "HEAD");
  await git(work, "push", "--quiet", "origin", "HEAD:refs/pull/7/head");

  await git(work, "checkout", "--quiet", "main");
  await git(work, "checkout", "--quiet", "-b", "conflicting");
  await writeFile(join(work, "app.txt"), "PR line 1\nline 2\nline 3\n");
  await git(work, "commit", "--quiet", "-am", "conflicting");
  pr8Sha = await git(work, "rev-parse", "HEAD");
  await git(work, "push", "--quiet", "origin", "HEAD:refs/pull/8/head");

  await git(work, "checkout", "--quiet", "main");
  await writeFile(join(work, "app.txt"), "main line 1\nline 2\nline 3\n");
  await git(work, "commit", "--quiet", "-am", "main moves on");
  await git(work, "push", "--quiet", "origin", "main");
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function newMirror(): Promise<GitMirror> {
  return new GitMirror({ remote, stateDir: await mkdtemp(join(root, "state-")) });
}

async function worktreeEntries(m: GitMirror): Promise<string[]> {
  return existsSync(m.worktreesDir) ? readdir(m.worktreesDir) : [];
}

async function registeredWorktrees(m: GitMirror): Promise<number> {
  const out = await git(m.mirrorPath, "worktree", "list", "--porcelain");
  return out.split("\n").filter((l) => l.startsWith("worktree ")).length - 1; // minus the bare repo
}

async function expectCode(p: Promise<unknown>, code: string): Promise<EoaError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(EoaError);
  expect((err as EoaError).code).toBe(code);
  return err as EoaError;
}

describe("GitMirror", () => {
  it("creates the mirror once, then fetches incrementally", async () => {
    const m = await newMirror();
    await m.ensureMirror();
    expect(existsSync(join(m.mirrorPath, "HEAD"))).toBe(true);
    const before = await m.branchSha("main");
    expect(before).toBe(await git(work, "rev-parse", "main"));

    await git(work, "checkout", "--quiet", "-b", "later");
    await writeFile(join(work, "later.txt"), "later\n");
    await git(work, "add", ".");
    await git(work, "commit", "--quiet", "-m", "later");
    await git(work, "push", "--quiet", "origin", "later");
    await git(work, "checkout", "--quiet", "main");

    await m.ensureMirror();
    expect(await m.branchSha("later")).toBe(await git(work, "rev-parse", "later"));
    expect(await m.branchSha("main")).toBe(before);
    // The remote URL (which may hold a token) is not stored in the mirror's config.
    expect(await readFile(join(m.mirrorPath, "config"), "utf8")).not.toContain(remote);
  });

  it("fetches a PR head and returns its SHA", async () => {
    const m = await newMirror();
    expect(await m.fetchPullHead(7)).toBe(pr7Sha);
    expect(await m.fetchPullHead(8)).toBe(pr8Sha);
    expect(await m.branchSha("main")).toBe(await git(work, "rev-parse", "main"));
    await expectCode(m.fetchPullHead(99), "GIT_PR_NOT_FOUND");
  });

  it("returns a PR's new head after it moved, whether git keeps the ref in a file of its own or packed", async () => {
    const m = await newMirror();
    await git(remote, "update-ref", "refs/pull/10/head", pr7Sha);
    expect(await m.fetchPullHead(10)).toBe(pr7Sha);
    await git(m.mirrorPath, "pack-refs", "--all", "--prune");
    expect(existsSync(join(m.mirrorPath, "refs/pull/10/head"))).toBe(false);
    expect(await m.fetchPullHead(10)).toBe(pr7Sha);
    await git(remote, "update-ref", "refs/pull/10/head", pr8Sha);
    expect(await m.fetchPullHead(10)).toBe(pr8Sha);
    await git(remote, "update-ref", "-d", "refs/pull/10/head");
  });

  it("checks out the PR in a worktree and removes it after success", async () => {
    const m = await newMirror();
    let seen = "";
    const result = await m.withWorktree(7, pr7Sha, async (wt) => {
      expect(wt.sha).toBe(pr7Sha);
      expect(wt.path.startsWith(m.worktreesDir)).toBe(true);
      seen = wt.path;
      return readFile(join(wt.path, "feature.txt"), "utf8");
    });
    expect(result).toBe("a\nb\nc\n");
    expect(existsSync(seen)).toBe(false);
    expect(await worktreeEntries(m)).toEqual([]);
    expect(await registeredWorktrees(m)).toBe(0);
  });

  it("removes the worktree after the callback throws", async () => {
    const m = await newMirror();
    let seen = "";
    await expect(
      m.withWorktree(7, undefined, async (wt) => {
        seen = wt.path;
        await writeFile(join(wt.path, "untracked.log"), "left behind\n");
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect(seen).not.toBe("");
    expect(existsSync(seen)).toBe(false);
    expect(await registeredWorktrees(m)).toBe(0);
  });

  it("removes the worktree on abort, even if the callback ignores the signal", async () => {
    const m = await newMirror();
    const ac = new AbortController();
    let seen = "";
    const err = await expectCode(
      m.withWorktree(
        7,
        pr7Sha,
        async (wt) => {
          seen = wt.path;
          setTimeout(() => ac.abort(), 50);
          await new Promise((r) => setTimeout(r, 60_000));
        },
        ac.signal,
      ),
      "ABORTED",
    );
    expect(err.message).toContain("#7");
    expect(existsSync(seen)).toBe(false);
    expect(await registeredWorktrees(m)).toBe(0);
  });

  it("refuses an already aborted signal without creating anything", async () => {
    const m = await newMirror();
    await expectCode(
      m.withWorktree(7, undefined, async () => "never", AbortSignal.abort()),
      "ABORTED",
    );
    expect(await worktreeEntries(m)).toEqual([]);
  });

  it("refuses a head that moved (GIT_HEAD_MISMATCH)", async () => {
    const m = await newMirror();
    let called = false;
    const err = await expectCode(
      m.withWorktree(7, pr8Sha, async () => {
        called = true;
      }),
      "GIT_HEAD_MISMATCH",
    );
    expect(called).toBe(false);
    expect(err.details).toMatchObject({ expected_sha: pr8Sha, actual_sha: pr7Sha });
  });

  it("cleanOrphans removes leftovers of dead processes and prunes git's records", async () => {
    const m = await newMirror();
    await m.fetchPullHead(7);
    const dead = await deadPid();
    const orphan = join(m.worktreesDir, `pr-7-${dead}-abcd1234`);
    await mkdir(m.worktreesDir, { recursive: true });
    await git(m.mirrorPath, "worktree", "add", "--detach", orphan, pr7Sha);
    const stray = join(m.worktreesDir, "stray-dir");
    await mkdir(join(stray, "nested"), { recursive: true });
    // A worktree of another live server process sharing the state directory is left alone.
    const live = join(m.worktreesDir, `pr-7-${process.ppid}-ffff0000`);
    await mkdir(live);
    expect(await registeredWorktrees(m)).toBe(1);

    const removed = await m.cleanOrphans();
    expect(removed.sort()).toEqual([orphan, stray].sort());
    expect(existsSync(orphan)).toBe(false);
    expect(existsSync(stray)).toBe(false);
    expect(existsSync(live)).toBe(true);
    expect(await registeredWorktrees(m)).toBe(0);
  });

  describe("the reused checkout", () => {
    const spareMirror = async () =>
      new GitMirror({ remote, stateDir: await mkdtemp(join(root, "state-")), spareWorktree: true });
    const spares = async (m: GitMirror) => (await worktreeEntries(m)).filter((e) => e.startsWith("spare-"));
    /** What a checkout holds: its files, HEAD, and anything git would report. */
    const contents = async (path: string) => ({
      files: (await readdir(path)).sort(),
      head: await git(path, "rev-parse", "HEAD"),
      status: await git(path, "status", "--porcelain", "--ignored"),
    });
    /** What a review on the spare-keeping mirror sees: its checkout, app.txt, and what `more` reads. */
    const reviewed = (
      m: GitMirror,
      pr: number,
      sha: string,
      more: (path: string) => Promise<Record<string, string>> = async () => ({}),
    ) =>
      m.withWorktree(
        pr,
        sha,
        async (wt) => ({
          path: wt.path,
          ...(await contents(wt.path)),
          app: await readFile(join(wt.path, "app.txt"), "utf8"),
          ...(await more(wt.path)),
        }),
        undefined,
        true,
      );

    it("is made by the first review and cleaned after it of what the review wrote, left at the head it reviewed", async () => {
      const m = await spareMirror();
      let during = "";
      await m.withWorktree(
        7,
        pr7Sha,
        async (wt) => {
          during = wt.path;
          expect(await contents(wt.path)).toEqual({
            files: [".git", "README.md", "app.txt", "feature.txt"],
            head: pr7Sha,
            status: "",
          });
          await writeFile(join(wt.path, "build-output.log"), "left behind\n");
          await writeFile(join(wt.path, "app.txt"), "tampered\n");
        },
        undefined,
        true,
      );
      expect(basename(during)).toMatch(new RegExp(`^spare-${process.pid}-[0-9a-f]+$`));
      expect(await spares(m)).toEqual([basename(during)]);
      // The build output is gone; the tracked file the review changed is put back by the next one.
      expect(await contents(during)).toEqual({
        files: [".git", "README.md", "app.txt", "feature.txt"],
        head: pr7Sha,
        status: "M app.txt",
      });
      expect(await registeredWorktrees(m)).toBe(1);
    });

    it("is taken by the next review, checked out at its head and verified clean, whatever was put into it while it waited", async () => {
      const m = await spareMirror();
      await m.withWorktree(7, pr7Sha, async () => undefined, undefined, true);
      const spare = join(m.worktreesDir, (await spares(m))[0]!);
      // Anything sharing the directory could have touched it: a tracked file, new and ignored files.
      await writeFile(join(spare, "README.md"), "tampered\n");
      await writeFile(join(spare, ".gitignore"), "node_modules/\n");
      await mkdir(join(spare, "node_modules", ".bin"), { recursive: true });
      await writeFile(join(spare, "node_modules", ".bin", "vitest"), "#!/bin/sh\necho pass\n");
      const sha8 = await m.fetchPullHead(8);
      const seen = await reviewed(m, 8, sha8, async (path) => ({
        readme: await readFile(join(path, "README.md"), "utf8"),
      }));
      expect(seen).toEqual({
        path: spare,
        files: [".git", "README.md", "app.txt"],
        head: pr8Sha,
        status: "",
        app: "PR line 1\nline 2\nline 3\n",
        readme: "# demo\n",
      });
      expect(await spares(m)).toEqual([basename(spare)]);
      expect(await registeredWorktrees(m)).toBe(1);
    });

    it("is taken at its head whatever was done to its index or directories while it waited", async () => {
      const m = await spareMirror();
      await m.withWorktree(7, pr7Sha, async () => undefined, undefined, true);
      const spare = join(m.worktreesDir, (await spares(m))[0]!);
      await git(spare, "rm", "--quiet", "--cached", "feature.txt");
      await rm(join(spare, "app.txt"));
      await mkdir(join(spare, "app.txt", "inside"), { recursive: true });
      await mkdir(join(spare, "empty", "nested"), { recursive: true });
      const seen = await reviewed(m, 7, pr7Sha, async (path) => ({
        index: await git(path, "ls-files", "--stage"),
      }));
      expect(seen).toEqual({
        path: spare,
        files: [".git", "README.md", "app.txt", "feature.txt"],
        head: pr7Sha,
        status: "",
        app: "line 1\nline 2\nline 3 changed\n",
        index: await git(
          m.mirrorPath,
          "ls-tree",
          "-r",
          "--format=%(objectmode) %(objectname) 0\t%(path)",
          pr7Sha,
        ),
      });
    });

    it("is made afresh when a .gitattributes was put into it while it waited: the checkout would have written by it", async () => {
      const m = await spareMirror();
      await m.withWorktree(7, pr7Sha, async () => undefined, undefined, true);
      const spare = join(m.worktreesDir, (await spares(m))[0]!);
      await writeFile(join(spare, ".gitattributes"), "*.txt text eol=crlf\n");
      const sha8 = await m.fetchPullHead(8);
      const seen = await reviewed(m, 8, sha8);
      expect(seen.path).not.toBe(spare);
      expect(seen).toEqual({
        path: seen.path,
        files: [".git", "README.md", "app.txt"],
        head: pr8Sha,
        status: "",
        app: "PR line 1\nline 2\nline 3\n",
      });
      expect(await spares(m)).toEqual([basename(seen.path)]);
    });

    it("is made afresh when a review flagged index entries the checkout leaves alone (assume-unchanged, skip-worktree)", async () => {
      const m = await spareMirror();
      const flagged = await m.withWorktree(
        7,
        pr7Sha,
        async (wt) => {
          await git(wt.path, "update-index", "--assume-unchanged", "README.md");
          await git(wt.path, "update-index", "--skip-worktree", "app.txt");
          await writeFile(join(wt.path, "README.md"), "tampered\n");
          await writeFile(join(wt.path, "app.txt"), "tampered\n");
          return wt.path;
        },
        undefined,
        true,
      );
      const seen = await reviewed(m, 7, pr7Sha, async (path) => ({
        flags: await git(path, "ls-files", "-v"),
        readme: await readFile(join(path, "README.md"), "utf8"),
      }));
      expect(seen.path).not.toBe(flagged);
      expect(seen).toEqual({
        path: seen.path,
        files: [".git", "README.md", "app.txt", "feature.txt"],
        head: pr7Sha,
        status: "",
        flags: "H README.md\nH app.txt\nH feature.txt",
        readme: "# demo\n",
        app: "line 1\nline 2\nline 3 changed\n",
      });
      expect(await spares(m)).toEqual([basename(seen.path)]);
      expect(await registeredWorktrees(m)).toBe(1);
    });

    it("is cleaned even when the review fails or is cancelled", async () => {
      const m = await spareMirror();
      await expect(
        m.withWorktree(
          7,
          pr7Sha,
          async () => {
            throw new Error("the review's command crashed");
          },
          undefined,
          true,
        ),
      ).rejects.toThrow("crashed");
      const abort = new AbortController();
      await expectCode(
        m.withWorktree(
          7,
          pr7Sha,
          async (wt) => {
            await writeFile(join(wt.path, "half-written"), "x");
            abort.abort();
            await new Promise(() => undefined); // a command that never ends on its own
          },
          abort.signal,
          true,
        ),
        "ABORTED",
      );
      const [spare] = await spares(m);
      expect(await contents(join(m.worktreesDir, spare!))).toEqual({
        files: [".git", "README.md", "app.txt", "feature.txt"],
        head: pr7Sha,
        status: "",
      });
    });

    it("is removed after the review when no base is given", async () => {
      const m = await spareMirror();
      await m.withWorktree(7, pr7Sha, async () => undefined);
      expect(await worktreeEntries(m)).toEqual([]);
      expect(await registeredWorktrees(m)).toBe(0);
    });

    it("is not used when .gitattributes differ: they decide how unchanged files are written", async () => {
      // A PR that only adds `eol=crlf`: a checkout from the reused one would keep app.txt's LF endings.
      await git(work, "checkout", "--quiet", "-B", "crlf", pr7Sha);
      await writeFile(join(work, ".gitattributes"), "*.txt text eol=crlf\n");
      await git(work, "add", ".gitattributes");
      await git(work, "commit", "--quiet", "-m", "crlf");
      await git(work, "push", "--quiet", "origin", "HEAD:refs/pull/9/head");
      await git(work, "checkout", "--quiet", "main");
      const m = await spareMirror();
      await m.withWorktree(7, pr7Sha, async () => undefined, undefined, true);
      const sha9 = await m.fetchPullHead(9);
      const app = await m.withWorktree(
        9,
        sha9,
        async (wt) => readFile(join(wt.path, "app.txt"), "utf8"),
        undefined,
        true,
      );
      expect(app).toBe("line 1\r\nline 2\r\nline 3 changed\r\n");
      // The one made afresh is kept; going back to PR 7's attributes, it is made afresh again.
      expect(await spares(m)).toHaveLength(1);
      const back = await m.withWorktree(
        7,
        pr7Sha,
        async (wt) => readFile(join(wt.path, "app.txt"), "utf8"),
        undefined,
        true,
      );
      expect(back).not.toContain("\r\n");
      expect(await spares(m)).toHaveLength(1);
      expect(await registeredWorktrees(m)).toBe(1);
    });

    it("in use by one review, a second review at the same time gets a fresh worktree, removed afterwards", async () => {
      const m = await spareMirror();
      await m.withWorktree(7, pr7Sha, async () => undefined, undefined, true);
      const sha8 = await m.fetchPullHead(8);
      const paths = await m.withWorktree(
        7,
        pr7Sha,
        async (outer) => {
          const inner = await m.withWorktree(8, sha8, async (wt) => wt.path, undefined, true);
          return [outer.path, inner];
        },
        undefined,
        true,
      );
      expect(basename(paths[0]!)).toMatch(/^spare-/);
      expect(basename(paths[1]!)).toMatch(/^pr-8-/);
      expect(await worktreeEntries(m)).toEqual([basename(paths[0]!)]);
      expect(await registeredWorktrees(m)).toBe(1);
    });

    it("keeps git's record through cleanOrphans run beside a review", async () => {
      const m = await spareMirror();
      await m.withWorktree(7, pr7Sha, async () => undefined, undefined, true);
      const [spare] = await spares(m);
      const status = await m.withWorktree(
        7,
        pr7Sha,
        async (wt) => {
          expect(readdirSync(join(m.mirrorPath, "worktrees"))).toEqual([spare]);
          await m.cleanOrphans(); // start-up recovery runs beside the first reviews
          return git(wt.path, "status", "--porcelain");
        },
        undefined,
        true,
      );
      expect(status).toBe("");
      expect(await spares(m)).toEqual([spare]);
    });

    it("is replaced by a fresh one when it is unusable", async () => {
      const m = await spareMirror();
      await m.withWorktree(7, pr7Sha, async () => undefined, undefined, true);
      const [spare] = await spares(m);
      await rm(join(m.worktreesDir, spare!), { recursive: true, force: true });
      const text = await m.withWorktree(
        7,
        pr7Sha,
        async (wt) => readFile(join(wt.path, "feature.txt"), "utf8"),
        undefined,
        true,
      );
      expect(text).toBe("a\nb\nc\n");
      expect(await spares(m)).toHaveLength(1);
      expect(await registeredWorktrees(m)).toBe(1); // the broken one's record was pruned
    });

    it("is removed by close(), and none is kept after it", async () => {
      const m = await spareMirror();
      await m.withWorktree(7, pr7Sha, async () => undefined, undefined, true);
      await m.close();
      expect(await worktreeEntries(m)).toEqual([]);
      expect(await registeredWorktrees(m)).toBe(0);
      await m.withWorktree(7, pr7Sha, async () => undefined, undefined, true);
      expect(await worktreeEntries(m)).toEqual([]);
    });

    it("is left out without the option", async () => {
      const m = await newMirror();
      await m.withWorktree(7, pr7Sha, async () => undefined, undefined, true);
      expect(await worktreeEntries(m)).toEqual([]);
    });

    it("of a dead process is an orphan for cleanOrphans; a live one's is left alone", async () => {
      const m = await newMirror();
      await m.fetchPullHead(7);
      await mkdir(m.worktreesDir, { recursive: true });
      const orphan = join(m.worktreesDir, `spare-${await deadPid()}-abcd1234`);
      await git(m.mirrorPath, "worktree", "add", "--detach", orphan, pr7Sha);
      const live = join(m.worktreesDir, `spare-${process.ppid}-ffff0000`);
      await mkdir(live);
      expect(await m.cleanOrphans()).toEqual([orphan]);
      expect(existsSync(live)).toBe(true);
      expect(await registeredWorktrees(m)).toBe(0);
    });
  });

  describe("a worktree record caught half-written by a concurrent `worktree add`", () => {
    /** What `worktree add` has written after creating `commondir` and before filling it in. */
    async function halfMadeRecord(m: GitMirror, name: string): Promise<string> {
      const record = join(m.mirrorPath, "worktrees", name);
      await mkdir(record, { recursive: true });
      await writeFile(join(record, "locked"), "initializing");
      await writeFile(join(record, "gitdir"), `${join(m.worktreesDir, name, ".git")}\n`);
      await writeFile(join(record, "HEAD"), `${pr7Sha}\n`);
      await writeFile(join(record, "commondir"), "");
      return record;
    }

    it("makes git fail at once; the command is retried and succeeds once the record is complete", async () => {
      const retries: string[] = [];
      let record = "";
      const logger: Logger = {
        debug: (msg, data) => {
          if (!msg.startsWith("git met a worktree being added")) return;
          retries.push(JSON.stringify(data));
          writeFileSync(join(record, "commondir"), "../..\n"); // the other `worktree add` goes on
        },
        info: () => undefined,
        warn: () => undefined,
        error: () => undefined,
        child: () => logger,
      };
      const m = new GitMirror({ remote, stateDir: await mkdtemp(join(root, "state-")), logger });
      await m.fetchPullHead(7);
      record = await halfMadeRecord(m, `pr-7-${process.ppid}-0000beef`);
      const bare = await exec(
        "git",
        ["-C", m.mirrorPath, "worktree", "add", "--detach", join(root, "x"), pr7Sha],
        {
          env: GIT_ENV,
        },
      ).then(
        () => "",
        (e: { stderr: string }) => e.stderr,
      );
      expect(bare).toMatch(/failed to read .*commondir/);
      writeFileSync(join(record, "commondir"), "");

      const files = await m.withWorktree(7, pr7Sha, async (wt) => (await readdir(wt.path)).sort());
      expect(files).toEqual([".git", "README.md", "app.txt", "feature.txt"]);
      expect(retries).toEqual([JSON.stringify({ command: "worktree", attempt: 1 })]);
    });

    it("gives up after a few tries with git's own message", async () => {
      const m = await newMirror();
      await m.fetchPullHead(7);
      await halfMadeRecord(m, `pr-7-${process.ppid}-0000beef`);
      const err = await expectCode(
        m.withWorktree(7, pr7Sha, async () => undefined),
        "GIT_FAILED",
      );
      expect(err.message).toMatch(/failed to read .*commondir/);
    });

    it("of this process's own review, left by its `worktree add` killed half-way, is dropped with the review", async () => {
      const m = await newMirror();
      await m.fetchPullHead(7);
      await m.withWorktree(7, pr7Sha, async (wt) => {
        const record = join(m.mirrorPath, "worktrees", basename(wt.path));
        await writeFile(join(record, "locked"), "initializing");
        await writeFile(join(record, "commondir"), "");
      });
      expect(await worktreeEntries(m)).toEqual([]);
      expect(await registeredWorktrees(m)).toBe(0);
      const sha8 = await m.fetchPullHead(8);
      expect(await m.withWorktree(8, sha8, async (wt) => wt.sha)).toBe(pr8Sha);
    });

    it("left by a dead process (a `worktree add` killed half-way) is dropped by cleanOrphans", async () => {
      const m = await newMirror();
      await m.fetchPullHead(7);
      const dead = await halfMadeRecord(m, `spare-${await deadPid()}-0000dead`);
      const live = await halfMadeRecord(m, `spare-${process.ppid}-0000a11e`);
      await m.cleanOrphans();
      expect(existsSync(dead)).toBe(false);
      expect(existsSync(live)).toBe(true); // still being made by a live process
      writeFileSync(join(live, "commondir"), "../..\n");
      const sha8 = await m.fetchPullHead(8);
      expect(await m.withWorktree(8, sha8, async (wt) => wt.sha)).toBe(pr8Sha);
    });
  });

  it("gitVersion reads the installed git's version; gitVersionSupported wants 2.38 or later", async () => {
    const printed = await git(root, "--version");
    const version = await gitVersion();
    expect(printed).toContain(`git version ${version}`);
    expect(gitVersionSupported(version)).toBe(true); // merge-tree --write-tree is used by these tests
    expect(["2.37.9", "2.9", "1.99.0"].map(gitVersionSupported)).toEqual([false, false, false]);
    expect(["2.38", "2.38.0", "2.100.1", "3.0.0"].map(gitVersionSupported)).toEqual([true, true, true, true]);
  });

  it("cleanOrphans is harmless before the mirror exists", async () => {
    const m = await newMirror();
    expect(await m.cleanOrphans()).toEqual([]);
  });

  it("diffStat counts files and lines against the merge base", async () => {
    const m = await newMirror();
    await m.fetchPullHead(7);
    const stat = await m.diffStat("main", pr7Sha);
    const byPath = Object.fromEntries(stat.files.map((f) => [f.path, f]));
    expect(byPath["feature.txt"]).toEqual({ path: "feature.txt", additions: 3, deletions: 0 });
    expect(byPath["app.txt"]).toEqual({ path: "app.txt", additions: 1, deletions: 1 });
    // main's own later change to app.txt is not part of the PR.
    expect(stat.files).toHaveLength(2);
    expect(stat).toMatchObject({ additions: 4, deletions: 1 });
  });

  it("diff returns the unified diff, capped on a line boundary", async () => {
    const m = await newMirror();
    await m.fetchPullHead(7);
    const full = await m.diff("main", pr7Sha);
    expect(full.truncated).toBe(false);
    expect(full.text).toContain("+++ b/feature.txt");
    expect(full.text).toContain("+line 3 changed");
    const cut = await m.diff("main", pr7Sha, 100);
    expect(cut.truncated).toBe(true);
    expect(cut.bytes).toBe(full.bytes);
    expect(cut.text.length).toBeLessThanOrEqual(100);
    expect(cut.text.endsWith("\n")).toBe(true);
  });

  it("mergeCheck: clean for PR #7, conflict on app.txt for PR #8, no branch moved", async () => {
    const m = await newMirror();
    await m.fetchPullHead(7);
    await m.fetchPullHead(8);
    const mainBefore = await m.branchSha("main");
    expect(await m.mergeCheck("main", pr7Sha)).toEqual({ clean: true, conflicts: [] });
    expect(await m.mergeCheck("main", pr8Sha)).toEqual({ clean: false, conflicts: ["app.txt"] });
    expect(await m.branchSha("main")).toBe(mainBefore);
    expect(await git(m.mirrorPath, "for-each-ref", "--format=%(refname)", "refs/heads")).toBe("");
  });

  it("rejects dangerous ref names and PR numbers before running git", async () => {
    const m = await newMirror();
    for (const bad of [
      "-rf",
      "a;rm -rf /",
      "$(x)",
      "a b",
      "a..b",
      "x`id`",
      "refs/heads/../x",
      "a\u0000b",
      "@{-1}",
      ".hidden",
      "x.lock",
    ]) {
      expect(() => assertRefName(bad), bad).toThrowError(EoaError);
      await expectCode(m.diffStat(bad, pr7Sha), "GIT_BAD_REF");
    }
    await expectCode(m.diffStat("main", "--output=/tmp/x"), "GIT_BAD_REF");
    await expectCode(m.fetchPullHead(0), "GIT_BAD_REF");
    await expectCode(m.fetchPullHead(-3), "GIT_BAD_REF");
    await expectCode(m.fetchPullHead(1.5), "GIT_BAD_REF");
    expect(assertRefName("feature/GH-101_auth-v2")).toBe("feature/GH-101_auth-v2");
  });

  it("reports an unreachable remote without leaking credentials", async () => {
    const state = await mkdtemp(join(root, "state-"));
    const local = new GitMirror({ remote: join(root, "does-not-exist.git"), stateDir: state });
    await expectCode(local.ensureMirror(), "GIT_REMOTE_UNREACHABLE");

    const url = "https://x-access-token:ghp_SECRETSECRET@127.0.0.1:1/owner/repo.git";
    const https = new GitMirror({
      remote: url,
      stateDir: await mkdtemp(join(root, "state-")),
      timeoutMs: 20_000,
    });
    const err = await expectCode(https.ensureMirror(), "GIT_REMOTE_UNREACHABLE");
    const shown = `${err.message} ${err.nextStep} ${JSON.stringify(err.details)}`;
    expect(shown).toContain("https://127.0.0.1:1/owner/repo.git");
    expect(shown).not.toContain("SECRETSECRET");
    expect(shown).not.toContain("x-access-token");
  });

  it("sends a token as an auth header through git's environment: never on a command line or on disk", async () => {
    const token = "ghp_TOKENONTHEWIRE0123456789abcdefghij";
    const seen: Array<{ authorization: string | undefined; cmdlines: string[]; fetch: boolean }> = [];
    const server = createHttpServer((req, res) => {
      // git (and git-remote-http) are waiting for this answer: look at every process's argv now.
      const all = readdirSync("/proc")
        .filter((d) => /^\d+$/.test(d))
        .map((pid) => {
          try {
            return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
          } catch {
            return ""; // gone meanwhile
          }
        });
      seen.push({
        authorization: req.headers.authorization,
        cmdlines: all.filter((c) => c.includes(token)),
        // The control: the scan does see the waiting fetch's own argv.
        fetch: all.some((c) => c.includes("fetch") && c.includes(`127.0.0.1:${port}`)),
      });
      res.writeHead(403).end("no");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as AddressInfo;
    try {
      const m = new GitMirror({
        remote: `http://127.0.0.1:${port}/owner/repo.git`,
        token,
        stateDir: await mkdtemp(join(root, "state-")),
      });
      const err = await expectCode(m.ensureMirror(), "GIT_REMOTE_UNREACHABLE");
      expect(seen.length).toBeGreaterThan(0);
      const basic = Buffer.from(`x-access-token:${token}`).toString("base64");
      expect(seen[0]!.authorization?.toLowerCase()).toBe(`basic ${basic}`.toLowerCase());
      expect(seen[0]!.fetch).toBe(true);
      expect(seen.flatMap((s) => s.cmdlines)).toEqual([]);
      expect(`${err.message} ${JSON.stringify(err.details)}`).not.toContain(token);
      expect(await readFile(join(m.mirrorPath, "config"), "utf8")).not.toContain(basic);
    } finally {
      server.close();
    }
  });

  it("stripCredentials removes user:password@ from URLs", () => {
    expect(stripCredentials("fatal: unable to access 'https://u:p@github.com/o/r.git/'")).toBe(
      "fatal: unable to access 'https://github.com/o/r.git/'",
    );
    expect(stripCredentials("git@github.com:o/r.git")).toBe("git@github.com:o/r.git");
  });
});

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  await new Promise((r) => child.once("exit", r));
  return child.pid!;
}
