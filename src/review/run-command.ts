import { spawn } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";

/**
 * Runs one of the operator's configured review commands (`review.commands.test`, e.g. `npm test`)
 * in a PR worktree. The command is operator config, not PR data, so it goes through `/bin/sh -c`.
 * It runs in its own process group (`detached`), so a timeout or an abort kills everything it
 * started, and whatever it leaves running after it exits is stopped too: the worktree is about to
 * be deleted. The environment is rebuilt from scratch so that no token reaches code from a PR.
 */

export interface RunCommandOptions {
  cwd: string;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Extra variables; any whose name looks like a credential is dropped anyway. */
  env?: Record<string, string>;
  onOutput?: (chunk: string) => void;
  /** Between SIGTERM and SIGKILL. Default 3 s. */
  killGraceMs?: number;
}

export interface CommandResult {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  aborted: boolean;
  durationMs: number;
  /** The last ~4 KB of stdout and stderr, interleaved as they arrived. */
  outputTail: string;
}

const TAIL_CHARS = 4096;
const DEFAULT_KILL_GRACE_MS = 3_000;
/** How long to wait for the pipes to close once the shell exited (a detached grandchild may hold them). */
const DRAIN_MS = 200;
const CREDENTIAL_NAME = /TOKEN|SECRET|PASSWORD|KEY/i;

/** PATH, HOME, LANG, TMPDIR from this process, CI=true, then `extra`; credential-like names never pass. */
export function scrubbedEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of ["PATH", "HOME", "LANG", "TMPDIR"]) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  env.CI = "true";
  for (const [name, value] of Object.entries(extra)) env[name] = value;
  for (const name of Object.keys(env)) if (CREDENTIAL_NAME.test(name)) delete env[name];
  return env;
}

export function runCommand(command: string, opts: RunCommandOptions): Promise<CommandResult> {
  const started = Date.now();
  const grace = opts.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
  if (opts.signal?.aborted) {
    return Promise.resolve({
      exitCode: null,
      signal: null,
      timedOut: false,
      aborted: true,
      durationMs: 0,
      outputTail: "",
    });
  }
  let tail = "";
  const append = (chunk: string) => {
    tail += chunk;
    if (tail.length > 2 * TAIL_CHARS) tail = tail.slice(-TAIL_CHARS);
    try {
      opts.onOutput?.(chunk);
    } catch {
      // A failing progress callback must not break the review.
    }
  };

  return new Promise<CommandResult>((resolveResult) => {
    const child = spawn("/bin/sh", ["-c", command], {
      cwd: opts.cwd,
      env: scrubbedEnv(opts.env),
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let timedOut = false;
    let aborted = false;
    let stopping: Promise<void> | undefined;
    const stopGroup = () => (stopping ??= child.pid ? killGroup(child.pid, grace) : Promise.resolve());

    const timer = setTimeout(() => {
      timedOut = true;
      void stopGroup();
    }, opts.timeoutMs);
    const onAbort = () => {
      if (timedOut) return;
      aborted = true;
      void stopGroup();
    };
    opts.signal?.addEventListener("abort", onAbort, { once: true });

    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", append);
    child.stderr.on("data", append);
    const closed = new Promise<void>((r) => child.once("close", () => r()));

    let finished = false;
    const finish = async (exitCode: number | null, signal: string | null) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      // Leftover background processes of the command are stopped as well.
      await stopGroup();
      await Promise.race([closed, delay(DRAIN_MS)]);
      child.stdout.destroy();
      child.stderr.destroy();
      resolveResult({
        exitCode,
        signal,
        timedOut,
        aborted,
        durationMs: Date.now() - started,
        outputTail: tail.slice(-TAIL_CHARS),
      });
    };
    child.once("exit", (code, signal) => void finish(code, signal));
    child.once("error", (err) => {
      append(`\n[could not start /bin/sh: ${err.message}]\n`);
      void finish(null, null);
    });
  });
}

/** SIGTERM to the whole group, SIGKILL to whatever is still alive after `graceMs`. */
async function killGroup(pgid: number, graceMs: number): Promise<void> {
  if (!signalGroup(pgid, "SIGTERM")) return;
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!(await groupAlive(pgid))) return;
    await delay(50);
  }
  signalGroup(pgid, "SIGKILL");
}

function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false; // ESRCH: the group is empty
  }
}

/**
 * `kill(-pgid, 0)` also succeeds for zombies, which a container's init may reap late; on Linux,
 * /proc tells whether any member is still running.
 */
async function groupAlive(pgid: number): Promise<boolean> {
  if (!signalGroup(pgid, 0)) return false;
  let pids: string[];
  try {
    pids = (await readdir("/proc")).filter((n) => /^\d+$/.test(n));
  } catch {
    return true;
  }
  for (const pid of pids) {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    // "<pid> (<comm>) <state> <ppid> <pgrp> ..."; comm may contain spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(fields[2]) === pgid && fields[0] !== "Z" && fields[0] !== "X") return true;
  }
  return false;
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
