import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rm } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { promisify } from "node:util";
import type { SimpleGit } from "simple-git";
import { EoaError, errorMessage } from "../errors.js";
import { silentLogger, type Logger } from "../log.js";
import { pidGone } from "../owner.js";

/**
 * The review's view of the repository (rule 6): one cached bare mirror under `<stateDir>/mirror`,
 * fetched incrementally, and one ephemeral detached worktree per review under
 * `<stateDir>/worktrees`, removed afterwards whatever happens.
 *
 * Decisions:
 * - The mirror is `git init --bare` plus fetches from the remote URL given on each call: no
 *   remote, and so no credential in a URL, is written to the mirror's config. A token (option
 *   `token`) goes to git as an auth header in its environment, never in argv.
 * - Branches land in `refs/remotes/origin/*` (pruned), PR heads in `refs/pull/N/head`, kept out of
 *   the pruned namespace so a branch prune never drops a PR head.
 * - Worktree directories are named `pr-<N>-<pid>-<random>`: several server processes may share a
 *   state directory, and `cleanOrphans` only removes directories whose owning process is gone.
 * - With `spareWorktree`, one checkout (`spare-<pid>-<random>`) is kept and reused: a review checks
 *   out its head there (`checkout --force --detach`, which compares every tracked file with the
 *   index and writes only those that differ), verified by one listing of its index and of anything
 *   else in it (no index entry the checkout leaves alone; nothing untracked or ignored, else
 *   `clean -ffdx` and look again; `.gitattributes` as before, else it is made afresh) and HEAD.
 *   Afterwards what the review's commands wrote is removed (`clean -ffdx`: build output, installed
 *   dependencies), and the checkout waits at the head it reviewed: its files are in the mirror
 *   anyway, the next review sees none of them, and moving back to the base cost a second checkout a
 *   review (issue 16; docs/PROTOCOL.md, rule 6). Creating every file of a large repository for each
 *   review would cost more than a clone. A review that finds it in use (a second review at once)
 *   gets a fresh worktree, removed afterwards.
 * - Every name that comes from remote data is validated before it reaches argv, and git is always
 *   spawned without a shell; `--end-of-options` separates revisions from options.
 */

export interface GitMirrorOptions {
  /** Clone URL or path; may carry credentials, which never appear in errors or logs. */
  remote: string;
  /**
   * A token for an http(s) remote, sent by git as an HTTP basic-auth header (`x-access-token`, as
   * GitHub expects). It reaches git through its environment (GIT_CONFIG_*), which only this user
   * can read: never the command line (world-readable in /proc while a fetch runs) nor a config file.
   */
  token?: string | undefined;
  stateDir: string;
  logger?: Logger;
  /** Kills a git process that produced no output for this long. Default 120 s. */
  timeoutMs?: number;
  /** Keep one checkout and reuse it from review to review (see the notes above). Default false. */
  spareWorktree?: boolean;
}

interface RunOptions {
  signal?: AbortSignal | undefined;
  /** Run in this worktree rather than in the mirror. */
  cwd?: string;
  /** Added to git's minimal environment. */
  env?: Record<string, string>;
}

export interface Worktree {
  path: string;
  sha: string;
}

export interface DiffStat {
  files: Array<{ path: string; additions: number; deletions: number; binary?: boolean }>;
  additions: number;
  deletions: number;
}

export interface DiffText {
  text: string;
  /** True when the diff was longer than the cap and `text` holds only its start. */
  truncated: boolean;
  bytes: number;
}

export interface MergeCheck {
  clean: boolean;
  conflicts: string[];
}

const DEFAULT_TIMEOUT_MS = 120_000;
const DEFAULT_DIFF_CAP = 2 * 1024 * 1024;
/** After an abort, how long the review callback gets to settle before its worktree is removed anyway. */
const ABORT_SETTLE_MS = 2_000;
const BRANCH_REFSPEC = "+refs/heads/*:refs/remotes/origin/*";
const WORKTREE_NAME = /^(?:pr-\d+|spare)-(\d+)-[0-9a-f]+$/;
/** git's complaint about a worktree record caught half-written by a concurrent `worktree add`. */
const HALF_MADE_WORKTREE = /^fatal: failed to read \S*worktrees\/[^/\s]+\/commondir/m;
const HALF_MADE_RETRIES = 3;
const HALF_MADE_DELAY_MS = 100;

