import { randomBytes } from "node:crypto";
import { hostname } from "node:os";

/**
 * Who owns a pending record or a worktree: this process, as `host:pid:nonce` (a recycled pid is not
 * this process), and whether an owner has gone.
 */

export const PROCESS_ID = `${hostname()}:${process.pid}:${randomBytes(4).toString("hex")}`;

/** Whether the process with this pid (on this host) has ended; one we may not signal is alive. */
export function pidGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ESRCH";
  }
}

/**
 * True when `owner` (a PROCESS_ID) was a process on this host that no longer runs. Another host's
 * processes cannot be asked: they count as alive.
 */
export function processGone(owner: unknown): boolean {
  if (typeof owner !== "string" || owner === PROCESS_ID) return false;
  const parts = owner.split(":"); // the host name may itself hold colons
  const pid = Number(parts[parts.length - 2]);
  if (parts.length < 3 || parts.slice(0, -2).join(":") !== hostname() || !Number.isInteger(pid)) return false;
  return pidGone(pid);
}
