import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Clock } from "../../clock.js";
import { runGit } from "../git-repo.js";
import type { PullFileSpec } from "./types.js";

/**
 * The bare repository a rehearsal uses as its remote, seen the way GitHub sees its own: what a
 * pull request changes (against the merge base, as GitHub's three-dot diff), whether it merges
 * cleanly into its base now, and the merge itself (merge, squash or rebase), which moves the base
 * branch. Renames are not detected: a moved file is one removed and one added.
 */

export interface PullDiff {
  files: PullFileSpec[];
  commits: number;
}

export interface Person {
  name: string;
  email: string;
}

/** The merge's commit, and the base branch's tip it was made on. */
export type MergeOutcome = { sha: string; base: string } | { refused: "conflict" | "base moved" };

const STATUS: Record<string, PullFileSpec["status"]> = {
  A: "added",
  D: "removed",
  M: "modified",
  T: "changed",
};
const GITHUB: Person = { name: "GitHub", email: "noreply@github.com" };

export class RemoteGit {
  private readonly known = new Set<string>();
  /** Merges run one at a time, as each moves a branch the next one starts from. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly dir: string,
    private readonly clock: Clock,
  ) {}

  private git(args: string[], opts: Parameters<typeof runGit>[2] = {}) {
    return runGit(this.dir, args, opts);
  }
  private async out(...args: string[]): Promise<string> {
    return (await this.git(args)).stdout;
  }

  /** Is `sha` a commit of this repository? (A PR whose head is not is a fixture without git.) */
  async has(sha: string): Promise<boolean> {
    if (this.known.has(sha)) return true;
    if (!/^[0-9a-f]{40}$/.test(sha)) return false;
    const { code } = await this.git(["cat-file", "-e", `${sha}^{commit}`], { okCodes: [1, 128] });
    if (code === 0) this.known.add(sha);
    return code === 0;
  }

  /** A commit as a workflow run's `head_commit` shows it. */
  async commit(sha: string) {
    const [tree, message, timestamp, an, ae, cn, ce] = (
      await this.out("log", "-1", "--format=%T%x00%B%x00%cI%x00%an%x00%ae%x00%cn%x00%ce", sha)
    ).split("\0") as [string, string, string, string, string, string, string];
    return {
      id: sha,
      tree_id: tree,
      message: message.trim(),
      timestamp,
      author: { name: an, email: ae },
      committer: { name: cn, email: ce.trim() },
    };
  }

  async tip(branch: string): Promise<string> {
    return (
      await this.out("rev-parse", "--verify", "--end-of-options", `refs/heads/${branch}^{commit}`)
    ).trim();
  }

  /** What `head` changes since it left `baseTip` (a commit of its base branch). */
  async diff(baseTip: string, head: string): Promise<PullDiff> {
    const base = (await this.out("merge-base", baseTip, head)).trim();
    const numstat = (await this.out("diff", "--no-renames", "--numstat", "-z", base, head)).split("\0");
    const names = (await this.out("diff", "--no-renames", "--name-status", "-z", base, head)).split("\0");
    const status = new Map<string, string>();
    for (let k = 0; k + 1 < names.length; k += 2) status.set(names[k + 1]!, names[k]!);
    const files: PullFileSpec[] = [];
    for (const entry of numstat.filter(Boolean)) {
      const [add, del, filename] = entry.split("\t") as [string, string, string];
      // GitHub's per-file patch is the hunks alone, without the diff header; a binary file has none.
      const full = await this.out("diff", "--no-renames", base, head, "--", filename);
      const hunks = full.indexOf("\n@@");
      files.push({
        filename,
        status: STATUS[status.get(filename) ?? "M"] ?? "modified",
        additions: add === "-" ? 0 : Number(add),
        deletions: del === "-" ? 0 : Number(del),
        ...(hunks >= 0 ? { patch: full.slice(hunks + 1).replace(/\n$/, "") } : {}),
      });
    }
    const commits = Number((await this.out("rev-list", "--count", `${base}..${head}`)).trim());
    return { files, commits };
  }

  /** Would `head` merge into `baseBranch` without a conflict right now? */
  async mergesCleanly(baseBranch: string, head: string): Promise<boolean> {
    const { code } = await this.git(
      ["merge-tree", "--write-tree", "--no-messages", await this.tip(baseBranch), head],
      { okCodes: [1] },
    );
    return code === 0;
  }

  merge(spec: {
    method: "merge" | "squash" | "rebase";
    baseBranch: string;
    head: string;
    title: string;
    message: string;
    author: Person;
  }): Promise<MergeOutcome> {
    const run = this.queue.then(() => this.mergeNow(spec));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async mergeNow(spec: Parameters<RemoteGit["merge"]>[0]): Promise<MergeOutcome> {
    const base = await this.tip(spec.baseBranch);
    let sha: string | null;
    if (spec.method === "rebase") sha = await this.rebase(base, spec.head);
    else {
      const merged = await this.git(["merge-tree", "--write-tree", "--no-messages", base, spec.head], {
        okCodes: [1],
      });
      if (merged.code !== 0) return { refused: "conflict" };
      const tree = merged.stdout.split("\n")[0]!.trim();
      const parents = spec.method === "merge" ? [base, spec.head] : [base];
      sha = await this.commitTree(tree, parents, `${spec.title}\n\n${spec.message}`.trim(), spec.author);
    }
    if (!sha) return { refused: "conflict" };
    // Moves the branch only if nobody pushed to it meanwhile, as GitHub does.
    const moved = await this.git(["update-ref", `refs/heads/${spec.baseBranch}`, sha, base], {
      okCodes: [1, 128],
    });
    if (moved.code !== 0) return { refused: "base moved" };
    this.known.add(sha);
    return { sha, base };
  }

  /** Replays each of the head's commits on `base` (a three-way apply in a scratch index); null on a conflict. */
  private async rebase(base: string, head: string): Promise<string | null> {
    const commits = (await this.out("rev-list", "--reverse", "--no-merges", `${base}..${head}`))
      .split("\n")
      .filter(Boolean);
    const scratch = await mkdtemp(join(tmpdir(), "eoa-sim-rebase-"));
    const env = { GIT_INDEX_FILE: join(scratch, "index") };
    try {
      let current = base;
      for (const c of commits) {
        await this.git(["read-tree", current], { env });
        const patch = await this.out("diff", "--binary", "--no-renames", `${c}^`, c);
        const applied = await this.git(["apply", "--cached", "--3way"], { env, input: patch, okCodes: [1] });
        if (applied.code !== 0) return null;
        const tree = (await this.git(["write-tree"], { env })).stdout.trim();
        const [name, email, date, message] = (
          await this.out("log", "-1", "--format=%an%x00%ae%x00%aI%x00%B", c)
        ).split("\0") as [string, string, string, string];
        current = await this.commitTree(tree, [current], message.trim(), { name, email }, date);
      }
      return current;
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }

  private async commitTree(
    tree: string,
    parents: string[],
    message: string,
    author: Person,
    authorDate = this.clock.now().toISOString(),
  ): Promise<string> {
    const env = {
      GIT_AUTHOR_NAME: author.name,
      GIT_AUTHOR_EMAIL: author.email,
      GIT_AUTHOR_DATE: authorDate,
      GIT_COMMITTER_NAME: GITHUB.name,
      GIT_COMMITTER_EMAIL: GITHUB.email,
      GIT_COMMITTER_DATE: this.clock.now().toISOString(),
    };
    const args = ["commit-tree", tree, ...parents.flatMap((p) => ["-p", p]), "-m", message];
    return (await this.git(args, { env })).stdout.trim();
  }
}