export class GitMirror {
  /** PR heads this process fetched, by PR number. */
  private readonly fetchedHeads = new Map<number, string>();
  readonly mirrorPath: string;
  readonly worktreesDir: string;
  private readonly remote: string;
  private readonly log: Logger;
  private readonly timeoutMs: number;
  /** Fetches into the same refs would fail on ref locks: one at a time per process. */
  private fetchQueue: Promise<unknown> = Promise.resolve();
  private readonly active = new Set<string>();
  private readonly spareWorktree: boolean;
  /** Environment for commands that talk to the remote. */
  private readonly authEnv: Record<string, string>;
  /** The reused checkout, at `sha`, with the `.gitattributes` entries of its index (see `checkoutIndex`). */
  private spare: { path: string; sha: string; attributes: string; busy: boolean } | undefined;
  private closed = false;

  constructor(opts: GitMirrorOptions) {
    this.remote = assertRemote(opts.remote);
    const stateDir = resolve(opts.stateDir);
    this.mirrorPath = join(stateDir, "mirror");
    this.worktreesDir = join(stateDir, "worktrees");
    this.log = opts.logger ?? silentLogger;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.spareWorktree = opts.spareWorktree ?? false;
    this.authEnv = opts.token && /^https?:\/\//i.test(this.remote) ? tokenEnv(this.remote, opts.token) : {};
  }

  /** Creates the mirror on first use, otherwise fetches what changed on the remote's branches. */
  async ensureMirror(signal?: AbortSignal): Promise<void> {
    await this.initMirror();
    await this.fetch([BRANCH_REFSPEC], signal);
  }

  /** Fetches PR #N's head (and the branches, so the base is current) and returns the head SHA. */
  async fetchPullHead(prNumber: number, signal?: AbortSignal): Promise<string> {
    assertPrNumber(prNumber);
    await this.initMirror();
    const ref = `refs/pull/${prNumber}/head`;
    try {
      await this.fetch([`+${ref}:${ref}`, BRANCH_REFSPEC], signal);
    } catch (err) {
      if (err instanceof EoaError && err.code === "GIT_REF_NOT_FOUND") {
        throw new EoaError(
          "GIT_PR_NOT_FOUND",
          `the remote has no head for PR #${prNumber} (${ref})`,
          "check the PR number; a PR from a deleted fork or a closed PR may have no head ref",
          { pr_number: prNumber },
        );
      }
      throw err;
    }
    // The fetch left the ref in a file of its own unless it was up to date and packed: read there,
    // it costs no git process (each costs this process a fork, several ms at a server's size).
    const sha = (await this.looseRef(ref)) ?? (await this.resolveCommit(ref));
    this.fetchedHeads.set(prNumber, sha);
    return sha;
  }

  /** The SHA of a remote branch as of the last fetch. */
  async branchSha(branch: string): Promise<string> {
    return this.resolveCommit(this.revision(branch));
  }

  /**
   * Checks out PR #N's head in a detached worktree, runs `fn` in it, and afterwards cleans the
   * reused checkout of what the review wrote (or removes a worktree made for this review): on
   * success, on a throw and on abort. Without `keep` the reused checkout is removed too. With
   * `expectedSha`, a head that moved since the caller looked is refused rather than reviewed.
   */
  async withWorktree<T>(
    prNumber: number,
    expectedSha: string | undefined,
    fn: (wt: Worktree) => Promise<T>,
    signal?: AbortSignal,
    keep?: boolean,
  ): Promise<T> {
    assertPrNumber(prNumber);
    const expected = expectedSha === undefined ? undefined : assertSha(expectedSha);
    throwIfAborted(signal, prNumber);
    // The caller usually fetched this head a moment ago (its objects are in the mirror, whatever the
    // ref says now): fetch again only otherwise.
    const sha =
      expected && this.fetchedHeads.get(prNumber) === expected
        ? expected
        : await this.fetchPullHead(prNumber, signal).catch((err: unknown) => {
            throw withPr(err, prNumber);
          });
    if (expected && sha !== expected) {
      throw new EoaError(
        "GIT_HEAD_MISMATCH",
        `PR #${prNumber} head is ${sha}, not the expected ${expected}`,
        "the PR changed since it was read: fetch it again and review the new head",
        { pr_number: prNumber, expected_sha: expected, actual_sha: sha },
      );
    }
    let path = "";
    try {
      await mkdir(this.worktreesDir, { recursive: true });
      path = await this.checkoutFor(prNumber, sha, signal);
      this.log.debug("worktree ready", { pr_number: prNumber, sha, path });
      return await settleOrAbort(fn({ path, sha }), signal, prNumber);
    } catch (err) {
      throw withPr(err, prNumber);
    } finally {
      if (path) await this.release(path, keep === true);
    }
  }

