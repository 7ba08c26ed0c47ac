import { execFile } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/**
 * A real git repository on disk standing in for the GitHub remote: a bare repository plus a work
 * clone that plays the developer agents, pushing PR heads to `refs/pull/N/head` as GitHub does.
 */
export class LocalRepo {
  private constructor(
    readonly bare: string,
    readonly work: string,
  ) {}

  static async create(root: string, files: Record<string, string> = DEFAULT_FILES): Promise<LocalRepo> {
    const bare = join(root, "remote.git");
    const work = join(root, "work");
    await mkdir(root, { recursive: true });
    await git(root, "init", "--bare", "--initial-branch=main", bare);
    await git(root, "init", "--initial-branch=main", work);
    const repo = new LocalRepo(bare, work);
    await repo.writeFiles(files);
    await git(work, "add", "-A");
    await repo.commit("Initial commit");
    await git(work, "remote", "add", "origin", bare);
    await git(work, "push", "-q", "origin", "main");
    return repo;
  }

  /** The commit a branch of the remote points at. */
  async head(branch = "main"): Promise<string> {
    return (await git(this.bare, "rev-parse", branch)).trim();
  }

  /** Commits `files` on a branch cut from `base` and pushes it as PR `number`; returns the head SHA. */
  async pushPullRequest(
    number: number,
    branch: string,
    files: Record<string, string>,
    base = "main",
  ): Promise<string> {
    await git(this.work, "fetch", "-q", "origin");
    await git(this.work, "checkout", "-q", "-B", branch, `origin/${base}`);
    return this.commitAndPush(files, `${branch}: ${Object.keys(files).join(", ")}`, [
      `HEAD:refs/heads/${branch}`,
      `HEAD:refs/pull/${number}/head`,
    ]);
  }

  /** Adds a commit on top of PR `number`'s branch (an agent's fix round). */
  async pushFix(number: number, branch: string, files: Record<string, string>): Promise<string> {
    await git(this.work, "checkout", "-q", branch);
    return this.commitAndPush(files, `${branch}: fix`, [
      `HEAD:refs/heads/${branch}`,
      `HEAD:refs/pull/${number}/head`,
    ]);
  }

  /** Commits directly on main (someone else's work landing), e.g. to make a PR conflict. */
  async commitToMain(files: Record<string, string>, message = "change on main"): Promise<string> {
    await git(this.work, "fetch", "-q", "origin");
    await git(this.work, "checkout", "-q", "-B", "main", "origin/main");
    return this.commitAndPush(files, message, ["main"]);
  }

  /** Writes `files`, commits them on the checked-out branch, pushes to `refspecs`; returns the SHA. */
  private async commitAndPush(
    files: Record<string, string>,
    message: string,
    refspecs: string[],
  ): Promise<string> {
    await this.writeFiles(files);
    await git(this.work, "add", "-A");
    await this.commit(message);
    await git(this.work, "push", "-q", "-f", "origin", ...refspecs);
    return (await git(this.work, "rev-parse", "HEAD")).trim();
  }

  private async writeFiles(files: Record<string, string>): Promise<void> {
    for (const [path, content] of Object.entries(files)) {
      const full = join(this.work, path);
      await mkdir(dirname(full), { recursive: true });
      await writeFile(full, content);
    }
  }

  private async commit(message: string): Promise<void> {
    await git(
      this.work,
      "-c",
      "user.name=dev-agent",
      "-c",
      "user.email=dev-agent@example.invalid",
      "commit",
      "-q",
      "-m",
      message,
    );
  }
}

async function git(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await run("git", args, {
    cwd,
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: cwd,
      GIT_TERMINAL_PROMPT: "0",
      GIT_CONFIG_NOSYSTEM: "1",
    },
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout;
}

/** A small project whose own test and lint commands are plain shell, so reviews run anywhere. */
export const DEFAULT_FILES: Record<string, string> = {
  "README.md": "# webapp\n",
  "src/app.py": "def main():\n    return 0\n",
  "tests/run.sh":
    '#!/bin/sh\n# Every tests/*.test file holds "pass" or "fail".\npassed=0; failed=0\nfor f in tests/*.test; do [ -e "$f" ] || continue; if grep -q pass "$f"; then passed=$((passed+1)); else failed=$((failed+1)); fi; done\nmkdir -p coverage\necho "{\\"total\\":{\\"lines\\":{\\"pct\\":$( [ -f tests/coverage ] && cat tests/coverage || echo 90 )}}}" > coverage/coverage-summary.json\necho "$passed passed, $failed failed"\n[ "$failed" -eq 0 ]\n',
  "tests/base.test": "pass\n",
  "lint.sh": '#!/bin/sh\n# Lint: no line may contain the word TODO-LINT.\n! grep -rn "TODO-LINT" src\n',
};
