import { AsyncLocalStorage } from "node:async_hooks";
import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Clock } from "../clock.js";
import { type Config, secretsOf } from "../config.js";
import { EoaError, errorMessage, isEoaError } from "../errors.js";
import type { Logger } from "../log.js";
import { Immer, type Draft } from "immer";
import type { DecisionRecord, IdempotencyRecord, State } from "../state/schema.js";
import type { ReadonlyState, StateStore } from "../state/store.js";
import type { AiMaestroClient } from "../clients/aimaestro.js";
import type { GitHubClient } from "../clients/github.js";
import type { GitMirror } from "../clients/git.js";
import { redactSecrets } from "../protocol/secrets.js";
import { PROCESS_ID, processGone } from "../owner.js";
import {
  reduce,
  type EffectOutcome,
  type EventOf,
  type ProtocolEvent,
  type Reduced,
} from "../protocol/machine/index.js";
import { plain } from "../state/records.js";
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

/** How long a pending idempotency record blocks a replay before it counts as abandoned (a crash). */
const IDEMPOTENCY_PENDING_MS = 10 * 60_000;

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
    this.store.setOverlay((state) => this.withLate(state));
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
    const late = this.takeLate();
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
        const ids = new Set(reduced.decisions);
        decided = ids.size ? plain(draft.decisions.filter((d) => ids.has(d.id))) : [];
        return reduced;
      });
    } catch (err) {
      // Committed, but not flushed to the disk: the change stands, and the call's answer with it.
      if (isEoaError(err) && err.details?.committed === true) {
        this.lateWritten(late);
        if (call) call.committed = true;
      } else this.putBack(late);
      throw err;
    }
    this.lateWritten(late);
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

  /**
   * What this process knows but has not written yet: outcomes of effects made (all succeeded, so
   * nothing the caller answers depends on their being written) and idempotency results. Its next
   * transaction writes them, or one group write right after the call, for many calls at once. A
   * crash before that loses nothing: a pending effect claimed by a dead process is checked against
   * its target before it is made again.
   */
  private late: Late = { outcomes: [], idempotency: new Map() };
  private lateTimer: NodeJS.Timeout | undefined;
  private lateWrite: Promise<void> | undefined;

  /** Records effect outcomes with the next transaction (see `late`). */
  settleLater(outcomes: readonly EffectOutcome[]): void {
    this.late.outcomes.push(...outcomes);
    this.scheduleLate();
  }

  /** Writes everything left for later now: before the process exits, or when a caller must read it. */
  async drainLate(): Promise<void> {
    clearTimeout(this.lateTimer);
    this.lateTimer = undefined;
    await this.lateWrite;
    await this.writeLate();
  }

  /** Group writes that failed in a row (a full disk): the next one waits longer. */
  private lateFailures = 0;

  private scheduleLate(): void {
    if (this.lateTimer || this.lateWrite) return;
    const delay = this.lateFailures ? Math.min(30_000, 250 * 2 ** this.lateFailures) : LATE_WRITE_MS;
    // Outside the call's context: the group write belongs to no call.
    this.lateTimer = this.call.exit(() =>
      setTimeout(() => {
        this.lateTimer = undefined;
        this.lateWrite = this.writeLate().finally(() => {
          this.lateWrite = undefined;
          if (lateSize(this.late)) this.scheduleLate();
        });
      }, delay).unref(),
    );
  }

  private async writeLate(): Promise<void> {
    const late = this.takeLate();
    if (!lateSize(late)) return;
    try {
      await this.store.transact((draft) => this.applyLate(draft, late, this.now()));
      this.lateWritten(late);
      this.lateFailures = 0;
    } catch (err) {
      this.lateFailures++;
      this.putBack(late);
      this.logger.error("effect outcomes and call results not written yet (retried)", {
        error: errorMessage(err),
      });
    }
  }

  /** Taken out of the queue by a transaction not yet committed: still laid over reads meanwhile. */
  private writing = new Set<Late>();

  private takeLate(): Late {
    const late = this.late;
    this.late = { outcomes: [], idempotency: new Map() };
    if (lateSize(late)) this.writing.add(late);
    return late;
  }

  private putBack(late: Late): void {
    this.writing.delete(late);
    this.late.outcomes.unshift(...late.outcomes);
    for (const [id, rec] of late.idempotency)
      if (!this.late.idempotency.has(id)) this.late.idempotency.set(id, rec);
    if (lateSize(late)) this.scheduleLate();
  }

  /** The state with what is left for later laid over it (computed once per state and queue). */
  private withLate(state: ReadonlyState): ReadonlyState {
    const all = [...this.writing, this.late];
    const size = all.reduce((n, l) => n + lateSize(l), 0);
    if (!size) return state;
    const v = this.lateView;
    if (v && v.of === state && v.size === size && v.parts.every((l, i) => l === all[i])) return v.state;
    // An outcome the files already hold (committed, not yet taken off the queue) is not applied twice.
    const done = new Set(state.outbox.filter((e) => e.status === "done").map((e) => e.id));
    const late: Late = {
      outcomes: all.flatMap((l) => l.outcomes).filter((o) => !done.has(o.id)),
      idempotency: new Map(all.flatMap((l) => [...l.idempotency])),
    };
    const view = overlayImmer.produce(state as State, (draft) => this.applyLate(draft, late, this.now()));
    this.lateView = { of: state, parts: all, size, state: view };
    return view;
  }
  private lateView: { of: ReadonlyState; parts: Late[]; size: number; state: ReadonlyState } | undefined;

  private applyLate(draft: Draft<State>, late: Late, now: Date): void {
    if (late.outcomes.length)
      reduce(
        draft,
        { type: "effects-settled", outcomes: late.outcomes },
        { now, config: this.config, owner: PROCESS_ID },
      );
    for (const [id, rec] of late.idempotency) draft.idempotency[id] = rec;
  }

  private lateWritten(late: Late): void {
    this.writing.delete(late);
    if (late.outcomes.length) this.outbox.recorded(late.outcomes);
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
        this.late.idempotency.set(id, done);
        this.scheduleLate();
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
  key?: { id: string; tool: string; name: string; argsHash: string };
}