  /**
   * A worktree at `sha` with nothing else in it: the reused checkout when it is free and usable,
   * else a new one (which becomes the reused checkout when there is none).
   */
  private async checkoutFor(prNumber: number, sha: string, signal?: AbortSignal): Promise<string> {
    const spare = this.spare;
    if (spare && !spare.busy) {
      spare.busy = true;
      const attributes = await this.switchCheckout(spare, sha, signal);
      if (attributes !== undefined) {
        spare.sha = sha;
        spare.attributes = attributes;
        return spare.path;
      }
      await this.dropSpare();
      throwIfAborted(signal, prNumber);
    }
    const reuse = this.spareWorktree && !this.spare && !this.closed;
    const path = this.worktreePath(reuse ? "spare" : `pr-${prNumber}`);
    this.active.add(path);
    if (reuse) this.spare = { path, sha, attributes: "", busy: true };
    try {
      await this.run(["worktree", "add", "--detach", "--end-of-options", path, sha], { signal });
      if (this.spare?.path === path)
        this.spare.attributes = (await this.checkoutIndex(path, signal)).attributes;
    } catch (err) {
      if (reuse) this.spare = undefined;
      await this.removeWorktree(path);
      this.active.delete(path);
      throw err;
    }
    return path;
  }

  /** After a review: the reused checkout is cleaned of what it wrote, any other worktree is removed. */
  private async release(path: string, keep: boolean): Promise<void> {
    const spare = this.spare;
    if (spare?.path !== path) {
      await this.removeWorktree(path);
      this.active.delete(path);
      return;
    }
    // Not under the review's signal: a cancelled review's checkout is cleaned all the same.
    if (keep && !this.closed) {
      try {
        await this.run(["clean", "-ffdxq"], { cwd: path });
        spare.busy = false;
        return;
      } catch (err) {
        this.log.debug("reused checkout not cleaned, removed", { error: errorMessage(err) });
      }
    }
    await this.dropSpare();
  }

  /**
   * Moves the reused checkout to commit `to`, exactly as a fresh checkout of `to` would be, and
   * returns its `.gitattributes` entries; undefined when it cannot be (the caller then makes one
   * afresh).
   */
  private async switchCheckout(
    spare: { path: string; attributes: string },
    to: string,
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    const { path } = spare;
    try {
      // `--force` rewrites tracked files changed since the checkout (by anything while it waited:
      // it sits in a shared directory). (`to` is a checked full commit id, and git 2.39's checkout
      // refuses `--end-of-options` after `--detach`.)
      await this.run(["checkout", "--quiet", "--force", "--detach", to], { signal, cwd: path });
      // Verified, not assumed: what a review sees is `to`'s tree and nothing else. The checkout
      // just compared every tracked file with the index (what `status` would do again) and
      // rewrote those that differ, except entries flagged assume-unchanged or skip-worktree (a
      // review's commands may set them). Files that are not the head's are removed, and it is
      // asked again; but a `.gitattributes` among them applied to what the checkout wrote.
      let index = await this.checkoutIndex(path, signal);
      if (index.odd.length && index.odd.every((entry) => entry.startsWith("? ") && !isAttributes(entry))) {
        await this.run(["clean", "-ffdxq"], { signal, cwd: path });
        index = await this.checkoutIndex(path, signal);
      }
      const head = await checkoutHead(path);
      if (index.odd.length || head !== to) {
        throw new Error(`not clean at ${to}: HEAD ${head}, ${index.odd.slice(0, 5).join(", ")}`);
      }
      // Attributes (eol, ident, filters, encodings) decide how files are written out, and a
      // checkout rewrites only the files whose content changed: if they differ from those of the
      // commit it was at, start afresh.
      if (index.attributes !== spare.attributes)
        throw new Error(".gitattributes differ between the two commits");
      return index.attributes;
    } catch (err) {
      this.log.debug("reused checkout unusable, making one afresh", { error: errorMessage(err) });
      return undefined;
    }
  }

  /**
   * One listing of a checkout's index and of what is not in it: `odd` holds every entry but a
   * plain tracked file ("H "): flagged ones ("h", "S", "s") and others ("? ", untracked and
   * ignored alike, as no excludes are given, and empty directories); `attributes` the index's
   * `.gitattributes` entries (mode, blob and path, as a diff of the two commits would compare).
   */
  private async checkoutIndex(
    path: string,
    signal?: AbortSignal,
  ): Promise<{ odd: string[]; attributes: string }> {
    const entries = (
      await this.run(["ls-files", "-v", "--stage", "--cached", "--others", "--directory", "-z"], {
        signal,
        cwd: path,
      })
    ).split("\0");
    return {
      odd: entries.filter((entry) => entry && !entry.startsWith("H ")),
      attributes: entries.filter(isAttributes).join("\0"),
    };
  }

