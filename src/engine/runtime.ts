import { AsyncLocalStorage } from "node:async_hooks";
import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Clock } from "../clock.js";
import { type Config, secretsOf } from "../config.js";
import { EoaError, isEoaError } from "../errors.js";
import type { Logger } from "../log.js";
import type { Draft } from "immer";
import type { DecisionRecord, State } from "../state/schema.js";
import type { StateStore } from "../state/store.js";
import type { AiMaestroClient } from "../clients/aimaestro.js";
import type { GitHubClient } from "../clients/github.js";
import type { GitMirror } from "../clients/git.js";
import { redactSecrets } from "../protocol/secrets.js";
import { PROCESS_ID } from "../owner.js";
import {
  reduce,
  type EffectOutcome,
  type EventOf,
  type ProtocolEvent,
  type Reduced,
} from "../protocol/machine/index.js";
import { plain } from "../state/records.js";
import { claimKey, inProgress, Replay, replayOf, type CallKey } from "./idempotency.js";
import { LateWrites, type Late } from "./late-writes.js";
import { Outbox } from "./outbox.js";

export interface RuntimeDeps {
  config: Config;
  store: StateStore;
  clock: Clock;
  logger: Logger;
  aimaestro: AiMaestroClient;
  /** Absent when no repository is configured: GitHub-backed features answer with a clear error. */
  github?: GitHubClient | undefined;
  git?: GitMirror | undefined;
}

/**
 * What every tool and engine operation is handed: config, state, clock, clients, plus the few
 * cross-cutting helpers (redaction, idempotency, snapshots).
 */
export class Runtime {
  readonly config: Config;
  readonly store: StateStore;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly aimaestro: AiMaestroClient;
  private readonly _github: GitHubClient | undefined;
  private readonly _git: GitMirror | undefined;
  private readonly secrets: string[];
  /** Listeners for resources that are not in the state file (reports). */
  readonly extraUpdates = new Set<(uri: string) => void>();
  /** The side effects this runtime makes: recorded by `step`, made after its commit. */
  readonly outbox: Outbox;

  constructor(deps: RuntimeDeps) {
    this.config = deps.config;
    this.store = deps.store;
    this.clock = deps.clock;
    this.logger = deps.logger;
    this.aimaestro = deps.aimaestro;
    this._github = deps.github;
    this._git = deps.git;
    this.secrets = secretsOf(deps.config);
    this.outbox = new Outbox(this);
    this.late = new LateWrites({
      store: this.store,
      logger: this.logger,
      now: () => this.now(),
      apply: (draft, late, now) => this.applyLate(draft, late, now),
      written: (late) => this.outbox.recorded(late.outcomes),
      outsideCalls: (fn) => this.call.exit(fn),
    });
    this.store.setOverlay((state) => this.late.overlay(state));
  }

  /**
   * One event through the protocol's state machine, in one transaction: the state changes, the
   * decisions and the side effects (recorded, claimed by this process) commit together or not at
   * all. The caller hands `effects` to the outbox. The same transaction writes what this process
   * left for later (effect outcomes, idempotency results) and claims the call's idempotency key, so
   * a tool call takes the lock once.
   */
  async step<T extends ProtocolEvent["type"]>(event: EventOf<T>): Promise<Reduced<T>> {
    const now = this.now();
    const call = this.call.getStore();
    const late = this.late.take();
    let decided: DecisionRecord[] = [];
    let out: Reduced<T>;
    if (call) call.transactions++;
    try {
      out = await this.store.transact((draft) => {
        this.applyLate(draft, late, now);
        if (call?.key && !call.committed) claimKey(draft, call.key, now);
        const reduced = reduce(draft, event, { now, config: this.config, owner: PROCESS_ID });
        // Before the commit can be seen: no retry pass of this process may claim them before the caller.
        this.outbox.reserve(reduced.effects);
        decided = plain(lastRecorded(draft.decisions, reduced.decisions));
        return reduced;
      });
    } catch (err) {
      // Committed, but not flushed to the disk: the change stands, and the call's answer with it.
      if (isEoaError(err) && err.details?.committed === true) {
        this.late.written(late);
        if (call) call.committed = true;
      } else this.late.putBack(late);
      throw err;
    }
    this.late.written(late);
    if (call) call.committed = true;
    // One line per decision at info: a night can be watched in its log (issue 13).
    for (const d of decided)
      this.logger.info(`decision ${d.action}${d.task_id ? ` ${d.task_id}` : ""}: ${d.outcome}`, {
        id: d.id,
        rule: d.rule,
        ...(d.agent ? { agent: d.agent } : {}),
      });
    return out;
  }

  /** The tool call under way: whether it has committed a step, how many transactions it took. */
  private readonly call = new AsyncLocalStorage<CallScope>();

  /** Runs one tool call, keeping track of whether it changed the state. */
  inCall<T>(fn: () => Promise<T>): Promise<T> {
    return this.call.run({ committed: false, transactions: 0 }, fn);
  }

  /** How many transactions the tool call under way has taken so far (its log line says). */
  transactionsInCall(): number {
    return this.call.getStore()?.transactions ?? 0;
  }

  /** Effect outcomes and call results this process has not written yet (see LateWrites). */
  private readonly late: LateWrites;

  /** Records effect outcomes with the next transaction. */
  settleLater(outcomes: readonly EffectOutcome[]): void {
    this.late.addOutcomes(outcomes);
  }