interface Late {
  outcomes: EffectOutcome[];
  idempotency: Map<string, IdempotencyRecord>;
}

/** The first call's result found under the lock: the replay answers with it. */
class Replay extends Error {
  constructor(readonly record: IdempotencyRecord) {
    super("replayed");
  }
}

/** Claims the call's key in its first transaction, or finds that another process has it. */
function claimKey(draft: Draft<State>, key: NonNullable<CallScope["key"]>, now: Date): void {
  const rec = draft.idempotency[key.id];
  // A plain copy: the draft is revoked when the transaction ends.
  if (rec && replayOf(rec, key.tool, key.name, key.argsHash, now)) throw new Replay(plain(rec));
  draft.idempotency[key.id] = {
    tool: key.tool,
    status: "pending",
    at: now.toISOString(),
    // The owner lets a replay after a crash run again at once instead of waiting out the window.
    result: { args_hash: key.argsHash, owner: PROCESS_ID },
  };
}

/**
 * What a recorded call means for a replay: its answer (done), a refusal (still running, or the key
 * used for other arguments), or nothing (abandoned by a crash: run again).
 */
function replayOf<T>(
  rec: IdempotencyRecord,
  tool: string,
  key: string,
  argsHash: string,
  now: Date,
): { value: T } | undefined {
  if (rec.status === "done") {
    const stored = rec.result as { args_hash: string; value: T };
    if (stored.args_hash !== argsHash) {
      throw new EoaError(
        "IDEMPOTENCY_KEY_REUSED",
        `idempotency_key ${JSON.stringify(key)} was already used for a different ${tool} call`,
        "use a fresh idempotency_key for a different call",
      );
    }
    return { value: stored.value };
  }
  const owner = (rec.result as { owner?: unknown } | undefined)?.owner;
  if (now.getTime() - new Date(rec.at).getTime() < IDEMPOTENCY_PENDING_MS && !processGone(owner))
    throw inProgress(tool, key);
  return undefined;
}

function inProgress(tool: string, key: string): EoaError {
  return new EoaError(
    "IDEMPOTENCY_IN_PROGRESS",
    `a ${tool} call with idempotency_key ${JSON.stringify(key)} is still running`,
    "wait for the first call to finish, then replay to read its result",
  );
}

/**
 * How long outcomes wait for the process's next transaction before a write of their own: calls
 * that come faster than this carry the previous call's outcomes in their own transaction.
 */
const LATE_WRITE_MS = 200;

/** Never freezes: the view shares the store's own objects, which its transactions update in place. */
const overlayImmer = new Immer({ autoFreeze: false });

function lateSize(late: Late): number {
  return late.outcomes.length + late.idempotency.size;
}

function hash(v: unknown): string {
  return createHash("sha256")
    .update(JSON.stringify(v ?? null))
    .digest("hex")
    .slice(0, 16);
}