  private async dropSpare(): Promise<void> {
    const spare = this.spare;
    if (!spare) return;
    this.spare = undefined;
    await this.removeWorktree(spare.path);
    this.active.delete(spare.path);
  }

  /**
   * Removes the reused checkout (at once if free, else when its review ends); later reviews get a
   * fresh worktree each. Call when the server stops.
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.spare && !this.spare.busy) await this.dropSpare();
  }

  private worktreePath(prefix: string): string {
    return join(this.worktreesDir, `${prefix}-${process.pid}-${randomBytes(4).toString("hex")}`);
  }

  /**
   * Removes worktree directories left by a crashed run (its process is gone) and prunes git's
   * records of them. Call at start-up. Returns the removed paths.
   */
  async cleanOrphans(): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.worktreesDir);
    } catch {
      names = [];
    }
    const removed: string[] = [];
    for (const name of names) {
      const path = join(this.worktreesDir, name);
      if (this.active.has(path) || ownedByLiveProcess(name)) continue;
      await this.removeWorktree(path);
      removed.push(path);
    }
    if (existsSync(this.mirrorPath)) {
      await this.dropOrphanRecords();
      await this.run(["worktree", "prune"]).catch(() => undefined);
    }
    if (removed.length) this.log.info("removed orphaned worktrees", { count: removed.length });
    return removed;
  }

  /**
   * `worktree prune` keeps a locked record, and a `worktree add` killed half-way leaves its record
   * locked ("initializing"), possibly without `commondir`, which every later fetch then dies on.
   * A record of a dead process's worktree whose directory is gone is dropped here instead.
   */
  private async dropOrphanRecords(): Promise<void> {
    const activeNames = new Set([...this.active].map((p) => basename(p)));
    for (const { record, checkout } of await this.worktreeRecords()) {
      const name = basename(checkout);
      if (!WORKTREE_NAME.test(name) || activeNames.has(name) || ownedByLiveProcess(name)) continue;
      if (!existsSync(checkout)) await this.dropRecord(record);
    }
  }

  /**
   * git's records of worktrees (`mirror/worktrees/<id>`) with the checkout each belongs to, read
   * from its `gitdir` file: a record keeps its id when `worktree move` gives the checkout a new
   * name, and the id differs from the checkout's name when the name was taken. A record without a
   * readable `gitdir` is left out (git skips it too).
   */
  private async worktreeRecords(): Promise<Array<{ record: string; checkout: string }>> {
    const dir = join(this.mirrorPath, "worktrees");
    const ids = await readdir(dir).catch(() => [] as string[]);
    const records: Array<{ record: string; checkout: string }> = [];
    for (const id of ids) {
      const gitdir = await readFile(join(dir, id, "gitdir"), "utf8").catch(() => "");
      if (gitdir.trim()) records.push({ record: join(dir, id), checkout: dirname(gitdir.trim()) });
    }
    return records;
  }

  private async dropRecord(record: string): Promise<void> {
    await rm(record, { recursive: true, force: true }).catch((err: unknown) => {
      this.log.warn("could not remove a worktree record", { record, error: errorMessage(err) });
    });
  }

  /** Files and lines changed by `sha` since it forked from `baseRef` (merge-base diff, as a PR shows). */
  async diffStat(baseRef: string, sha: string): Promise<DiffStat> {
    const range = `${this.revision(baseRef)}...${assertSha(sha)}`;
    const out = await this.run(["diff", "--numstat", "-z", "--no-renames", "--end-of-options", range, "--"]);
    const files: DiffStat["files"] = [];
    let additions = 0;
    let deletions = 0;
    for (const entry of out.split("\0")) {
      const m = /^(\d+|-)\t(\d+|-)\t([\s\S]+)$/.exec(entry);
      if (!m) continue;
      const binary = m[1] === "-";
      const add = binary ? 0 : Number(m[1]);
      const del = binary ? 0 : Number(m[2]);
      files.push(
        binary
          ? { path: m[3]!, additions: 0, deletions: 0, binary }
          : { path: m[3]!, additions: add, deletions: del },
      );
      additions += add;
      deletions += del;
    }
    return { files, additions, deletions };
  }

  /** The unified diff of the PR (merge-base diff), cut at `maxBytes` on a line boundary. */
  async diff(baseRef: string, sha: string, maxBytes = DEFAULT_DIFF_CAP): Promise<DiffText> {
    const range = `${this.revision(baseRef)}...${assertSha(sha)}`;
    const text = await this.run([
      "diff",
      "--no-color",
      "--no-ext-diff",
      "--no-textconv",
      // Explicit prefixes: a user's diff.noprefix / diff.mnemonicPrefix would change file headers.
      "--src-prefix=a/",
      "--dst-prefix=b/",
      "--end-of-options",
      range,
      "--",
    ]);
    const bytes = Buffer.byteLength(text);
    if (bytes <= maxBytes) return { text, truncated: false, bytes };
    const head = Buffer.from(text).subarray(0, maxBytes).toString("utf8");
    const cut = head.lastIndexOf("\n");
    return { text: cut >= 0 ? head.slice(0, cut + 1) : head, truncated: true, bytes };
  }

  /**
   * Would `sha` merge cleanly into `baseRef`? `git merge-tree --write-tree` (git >= 2.38) merges in
   * the object store only: no branch, index or worktree changes.
   */
  async mergeCheck(baseRef: string, sha: string): Promise<MergeCheck> {
    const base = this.revision(baseRef);
    const head = assertSha(sha);
    const { stdout, exitCode } = await this.runWithExit(
      ["merge-tree", "--write-tree", "--name-only", "--no-messages", "-z", "--end-of-options", base, head],
      [0, 1],
    );
    // Output: <tree oid> NUL, then one conflicted path per NUL-terminated entry.
    const [, ...paths] = stdout.split("\0").filter((s) => s.length > 0);
    const conflicts = [...new Set(paths)];
    return { clean: exitCode === 0 && conflicts.length === 0, conflicts };
  }

  private async initMirror(): Promise<void> {
    if (existsSync(join(this.mirrorPath, "HEAD"))) return;
    await mkdir(this.mirrorPath, { recursive: true });
    // Idempotent: a second process doing the same re-initialises harmlessly.
    await this.run(["init", "--bare", "--quiet"]);
    this.log.info("created git mirror", { path: this.mirrorPath, remote: stripCredentials(this.remote) });
  }

  private fetch(refspecs: string[], signal?: AbortSignal): Promise<void> {
    const job = this.fetchQueue.then(async () => {
      const args = ["fetch", "--quiet", "--prune", "--no-tags", "--end-of-options", this.remote, ...refspecs];
      try {
        await this.run(args, { signal, env: this.authEnv });
      } catch (err) {
        // Another process sharing the state directory may hold a ref lock for a moment.
        if (!/cannot lock ref|unable to create .*\.lock/i.test(gitOutput(err))) throw err;
        await delay(250);
        await this.run(args, { signal, env: this.authEnv });
      }
    });
    this.fetchQueue = job.catch(() => undefined);
    return job.catch((err: unknown) => {
      throw this.fetchError(err);
    });
  }

  private fetchError(err: unknown): unknown {
    if (!(err instanceof EoaError) || err.code === "ABORTED") return err;
    const output = gitOutput(err);
    const remote = stripCredentials(this.remote);
    if (/couldn't find remote ref/i.test(output)) {
      return new EoaError(
        "GIT_REF_NOT_FOUND",
        `the remote has no such ref: ${keyLine(output)}`,
        "check the ref exists",
        { remote },
      );
    }
    return new EoaError(
      "GIT_REMOTE_UNREACHABLE",
      `cannot fetch from ${remote}: ${err.code === "GIT_TIMEOUT" ? "timed out" : keyLine(output) || err.message}`,
      "check the remote URL (git.remote / EOA_GIT_REMOTE), the network and the token's access to the repository, then retry",
      { remote, output },
    );
  }

  private async resolveCommit(rev: string): Promise<string> {
    const out = await this.run([
      "rev-parse",
      "--verify",
      "--quiet",
      "--end-of-options",
      `${rev}^{commit}`,
    ]).catch(() => "");
    const sha = out.trim();
    if (!/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(sha)) {
      throw new EoaError(
        "GIT_REF_NOT_FOUND",
        `${rev} is not in the mirror`,
        "fetch first (ensureMirror / fetchPullHead), and check the branch or PR exists on the remote",
        { ref: rev },
      );
    }
    return sha;
  }

  /** A ref's commit from its own file in the mirror (a "loose" ref), if it has one. */
  private async looseRef(ref: string): Promise<string | undefined> {
    const text = await readFile(join(this.mirrorPath, ref), "utf8").catch(() => "");
    return /^([0-9a-f]{40}(?:[0-9a-f]{24})?)\n$/.exec(text)?.[1];
  }

  /** A branch name becomes its remote-tracking ref; a full SHA is used as is. */
  private revision(ref: string): string {
    if (isSha(ref)) return ref.toLowerCase();
    const name = assertRefName(ref.startsWith("refs/heads/") ? ref.slice("refs/heads/".length) : ref);
    return `refs/remotes/origin/${name}`;
  }

  private async removeWorktree(path: string): Promise<void> {
    let removed = false;
    if (existsSync(this.mirrorPath)) {
      removed = await this.run(["worktree", "remove", "--force", "--force", path]).then(
        () => true,
        () => false,
      );
    }
    // Last resort: a half-created or unregistered directory that git does not know about.
    if (existsSync(path)) {
      await rm(path, { recursive: true, force: true, maxRetries: 3 }).catch((err: unknown) => {
        this.log.warn("could not remove worktree directory", { path, error: errorMessage(err) });
      });
    }
    // `worktree remove` already dropped git's record; prune only after the fallback. Prune keeps a
    // locked record, which is what a `worktree add` killed half-way leaves: that one goes by hand.
    if (!removed && existsSync(this.mirrorPath)) {
      for (const { record, checkout } of await this.worktreeRecords())
        if (basename(checkout) === basename(path)) await this.dropRecord(record);
      await this.run(["worktree", "prune"]).catch(() => undefined);
    }
  }

  private async run(args: string[], opts: RunOptions = {}): Promise<string> {
    return (await this.runWithExit(args, [0], opts)).stdout;
  }

  /**
   * Runs git in the mirror (or in one of its worktrees, `cwd`); exit codes outside `okExit` become
   * an EoaError carrying git's output.
   */
  private async runWithExit(
    args: string[],
    okExit: number[],
    { signal, cwd, env = {} }: RunOptions = {},
  ): Promise<{ stdout: string; exitCode: number }> {
    if (!existsSync(this.mirrorPath)) {
      throw new EoaError(
        "GIT_NO_MIRROR",
        `the git mirror ${this.mirrorPath} does not exist yet`,
        "fetch first (ensureMirror or fetchPullHead)",
      );
    }
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.runOnce(args, okExit, { signal, cwd, env });
      } catch (err) {
        // Every command that lists worktrees (fetch, worktree add/move/remove) dies while another
        // `worktree add`, in this process or another, has created its record but not yet written
        // `commondir`: a moment's wait is enough.
        if (attempt > HALF_MADE_RETRIES || signal?.aborted || !HALF_MADE_WORKTREE.test(gitOutput(err)))
          throw err;
        this.log.debug("git met a worktree being added; retrying", { command: args[0], attempt });
        await delay(HALF_MADE_DELAY_MS * attempt);
      }
    }
  }

  private async runOnce(
    args: string[],
    okExit: number[],
    { signal, cwd, env = {} }: RunOptions,
  ): Promise<{ stdout: string; exitCode: number }> {
    let exitCode = -1;
    // Loaded on the first git command: a server answers `initialize` without paying for it.
    const { simpleGit, GitPluginError } = await import("simple-git");
    const git: SimpleGit = simpleGit({
      baseDir: cwd ?? this.mirrorPath,
      trimmed: false,
      timeout: { block: this.timeoutMs },
      ...(signal ? { abort: signal } : {}),
      allowEnvironment: ["GIT_TERMINAL_PROMPT", "GIT_LFS_SKIP_SMUDGE", ...Object.keys(env)],
      // The only configuration passed through the environment is the token's header (authEnv).
      unsafe: { allowUnsafeConfigEnvCount: "GIT_CONFIG_COUNT" in env },
      errors(error, result) {
        exitCode = result.exitCode;
        if (error) return error;
        if (okExit.includes(result.exitCode)) return undefined;
        return Buffer.concat([...result.stdErr, ...result.stdOut]);
      },
    })
      .env({ ...gitEnv(), ...env })
      // simple-git waits 50 ms more after a git process that wrote nothing (its completion
      // plugin), and most commands here write nothing: fetch --quiet, worktree add/move/remove,
      // checkout --quiet. An empty chunk, sent once simple-git listens (its listeners are attached
      // in the same tick as this handler runs), says the process spoke. It adds nothing to stdout.
      .outputHandler((_command, stdout) => queueMicrotask(() => stdout.emit("data", Buffer.alloc(0))));
    try {
      return { stdout: await git.raw(args), exitCode };
    } catch (err) {
      const plugin = err instanceof GitPluginError ? err.plugin : undefined;
      throw gitError(args[0] ?? "git", err, plugin);
    }
  }
}