  /** Writes everything left for later now: when a reader needs it on the disk, or (`last`) before the process exits. */
  drainLate(last = false): Promise<void> {
    return this.late.drain(last);
  }

  private applyLate(draft: Draft<State>, late: Late, now: Date): void {
    if (late.outcomes.length)
      reduce(
        draft,
        { type: "effects-settled", outcomes: late.outcomes },
        { now, config: this.config, owner: PROCESS_ID },
      );
    for (const [id, rec] of late.idempotency) draft.idempotency[id] = rec;
  }

  get github(): GitHubClient {
    if (!this._github) {
      throw new EoaError(
        "GITHUB_NOT_CONFIGURED",
        "no GitHub repository is configured",
        "set EOA_REPO=owner/name and GITHUB_TOKEN (or github.repo / github.token in eoa.config.json), then restart the server",
      );
    }
    return this._github;
  }

  get hasGithub(): boolean {
    return this._github !== undefined;
  }

  get hasGit(): boolean {
    return this._git !== undefined;
  }

  get git(): GitMirror {
    if (!this._git) {
      throw new EoaError(
        "GIT_NOT_CONFIGURED",
        "no git remote is configured",
        "set EOA_REPO (the remote defaults to GitHub's) or EOA_GIT_REMOTE, then restart the server",
      );
    }
    return this._git;
  }

  private registration: Promise<unknown> | undefined;

  /** The orchestrator must be a registered AI Maestro agent, or its messages arrive marked unverified. */
  async orchestratorReady(): Promise<void> {
    this.registration ??= this.aimaestro.ensureRegistered(this.config.orchestrator).catch((err: unknown) => {
      this.registration = undefined;
      throw err;
    });
    await this.registration;
  }

  now(): Date {
    return this.clock.now();
  }

  /** Removes every configured secret (and anything shaped like a token) from text bound for output. */
  redact(text: string): string {
    return redactSecrets(text, this.secrets);
  }

  notifyExtra(uri: string): void {
    for (const l of this.extraUpdates) l(uri);
  }

  /** Keys of calls this process is running now: a replay meanwhile is refused, not run twice. */
  private readonly running = new Set<string>();

  /**
   * Runs `fn` once per (tool, key). A replay returns the first result; a replay while the first
   * call is still running is refused. The key is claimed in the call's first transaction (so a
   * call that never changes anything leaves no claim behind, and one that does takes no lock of its
   * own for it); the result is written with the next transaction. A call that fails before it
   * changed anything leaves no record, so it can be retried; one that fails after a commit keeps its
   * answer (`onError`), so a replay returns it and repeats nothing.
   */
  async idempotent<T extends { isError?: boolean }>(
    tool: string,
    key: string,
    args: unknown,
    fn: () => Promise<T>,
    onError: (err: unknown) => T,
  ): Promise<T> {
    const id = `${tool}:${key}`;
    const argsHash = hash(args);
    const now = this.now();
    if (this.running.has(id)) throw inProgress(tool, key);
    // Looked up without the lock (this process's own results not written yet included): the claim
    // in the first transaction decides a race.
    const prior = (await this.store.read()).idempotency[id];
    if (prior) {
      const answer = replayOf<T>(prior, tool, key, argsHash, now);
      if (answer) return answer.value;
    }
    this.running.add(id);
    const scope: CallScope = { committed: false, transactions: 0, key: { id, tool, name: key, argsHash } };
    try {
      let value: T;
      try {
        value = await this.call.run(scope, fn);
      } catch (err) {
        // Another process finished the same call between our look and our claim.
        if (err instanceof Replay) return replayOf<T>(err.record, tool, key, argsHash, now)!.value;
        if (!scope.committed) throw err;
        value = onError(err);
      }
      if (!value.isError || scope.committed) {
        const done = {
          tool,
          status: "done" as const,
          at: now.toISOString(),
          result: { args_hash: argsHash, value },
        };
        this.late.addResult(id, done);
      }
      return value;
    } finally {
      this.running.delete(id);
    }
  }

  /** A copy of the state file for the user to inspect later (e.g. when every agent went offline). */
  async snapshot(reason: string): Promise<string> {
    const state = await this.store.read();
    const dir = join(this.config.stateDir, "snapshots");
    await mkdir(dir, { recursive: true });
    const file = join(dir, `${this.now().toISOString().replace(/[:.]/g, "-")}.json`);
    await writeFile(file, JSON.stringify({ reason, taken_at: this.now().toISOString(), state }, null, 2));
    return file;
  }
}

interface CallScope {
  committed: boolean;
  transactions: number;
  /** The call's idempotency key, claimed by its first transaction. */
  key?: CallKey;
}

function hash(v: unknown): string {
  return createHash("sha256")
    .update(JSON.stringify(v ?? null))
    .digest("hex")
    .slice(0, 16);
}

/**
 * The records with these ids, read from the end of their log, where a step appends them: a walk
 * from the start costs what the night has recorded so far.
 */
function lastRecorded<T extends { id: string }>(log: readonly T[], ids: readonly string[]): T[] {
  const wanted = new Set(ids);
  const out: T[] = [];
  for (let i = log.length - 1; i >= 0 && out.length < wanted.size; i--)
    if (wanted.has(log[i]!.id)) out.push(log[i]!);
  return out.reverse();
}
