import { mkdir } from "node:fs/promises";
import { AiMaestroClient } from "./clients/aimaestro.js";
import { GitHubClient } from "./clients/github.js";
import { GitMirror } from "./clients/git.js";
import { systemClock, type Clock } from "./clock.js";
import { gitRemoteOf, secretsOf, type Config } from "./config.js";
import { Runtime } from "./engine/runtime.js";
import { createLogger, type Logger, type LogSink } from "./log.js";
import { redactSecrets } from "./protocol/secrets.js";
import { syncRoster } from "./engine/roster.js";
import { reconcileMerges } from "./engine/reconcile.js";
import { StateStore } from "./state/store.js";

export interface BuildOptions {
  clock?: Clock;
  logSinks?: Set<LogSink>;
  /** Log lines also go to stderr (default true; tests and rehearsals keep them in the sinks). */
  logStderr?: boolean;
  /** Faster retries for tests and the simulation's loopback stand-ins. */
  fast?: boolean;
  /**
   * Leave the roster sync, the first read of the state, to `prepareRuntime`: a stdio server calls
   * it once `initialize` is answered, so a large state never delays the answer.
   */
  deferPrepare?: boolean;
  /** See StoreOptions.afterLargeLoad: the CLI collects garbage there. */
  afterLargeLoad?: () => void;
}

/**
 * The logger and the network clients of a config, with nothing on disk: what `eoa-mcp preflight`
 * needs, which must not create a state directory.
 */
export function buildClients(
  config: Config,
  opts: BuildOptions = {},
): { logger: Logger; aimaestro: AiMaestroClient; github: GitHubClient | undefined } {
  const secrets = secretsOf(config);
  // No configured token reaches a log line or an MCP log notification.
  const logger = createLogger("eoa", {
    redact: (t) => redactSecrets(t, secrets),
    ...(opts.logSinks ? { sinks: opts.logSinks } : {}),
    ...(opts.logStderr === false ? { stderr: false } : {}),
  });
  const aimaestro = new AiMaestroClient({
    url: config.aimaestro.url,
    ...(config.aimaestro.token ? { token: config.aimaestro.token } : {}),
    timeoutMs: config.aimaestro.timeout_ms,
    logger: logger.child("aimaestro"),
    redact: (t) => redactSecrets(t, secrets),
    ...(opts.fast ? { retries: 2, retryBaseMs: 20 } : {}),
  });
  const github = config.github.repo
    ? new GitHubClient({
        repo: config.github.repo,
        token: config.github.token,
        apiUrl: config.github.apiUrl,
        logger: logger.child("github"),
        redact: (t) => redactSecrets(t, secrets),
        ...(opts.fast ? { retries: 1, retryBaseMs: 10, throttle: false } : {}),
        clock: opts.clock ?? systemClock,
      })
    : undefined;
  return { logger, aimaestro, github };
}

/**
 * Wires the real parts from a validated config: state store, AI Maestro, GitHub, git mirror.
 * At start: the roster is synced into state, orphaned worktrees removed, and side effects a crash
 * left pending are reconciled.
 */
export async function buildRuntime(config: Config, opts: BuildOptions = {}): Promise<Runtime> {
  const { logger, aimaestro, github } = buildClients(config, opts);
  const store = await StateStore.open(config.stateDir, { afterLargeLoad: opts.afterLargeLoad });
  const remote = gitRemoteOf(config);
  let git: GitMirror | undefined;
  if (remote) {
    await mkdir(config.stateDir, { recursive: true });
    git = new GitMirror({
      remote,
      // Only github.com is sent the GitHub token: a remote elsewhere has credentials of its own.
      ...(/^https:\/\/github\.com\//.test(remote) ? { token: config.github.token } : {}),
      stateDir: config.stateDir,
      logger: logger.child("git"),
      spareWorktree: config.review.spare_worktree,
    });
  }
  const rt = new Runtime({ config, store, clock: opts.clock ?? systemClock, logger, aimaestro, github, git });
  if (!opts.deferPrepare) await prepareRuntime(rt);
  return rt;
}

/** Brings the state up to the configuration (the roster): before the first tool call. */
export async function prepareRuntime(rt: Runtime): Promise<void> {
  await syncRoster(rt);
}

/**
 * Start-up work that may touch the network or spawn git: orphaned worktrees are removed and side
 * effects a crash left pending are reconciled. Servers run it after they answer `initialize`, so a
 * hub that is down never delays a client's connection.
 */
export async function recover(rt: Runtime): Promise<void> {
  const git = rt.hasGit ? rt.git : undefined;
  if (git) {
    await git
      .cleanOrphans()
      .catch((err: Error) => rt.logger.warn("worktree clean-up failed", { error: err.message }));
  }
  await rt.outbox
    .flush()
    .catch((err: Error) => rt.logger.warn("outbox reconcile failed", { error: err.message }));
  // A merge decided before a crash completes its task now, not when someone reviews the PR again.
  await reconcileMerges(rt).catch((err: Error) =>
    rt.logger.warn("merge reconciliation failed", { error: err.message }),
  );
}

export async function closeRuntime(rt: Runtime): Promise<void> {
  // What was made must be on record before the process goes.
  await rt.drainLate(true).catch(() => undefined);
  await rt.aimaestro.close().catch(() => undefined);
  if (rt.hasGit) await rt.git.close().catch(() => undefined);
}