/** Maps a simple-git failure to a domain error; git's output (credentials stripped) goes in details. */
function gitError(command: string, err: unknown, plugin?: string): EoaError {
  if (err instanceof EoaError) return err;
  if (plugin === "abort") {
    return new EoaError("ABORTED", `git ${command} was cancelled`, "retry when ready");
  }
  if (plugin === "timeout") {
    return new EoaError(
      "GIT_TIMEOUT",
      `git ${command} produced no output for too long and was stopped`,
      "retry; if it persists, check the network and the repository size",
    );
  }
  const output = stripCredentials(errorMessage(err)).trim().slice(-2000);
  if (
    /bad revision|ambiguous argument|unknown revision|not a valid object name|invalid object|not a tree object|bad object/i.test(
      output,
    )
  ) {
    return new EoaError(
      "GIT_REF_NOT_FOUND",
      `git ${command}: ${keyLine(output)}`,
      "fetch first (ensureMirror / fetchPullHead) and check the branch or commit exists",
      { output },
    );
  }
  return new EoaError(
    "GIT_FAILED",
    `git ${command} failed: ${keyLine(output) || "no output"}`,
    "check the state directory's mirror and retry",
    { output },
  );
}

function gitOutput(err: unknown): string {
  if (err instanceof EoaError && typeof err.details?.output === "string") return err.details.output;
  return errorMessage(err);
}

