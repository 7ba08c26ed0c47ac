import { randomBytes } from "node:crypto";
import {
  linkSync,
  lstatSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { PROCESS_ID, processGone } from "../owner.js";

/**
 * The state directory's cross-process lock: `state.json.lock`, a hard link to a small file of the
 * holder's own that names it (`.lock-owner-…`). Taking it is one `link` (EEXIST while another
 * holds it) after one `utimes`, releasing it one `unlink`: no inode is made or freed. Right after
 * a journal's fdatasync, a call that makes an inode (proper-lockfile's `mkdir`, a `symlink`) waits
 * for ext4's commit, 0.5 ms a transaction; a `link` takes 20 µs.
 *
 * A holder that dies leaves its link: it is stale once its time is older than STALE_MS (a live
 * holder refreshes it every REFRESH_MS) and the next taker removes it. A directory at that path, how
 * eoa-mcp held the lock before, is held or stale the same way: old and new processes exclude each
 * other.
 */

export const STALE_MS = 5_000;
const REFRESH_MS = 2_000;
const OWNER_PREFIX = ".lock-owner-";

export class StateLock {
  readonly path: string;
  private readonly dir: string;
  private own: { file: string; ino: number } | undefined;

  constructor(
    file: string,
    /** Who the owner file names. Each lock links a file of its own, even two stores of one process. */
    private readonly owner = PROCESS_ID,
    /** The clock stale locks are judged by (a test's runs ahead). */
    private readonly now: () => number = Date.now,
  ) {
    this.path = `${file}.lock`;
    this.dir = dirname(file);
  }

  /** Takes the lock if it is free or stale: its release, or undefined while another holds it. */
  tryTake(): (() => void) | undefined {
    let own = this.ownFile();
    let taken: boolean;
    try {
      taken = this.link(own.file, this.path);
    } catch (err) {
      // Our owner file removed under us (a sweep that took this process for gone): make another.
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      this.own = undefined;
      own = this.ownFile();
      taken = this.link(own.file, this.path);
    }
    if (!taken && !(this.removeStale() && this.link(own.file, this.path))) return undefined;
    const ours = () => lstatSync(this.path, { throwIfNoEntry: false })?.ino === own.ino;
    const refresh = setInterval(() => {
      if (ours()) this.touch(this.path);
    }, REFRESH_MS).unref();
    return () => {
      clearInterval(refresh);
      // Only our own link: one taken over as stale is its new holder's.
      if (ours()) unlinkSync(this.path);
    };
  }

  /** Whether anyone holds the lock. */
  taken(): boolean {
    return lstatSync(this.path, { throwIfNoEntry: false }) !== undefined;
  }

  /** Who holds the lock, or undefined when it is free or held by an older eoa-mcp's directory. */
  holder(): string | undefined {
    try {
      return readFileSync(this.path, "utf8");
    } catch {
      return undefined;
    }
  }

  /** The file this lock links, made at its first use; a process that has gone leaves its own behind. */
  private ownFile(): { file: string; ino: number } {
    if (this.own) return this.own;
    sweepOwners(this.dir);
    const file = join(this.dir, `${OWNER_PREFIX}${process.pid}-${randomBytes(6).toString("hex")}`);
    writeFileSync(file, this.owner, { flag: "wx" });
    ownFiles.add(file);
    return (this.own = { file, ino: statSync(file).ino });
  }

  /** Links `from` as `to` with a fresh time, before the link shows it: no one sees it stale. */
  private link(from: string, to: string): boolean {
    this.touch(from);
    try {
      linkSync(from, to);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw err;
    }
  }

  private touch(file: string): void {
    const now = new Date(this.now());
    try {
      utimesSync(file, now, now);
    } catch {
      // Gone: the link that follows says so.
    }
  }

  /**
   * Removes the lock when it is stale; whether the next try may take it (also when it has just gone).
   * Two takers may both find it stale: a second lock, held for the few microseconds of the check and
   * the removal, makes sure only one removes it, so that the other cannot remove the first one's
   * fresh link.
   */
  private removeStale(): boolean {
    const age = this.ageOf(this.path);
    if (age === undefined) return true;
    if (age <= STALE_MS) return false;
    const guard = `${this.path}.takeover`;
    if (!this.link(this.ownFile().file, guard)) {
      // A taker that died in those microseconds: its guard goes once stale too.
      if ((this.ageOf(guard) ?? 0) > STALE_MS) remove(guard);
      return false;
    }
    try {
      const now = this.ageOf(this.path);
      if (now !== undefined && now <= STALE_MS) return false;
      if (now !== undefined) remove(this.path);
      return true;
    } finally {
      unlinkSync(guard);
    }
  }

  /** How long ago `path` was taken or refreshed; undefined when it is not there. */
  private ageOf(path: string): number | undefined {
    const stat = lstatSync(path, { throwIfNoEntry: false });
    return stat && this.now() - stat.mtimeMs;
  }
}

/** This process's owner files, removed when it exits. */
const ownFiles = new Set<string>();
process.once("exit", () => {
  for (const file of ownFiles) remove(file);
});

/** Directories whose owner files of gone processes this process has removed. */
const swept = new Set<string>();

/** Removes the owner files of processes that have gone (killed: no exit handler ran). */
function sweepOwners(dir: string): void {
  if (swept.has(dir)) return;
  swept.add(dir);
  for (const name of readdirSync(dir)) {
    if (!name.startsWith(OWNER_PREFIX)) continue;
    const file = join(dir, name);
    try {
      if (processGone(readFileSync(file, "utf8"))) remove(file);
    } catch {
      // Removed meanwhile by another process's sweep.
    }
  }
}

/** Removes a file (or an older eoa-mcp's lock directory) if it is there. */
function remove(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EISDIR" || code === "EPERM") rmdirSync(path);
    else if (code !== "ENOENT") throw err;
  }
}
