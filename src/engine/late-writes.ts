import { Immer, type Draft } from "immer";
import { errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import type { EffectOutcome } from "../protocol/machine/index.js";
import type { IdempotencyRecord, State } from "../state/schema.js";
import type { ReadonlyState, StateStore } from "../state/store.js";

/**
 * What a process knows but has not written yet: outcomes of effects made (all succeeded, so nothing
 * a caller answers depends on their being written) and tool calls' results for replays. The
 * process's next transaction writes them (one tool call, one transaction), or a write of their own
 * after LATE_WRITE_MS. Meanwhile they are laid over every read of this process. A crash before
 * they are written loses nothing: a pending effect claimed by a dead process is looked for at its
 * target before it is made again, and a call claimed by a dead process may run again.
 */

export interface Late {
  outcomes: EffectOutcome[];
  idempotency: Map<string, IdempotencyRecord>;
}

export interface LateWritesDeps {
  store: StateStore;
  logger: Logger;
  now(): Date;
  /** Puts `late` into a transaction's draft. */
  apply(draft: Draft<State>, late: Late, now: Date): void;
  /** Told when `late` is on record. */
  written(late: Late): void;
  /** Runs `fn` outside any tool call's context: a write of their own belongs to no call. */
  outsideCalls<T>(fn: () => T): T;
}

/**
 * How long they wait for the process's next transaction before a write of their own: calls that
 * come faster than this carry the previous call's outcomes in their own transaction.
 */
const LATE_WRITE_MS = 200;

/** Never freezes: the view shares the store's own objects, which its transactions update in place. */
const overlayImmer = new Immer({ autoFreeze: false });

export class LateWrites {
  private queued: Late = empty();
  /** Taken by a transaction not yet committed: still laid over reads meanwhile. */
  private readonly writing = new Set<Late>();
  private timer: NodeJS.Timeout | undefined;
  private ownWrite: Promise<void> | undefined;
  /** Writes of their own that failed in a row (a full disk): the next one waits longer. */
  private failures = 0;
  private view: { of: ReadonlyState; parts: Late[]; size: number; state: ReadonlyState } | undefined;

  constructor(private readonly deps: LateWritesDeps) {}

  addOutcomes(outcomes: readonly EffectOutcome[]): void {
    this.queued.outcomes.push(...outcomes);
    this.schedule();
  }

  addResult(id: string, record: IdempotencyRecord): void {
    this.queued.idempotency.set(id, record);
    this.schedule();
  }

  /** Everything queued, for the caller's transaction: `written` or `putBack` when it is over. */
  take(): Late {
    const late = this.queued;
    this.queued = empty();
    if (size(late)) this.writing.add(late);
    return late;
  }

  putBack(late: Late): void {
    this.writing.delete(late);
    this.queued.outcomes.unshift(...late.outcomes);
    for (const [id, rec] of late.idempotency)
      if (!this.queued.idempotency.has(id)) this.queued.idempotency.set(id, rec);
    if (size(late)) this.schedule();
  }

  written(late: Late): void {
    this.writing.delete(late);
    this.deps.written(late);
  }

  /**
   * Writes everything now: when a reader needs it on the disk, or (`last`) before the process
   * exits, after which nothing schedules a write of its own: an operation still finishing then is
   * as a crash would leave it, checked by the next process before anything is made again.
   */
  async drain(last = false): Promise<void> {
    if (last) this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.ownWrite;
    await this.writeNow();
  }

  /** The state with what is not written yet laid over it (computed once per state and queue). */
  overlay(state: ReadonlyState): ReadonlyState {
    const parts = [...this.writing, this.queued];
    const n = parts.reduce((k, l) => k + size(l), 0);
    if (!n) return state;
    const v = this.view;
    if (v && v.of === state && v.size === n && v.parts.every((l, i) => l === parts[i])) return v.state;
    // An outcome the files already hold (committed, not yet taken off the queue) is not applied twice.
    const done = new Set(state.outbox.filter((e) => e.status === "done").map((e) => e.id));
    const late: Late = {
      outcomes: parts.flatMap((l) => l.outcomes).filter((o) => !done.has(o.id)),
      idempotency: new Map(parts.flatMap((l) => [...l.idempotency])),
    };
    const view = overlayImmer.produce(state as State, (draft) =>
      this.deps.apply(draft, late, this.deps.now()),
    );
    this.view = { of: state, parts, size: n, state: view };
    return view;
  }

  private stopped = false;

  private schedule(): void {
    if (this.stopped || this.timer || this.ownWrite) return;
    const delay = this.failures ? Math.min(30_000, 250 * 2 ** this.failures) : LATE_WRITE_MS;
    this.timer = this.deps.outsideCalls(() =>
      setTimeout(() => {
        this.timer = undefined;
        this.ownWrite = this.writeNow().finally(() => {
          this.ownWrite = undefined;
          if (size(this.queued)) this.schedule();
        });
      }, delay).unref(),
    );
  }

  private async writeNow(): Promise<void> {
    const late = this.take();
    if (!size(late)) return;
    try {
      await this.deps.store.transact((draft) => this.deps.apply(draft, late, this.deps.now()));
      this.written(late);
      this.failures = 0;
    } catch (err) {
      this.failures++;
      this.putBack(late);
      this.deps.logger.error("effect outcomes and call results not written yet (retried)", {
        error: errorMessage(err),
      });
    }
  }
}

function empty(): Late {
  return { outcomes: [], idempotency: new Map() };
}

function size(late: Late): number {
  return late.outcomes.length + late.idempotency.size;
}