/** git's most telling line: the first fatal/error line, else the last line. */
function keyLine(text: string): string {
  const lines = text
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.find((l) => /^(fatal|error):/i.test(l)) ?? lines.at(-1) ?? "";
}

function withPr(err: unknown, prNumber: number): unknown {
  return err instanceof EoaError && err.code === "ABORTED" ? abortedError(prNumber) : err;
}

/** git configuration, through the environment, that makes it send the token to the remote's host. */
function tokenEnv(remote: string, token: string): Record<string, string> {
  const basic = Buffer.from(`x-access-token:${token}`).toString("base64");
  return {
    GIT_CONFIG_COUNT: "1",
    GIT_CONFIG_KEY_0: `http.${new URL(remote).origin}/.extraheader`,
    GIT_CONFIG_VALUE_0: `AUTHORIZATION: basic ${basic}`,
  };
}

/** Minimal environment: simple-git refuses the ambient one, and no prompt may ever block a fetch. */
function gitEnv(): Record<string, string> {
  const env: Record<string, string> = { GIT_TERMINAL_PROMPT: "0", GIT_LFS_SKIP_SMUDGE: "1" };
  if (process.env.PATH) env.PATH = process.env.PATH;
  if (process.env.HOME) env.HOME = process.env.HOME;
  return env;
}

