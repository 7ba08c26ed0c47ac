import { lstatSync, lutimesSync, readlinkSync, rmdirSync, symlinkSync, unlinkSync } from "node:fs";
import { PROCESS_ID } from "../owner.js";

/**
 * The state directory's cross-process lock: a symbolic link `state.json.lock` whose target names
 * its holder (a PROCESS_ID). Taking it is one `symlink` (EEXIST while another holds it), releasing
 * it one `unlink`. proper-lockfile's directory cost a `mkdir`, a `stat` and a `rmdir` (120 µs free,
 * 4 ms a transaction with four processes contending: half their CPU); the link costs 30 µs.
 *
 * A holder that dies leaves its link: it is stale once it is older than STALE_MS (a live holder
 * refreshes its time every REFRESH_MS) and the next taker removes it. A directory at that path, how
 * eoa-mcp held the lock before, is held or stale the same way: old and new processes exclude each
 * other.
 */

export const STALE_MS = 5_000;
const REFRESH_MS = 2_000;

let instances = 0;

export class StateLock {
  readonly path: string;

  constructor(
    file: string,
    /** Each lock of its own, even two stores of one process: a release removes only its own link. */
    private readonly owner = `${PROCESS_ID}/${++instances}`,
  ) {
    this.path = `${file}.lock`;
  }

  /** Takes the lock if it is free or stale: its release, or undefined while another holds it. */
  tryTake(): (() => void) | undefined {
    if (!this.link() && !(this.removeStale() && this.link())) return undefined;
    const refresh = setInterval(() => {
      const now = new Date();
      try {
        lutimesSync(this.path, now, now);
      } catch {
        // Taken over as stale meanwhile: the release below will find it is not ours.
      }
    }, REFRESH_MS).unref();
    return () => {
      clearInterval(refresh);
      // Only our own link: one taken over as stale is its new holder's.
      if (this.holder() === this.owner) unlinkSync(this.path);
    };
  }

  /** Whether anyone holds the lock (`lstat`: the link itself, not what it names). */
  taken(): boolean {
    return lstatSync(this.path, { throwIfNoEntry: false }) !== undefined;
  }

  /** Who holds the lock (the link's target), or undefined when it is free or held by a directory. */
  holder(): string | undefined {
    try {
      return readlinkSync(this.path);
    } catch {
      return undefined;
    }
  }

  private link(): boolean {
    try {
      symlinkSync(this.owner, this.path);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw err;
    }
  }

  /**
   * Removes the lock when it is stale; whether the next try may take it (also when it has just gone).
   * Two takers may both find it stale: a second lock, held for the few microseconds of the check and
   * the removal, makes sure only one removes it, so that the other cannot remove the first one's
   * fresh link.
   */
  private removeStale(): boolean {
    const age = ageOf(this.path);
    if (age === undefined) return true;
    if (age <= STALE_MS) return false;
    const guard = `${this.path}.takeover`;
    try {
      symlinkSync(this.owner, guard);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      // A taker that died in those microseconds: its guard goes once stale too.
      if ((ageOf(guard) ?? 0) > STALE_MS) remove(guard);
      return false;
    }
    try {
      const now = ageOf(this.path);
      if (now !== undefined && now <= STALE_MS) return false;
      if (now !== undefined) remove(this.path);
      return true;
    } finally {
      unlinkSync(guard);
    }
  }
}

/** How long ago `path` (the link itself) was made or refreshed; undefined when it is not there. */
function ageOf(path: string): number | undefined {
  const stat = lstatSync(path, { throwIfNoEntry: false });
  return stat && Date.now() - stat.mtimeMs;
}

/** Removes a link (or an older eoa-mcp's lock directory) if it is there. */
function remove(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EISDIR" || code === "EPERM") rmdirSync(path);
    else if (code !== "ENOENT") throw err;
  }
}
