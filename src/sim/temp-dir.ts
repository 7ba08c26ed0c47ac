import { rmSync } from "node:fs";

/**
 * A rehearsal's temporary directory must not outlive an interrupted or crashed run: Ctrl-C
 * (SIGINT), SIGTERM and an uncaught error end the process without running `finally` blocks.
 * While watched, a signal runs `beforeRemove` (e.g. stopping a child server that writes there),
 * removes `dir` and exits with `signalExitCode`; a crash removes it at once and exits 1. Returns
 * the function that stops watching, for the normal path, which cleans up by itself.
 */
export function removeOnExit(
  dir: string,
  opts: { signalExitCode: number; beforeRemove?: () => Promise<void>; say?: (line: string) => void },
): () => void {
  const say = opts.say ?? ((line: string) => process.stderr.write(`${line}\n`));
  let leaving = false;
  const remove = () => {
    // Retried: a git child process may still be writing in it.
    rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (leaving) return;
    leaving = true;
    void (opts.beforeRemove?.() ?? Promise.resolve())
      .catch(() => undefined)
      .finally(() => {
        remove();
        say(`${signal}: stopped, ${dir} removed`);
        process.exit(opts.signalExitCode);
      });
  };
  const onCrash = (err: unknown) => {
    say(`crashed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    try {
      remove();
      say(`${dir} removed`);
    } finally {
      process.exit(1);
    }
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.on("uncaughtException", onCrash);
  process.on("unhandledRejection", onCrash);
  return () => {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    process.off("uncaughtException", onCrash);
    process.off("unhandledRejection", onCrash);
  };
}