/** The oldest git reviews work with: `merge-tree --write-tree` (the merge check) came in 2.38. */
export const GIT_MIN_VERSION = [2, 38] as const;

/** The installed git's version (`git --version`), e.g. "2.39.5"; GIT_NOT_FOUND without git. */
export async function gitVersion(): Promise<string> {
  const notFound = (why: string) =>
    new EoaError("GIT_NOT_FOUND", why, `install git ${GIT_MIN_VERSION.join(".")} or later`);
  const { stdout } = await promisify(execFile)("git", ["--version"], {
    env: gitEnv(),
    timeout: 10_000,
  }).catch((err: unknown) => {
    throw notFound(`cannot run git: ${errorMessage(err)}`);
  });
  const version = /git version (\d+\.\d+(?:\.\d+)?)/.exec(stdout)?.[1];
  if (!version) throw notFound(`git --version printed ${JSON.stringify(stdout.trim())}`);
  return version;
}

/** Whether a `gitVersion()` is at least GIT_MIN_VERSION. */
export function gitVersionSupported(version: string): boolean {
  const [major = 0, minor = 0] = version.split(".").map(Number);
  return major > GIT_MIN_VERSION[0] || (major === GIT_MIN_VERSION[0] && minor >= GIT_MIN_VERSION[1]);
}

// ---- validation of values that come from remote data ---------------------------------------------

