import { errorMessage } from "../errors.js";
import { PROCESS_ID, processGone } from "../owner.js";
import { cycleDue } from "../protocol/machine/cycle.js";
import { reviewKey } from "../protocol/machine/review.js";
import type { State } from "../state/schema.js";
import { byTaskId, tasksUnder } from "../state/task-index.js";
import { archiveHistories } from "./history.js";
import { checkMessages, type CycleResult } from "./monitor.js";
import { reviewPr } from "./review.js";
import type { Runtime } from "./runtime.js";

/**
 * The night on the server's own clock (docs/PROTOCOL.md, rule 4): while a session runs, one poll
 * cycle every `poll_interval_seconds` whether or not a client calls a tool: the inbox read and
 * applied, heartbeats and ack deadlines judged, queued work dispatched, undelivered effects sent
 * again, merges reconciled, and PRs waiting for CI polled. Of the processes sharing a state
 * directory exactly one runs these cycles, under a lease kept in the state; a holder that dies is
 * replaced within two intervals.
 */

export interface NightOptions {
  /** How often (real time) to look whether a cycle is due on the runtime's clock. */
  tickMs?: number;
  /** Told after each cycle this process ran (the channels and waiting check_messages listen). */
  onCycle?: (cycle: NightCycle) => void;
}

export interface NightCycle {
  cycle: CycleResult;
  /** PRs whose CI was polled in this cycle, with the review's decision. */
  ci: Array<{ pr_number: number; task_id: string; decision: string }>;
}

/**
 * A lease outlives its last renewal by two intervals: a live holder renews it with every cycle (due
 * an interval after the last one recorded, which a slow cycle records late), and a dead one is
 * replaced within two intervals (at once on the same host, where its pid is seen gone).
 */
const LEASE_INTERVALS = 2;

export class Night {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<NightCycle | null> | undefined;
  private stopped = false;

  constructor(
    private readonly rt: Runtime,
    private readonly opts: NightOptions = {},
  ) {}

  start(): this {
    if (this.timer || this.stopped) return this;
    this.timer = setInterval(() => void this.tick(), this.opts.tickMs ?? 1000);
    // The night never keeps a process alive on its own: the transport does.
    this.timer.unref();
    return this;
  }

  /** Stops the timer, lets a cycle under way finish, and gives the lease up for another process. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
    await this.rt.store
      .transact((draft) => {
        if (draft.night_lease?.holder === PROCESS_ID) delete draft.night_lease;
      })
      .catch(() => undefined);
  }

  /** One look: runs a cycle if one is due and this process holds (or may take) the lease. */
  tick(): Promise<NightCycle | null> {
    if (this.stopped) return Promise.resolve(null);
    this.running ??= this.cycleIfDue()
      .catch((err: unknown) => {
        this.rt.logger.warn("poll cycle failed; the next tick tries again", { error: errorMessage(err) });
        return null;
      })
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  private async cycleIfDue(): Promise<NightCycle | null> {
    const rt = this.rt;
    const state = await rt.store.read();
    if (!nightRunning(state)) return null;
    const now = rt.now();
    const interval = rt.config.limits.poll_interval_seconds * 1000;
    if (!cycleDue(state.cycle, now, rt.config)) {
      // Not due (a cycle recorded late, or by a call): the holder keeps its lease alive all the same.
      const lease = state.night_lease;
      if (lease?.holder === PROCESS_ID && new Date(lease.expires_at).getTime() - now.getTime() <= interval)
        await this.claimLease(now, interval);
      return null;
    }
    if (!(await this.claimLease(now, interval))) return null;

    const cycle = await checkMessages(rt, {});
    for (const w of cycle.warnings) rt.logger.warn("poll cycle", { warning: w });
    await archiveHistories(rt).catch((err: unknown) =>
      rt.logger.warn("task history not archived this cycle", { error: errorMessage(err) }),
    );
    const ci = await this.pollCi();
    const done = { cycle, ci };
    this.opts.onCycle?.(done);
    return done;
  }

  /** The lease in the state (one transaction, so two processes can never both hold it). */
  private async claimLease(now: Date, interval: number): Promise<boolean> {
    const taken = await this.rt.store.transact((draft) => {
      const lease = draft.night_lease ? { ...draft.night_lease } : undefined;
      const held =
        lease &&
        lease.holder !== PROCESS_ID &&
        new Date(lease.expires_at).getTime() > now.getTime() &&
        !processGone(lease.holder);
      if (held) return null;
      draft.night_lease = {
        holder: PROCESS_ID,
        expires_at: new Date(now.getTime() + LEASE_INTERVALS * interval).toISOString(),
      };
      return { from: lease };
    });
    if (taken && taken.from?.holder !== PROCESS_ID)
      this.rt.logger.info("this process now runs the night's poll cycles", {
        previous: taken.from ?? null,
        at: now.toISOString(),
      });
    return taken !== null;
  }

  /**
   * Gate 2's waiting part without the model: a PR whose last review found CI (or GitHub's
   * mergeability) pending is reviewed again, mechanically (no assessment: Gate 1 stays the model's).
   */
  private async pollCi(): Promise<NightCycle["ci"]> {
    const rt = this.rt;
    if (!rt.hasGithub) return [];
    const out: NightCycle["ci"] = [];
    for (const w of waitingForCi(await rt.store.read())) {
      try {
        const r = await reviewPr(
          rt,
          { pr_number: w.pr_number, task_id: w.task_id },
          { progress: () => Promise.resolve(), signal: new AbortController().signal },
        );
        out.push({ pr_number: w.pr_number, task_id: w.task_id, decision: r.decision });
      } catch (err) {
        // Another process reviewing it, GitHub down: the next cycle looks again.
        rt.logger.info("CI poll skipped", { pr: w.pr_number, error: errorMessage(err) });
      }
    }
    return out;
  }
}

/** A session is running (or halted, waiting for the user): its cycles go on. */
export function nightRunning(state: Readonly<State>): boolean {
  const id = state.current_session_id;
  const status = state.sessions.find((s) => s.id === id)?.status;
  return status === "running" || status === "halted";
}

/** Tasks in ai-review whose PR's last review waits on CI (pending, or re-run) or mergeability. */
export function waitingForCi(state: Readonly<State>): Array<{ task_id: string; pr_number: number }> {
  const out: Array<{ task_id: string; pr_number: number }> = [];
  for (const t of tasksUnder(state.tasks, ["ai-review"]).sort(byTaskId)) {
    if (t.pr_number === undefined || !t.review_head) continue;
    const last = state.reviews[reviewKey({ number: t.pr_number, head_sha: t.review_head })];
    if (
      last?.decision === "ci_pending" ||
      last?.decision === "mergeability_pending" ||
      last?.decision === "ci_rerun"
    )
      out.push({ task_id: t.task_id, pr_number: t.pr_number });
  }
  return out;
}

/** Starts the night for a server process (stdio, HTTP or the daemon). */
export function startNight(rt: Runtime, opts: NightOptions = {}): Night {
  return new Night(rt, opts).start();
}