const SHELL_META = /[;&|$`'"<>(){}!\\]/;

/**
 * A branch name as `git check-ref-format --branch` would accept it, narrowed further: no leading
 * `-` (option injection), no shell metacharacters, no whitespace. Returns the name or throws GIT_BAD_REF.
 */
export function assertRefName(name: string): string {
  const bad = (why: string): never => {
    throw new EoaError(
      "GIT_BAD_REF",
      `refused ref name ${JSON.stringify(name.slice(0, 100))}: ${why}`,
      "use a plain branch name",
      {
        ref: name.slice(0, 100),
      },
    );
  };
  if (typeof name !== "string" || name.length === 0) bad("empty");
  if (name.length > 255) bad("too long");
  if (name.startsWith("-")) bad("starts with '-'");
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x20\x7f]/.test(name)) bad("control character or whitespace");
  if (/[~^:?*[]/.test(name) || SHELL_META.test(name)) bad("forbidden character");
  if (name.includes("..")) bad("contains '..'");
  if (name.includes("@{") || name === "@") bad("'@{' or '@'");
  if (name.startsWith("/") || name.endsWith("/") || name.includes("//")) bad("empty path component");
  if (name.endsWith(".")) bad("ends with '.'");
  for (const part of name.split("/")) {
    if (part.startsWith(".") || part.endsWith(".lock")) bad("component starts with '.' or ends with '.lock'");
  }
  return name;
}

function isSha(value: string): boolean {
  return /^[0-9a-fA-F]{40}([0-9a-fA-F]{24})?$/.test(value);
}

/** A full commit SHA (SHA-1 or SHA-256), lower-cased. */
export function assertSha(value: string): string {
  if (typeof value !== "string" || !isSha(value)) {
    throw new EoaError(
      "GIT_BAD_REF",
      `refused commit id ${JSON.stringify(String(value).slice(0, 80))}`,
      "pass a full 40-hex commit SHA",
    );
  }
  return value.toLowerCase();
}

export function assertPrNumber(n: number): number {
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new EoaError("GIT_BAD_REF", `refused PR number ${String(n)}`, "pass a positive integer PR number");
  }
  return n;
}

function assertRemote(remote: string): string {
  // eslint-disable-next-line no-control-regex
  if (!remote || remote.startsWith("-") || /[\x00-\x1f\x7f]/.test(remote)) {
    throw new EoaError(
      "GIT_BAD_REMOTE",
      `refused git remote ${JSON.stringify(stripCredentials(String(remote)))}`,
      "set git.remote (EOA_GIT_REMOTE) to a clone URL or a path",
    );
  }
  return remote;
}

/** Removes `user:password@` from every URL in `text`. */
export function stripCredentials(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^/@\s]+@/gi, "$1");
}

// ---- worktree ownership and abort ---------------------------------------------------------------

/** Whether an `ls-files -v --stage` entry ("H <mode> <blob> 0\t<path>", "? <path>") is a `.gitattributes`. */
function isAttributes(entry: string): boolean {
  return /(?:^\? |\t|\/)\.gitattributes$/.test(entry);
}

/** What a worktree's HEAD holds: its `.git` file names its git directory (`gitdir: <path>`). */
async function checkoutHead(path: string): Promise<string> {
  const link = /^gitdir: (.+)$/m.exec(await readFile(join(path, ".git"), "utf8"))?.[1];
  return link ? (await readFile(join(resolve(path, link), "HEAD"), "utf8")).trim() : "";
}

function ownedByLiveProcess(name: string): boolean {
  const m = WORKTREE_NAME.exec(name);
  if (!m) return false;
  const pid = Number(m[1]);
  if (pid === process.pid) return false; // ours, and not active: left by an earlier failure
  return !pidGone(pid);
}

function abortedError(prNumber: number): EoaError {
  return new EoaError(
    "ABORTED",
    `the review of PR #${prNumber} was cancelled; its worktree was removed`,
    "call review_pr again to restart the review",
    { pr_number: prNumber },
  );
}

function throwIfAborted(signal: AbortSignal | undefined, prNumber: number): void {
  if (signal?.aborted) throw abortedError(prNumber);
}

/**
 * Resolves with `work`, or on abort gives it a moment to settle (its own commands should honour the
 * same signal) and then rejects, so the caller's `finally` removes the worktree either way.
 */
function settleOrAbort<T>(work: Promise<T>, signal: AbortSignal | undefined, prNumber: number): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(abortedError(prNumber));
  }
  return new Promise<T>((resolvePromise, reject) => {
    const onAbort = () => {
      const settled = work.then(
        () => undefined,
        () => undefined,
      );
      void Promise.race([settled, delay(ABORT_SETTLE_MS)]).then(() => reject(abortedError(prNumber)));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(
      (value) => {
        if (signal.aborted) return; // the abort path settles the promise
        signal.removeEventListener("abort", onAbort);
        resolvePromise(value);
      },
      (err: unknown) => {
        if (signal.aborted) return;
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
