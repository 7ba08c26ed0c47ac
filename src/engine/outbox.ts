import { errorMessage, isEoaError } from "../errors.js";
import { PROCESS_ID, processGone } from "../owner.js";
import { retryable, supersede, type EffectOutcome } from "../protocol/machine/index.js";
import { oneLine } from "../protocol/text.js";
import { plain } from "../state/records.js";
import type { EffectRecord, State } from "../state/schema.js";
import { perform } from "./perform.js";
import type { Runtime } from "./runtime.js";

/**
 * The outbox (docs/PROTOCOL.md, Durability). A transaction records an effect as `pending` together with the state change
 * that calls for it; the effect is made after the commit and its outcome handed back to the state
 * machine (`effects-settled`), which marks it `done` or `failed` (retried on a later cycle). At
 * start-up, effects left pending by a crash are reconciled: a message that already reached its
 * recipient is marked done rather than sent twice.
 *
 * One per runtime: what this process is making right now lives here, not in module state.
 */

/**
 * GitHub's answers that retrying cannot change: 422 (e.g. a review or comment on a closed or
 * merged PR) and 404. A message to AI Maestro is never final (the hub may come back), nor a label
 * sync (level-triggered: the next one computes the labels afresh).
 */
const FINAL_CODES = new Set(["GITHUB_VALIDATION", "GITHUB_NOT_FOUND"]);

/** A claim older than this is abandoned even if its process looks alive (a hung process). */
const CLAIM_STALE_MS = 2 * 60_000;

export class Outbox {
  /** Effects this process is making right now (its own claims that are not in flight are its to make). */
  private readonly inFlight = new Set<string>();
  /** Made as asked, their outcomes waiting for this process's next transaction: never made again meanwhile. */
  private readonly madeUnwritten = new Set<string>();
  /** Effects made whose outcome could not be recorded (the state write failed): they may have happened. */
  private readonly unrecorded = new Set<string>();
  /**
   * Sends that timed out may still land at the hub a moment later: they are looked for (and resent
   * if absent) only after this time (the runtime's clock), so that a late arrival is found rather
   * than doubled.
   */
  private readonly settleUntil = new Map<string, number>();

  /**
   * Effects a call of this process has just committed and is about to make itself (wall time of
   * the commit): a retry pass running meanwhile leaves them to it, unless the call never came for
   * them (it failed between its commit and its flush).
   */
  private readonly reserved = new Map<string, number>();

  constructor(private readonly rt: Runtime) {}

  private nowMs(): number {
    return this.rt.now().getTime();
  }

  /** Called in the same tick as the commit that recorded `ids`. */
  reserve(ids: readonly string[]): void {
    const at = this.nowMs();
    for (const id of ids) this.reserved.set(id, at);
  }

  /**
   * Makes effects and records their outcomes in one transaction. With `ids`: the effects this
   * process just recorded (already claimed by it). Without: every retryable effect nobody else is
   * making (claimed first, in one transaction, so two processes never make the same one), each
   * checked against what may already have happened before it is made again.
   * Never throws for a failed effect.
   */
  async flush(ids?: readonly string[]): Promise<EffectOutcome[]> {
    const { rt } = this;
    const uncertain = new Set<string>();
    const due = ids ? await this.own(ids) : await this.claimRetryable(uncertain);
    if (!due.length) return [];
    const outcomes: EffectOutcome[] = [];
    try {
      for (const eff of due) outcomes.push(await this.make(eff, uncertain.has(eff.id)));
      // All made as asked: nothing the caller answers depends on the outcomes being written, so the
      // next transaction writes them (they stay this process's, in flight, until then).
      if (outcomes.every((o) => o.ok && !o.uncertain)) {
        for (const o of outcomes) this.madeUnwritten.add(o.id);
        rt.settleLater(outcomes);
        return outcomes;
      }
      try {
        await rt.step({ type: "effects-settled", outcomes });
        const now = this.nowMs();
        for (const o of outcomes) {
          this.unrecorded.delete(o.id);
          if (o.uncertain) this.settleUntil.set(o.id, now + 2 * rt.config.aimaestro.timeout_ms);
          else this.settleUntil.delete(o.id);
        }
      } catch (err) {
        // Made but not recorded: the next flush checks before making any of them again.
        for (const o of outcomes) this.unrecorded.add(o.id);
        rt.logger.error("side effect outcomes not recorded", {
          error: errorMessage(err),
          effects: outcomes.map((o) => o.id),
        });
        for (const o of outcomes) o.unrecorded = true;
      }
    } finally {
      for (const e of due) this.inFlight.delete(e.id);
    }
    return outcomes;
  }

  /** Outcomes written by a later transaction (see `Runtime.settleLater`): no longer this process's to hold. */
  recorded(outcomes: readonly EffectOutcome[]): void {
    for (const o of outcomes) {
      this.madeUnwritten.delete(o.id);
      this.unrecorded.delete(o.id);
      this.settleUntil.delete(o.id);
    }
  }

  /** Whether a flush of this process is still making the effect. */
  busy(id: string): boolean {
    return this.inFlight.has(id);
  }

  private async own(ids: readonly string[]): Promise<EffectRecord[]> {
    for (const id of ids) this.reserved.delete(id);
    const state = await this.rt.store.read();
    const due = state.outbox.filter(
      (e) =>
        ids.includes(e.id) && e.status !== "done" && e.claimed_by === PROCESS_ID && !this.inFlight.has(e.id),
    );
    // Claimed in the same tick as the check: a concurrent flush in this process cannot take them too.
    for (const e of due) this.inFlight.add(e.id);
    return due.map((e) => structuredClone(e) as EffectRecord);
  }

  private async claimRetryable(uncertain: Set<string>): Promise<EffectRecord[]> {
    const { rt } = this;
    const now = rt.now();
    // Most cycles have nothing to retry: look before taking the lock.
    const state = await rt.store.read();
    if (!state.outbox.some((e) => retryable(state, e) && this.claimable(e, now))) return [];
    const added: string[] = [];
    try {
      return await rt.store.transact((draft) => {
        const claimed: EffectRecord[] = [];
        const seenLabels = new Set<string>();
        for (const e of draft.outbox) {
          if (!retryable(draft as State, e as EffectRecord) || !this.claimable(e as EffectRecord, now))
            continue;
          // Labels are level-triggered: one sync per task brings them up to date.
          if (e.kind === "labels") {
            if (seenLabels.has(e.payload.task_id)) {
              supersede(e, now);
              continue;
            }
            seenLabels.add(e.payload.task_id);
          }
          // Tried before, claimed by a process that died, or made without its outcome recorded: it may
          // have happened already.
          if (e.attempts > 0 || e.claimed_by !== PROCESS_ID || this.unrecorded.has(e.id)) uncertain.add(e.id);
          this.inFlight.add(e.id);
          added.push(e.id);
          e.claimed_by = PROCESS_ID;
          e.claimed_at = now.toISOString();
          claimed.push(plain(e) as EffectRecord);
        }
        return claimed;
      });
    } catch (err) {
      for (const id of added) this.inFlight.delete(id);
      throw err;
    }
  }

  private claimable(e: EffectRecord, now: Date): boolean {
    if (this.madeUnwritten.has(e.id)) return false;
    if ((this.settleUntil.get(e.id) ?? 0) > this.nowMs()) return false;
    if (!e.claimed_by) return true;
    if (e.claimed_by === PROCESS_ID) {
      const reservedAt = this.reserved.get(e.id);
      if (reservedAt !== undefined && this.nowMs() - reservedAt < CLAIM_STALE_MS) return false;
      return !this.inFlight.has(e.id);
    }
    if (now.getTime() - new Date(e.claimed_at ?? 0).getTime() > CLAIM_STALE_MS) return true;
    return processGone(e.claimed_by);
  }

  private async make(eff: EffectRecord, mayHaveHappened: boolean): Promise<EffectOutcome> {
    const { rt } = this;
    try {
      const result = await perform(rt, eff, mayHaveHappened);
      rt.logger.info(`made ${eff.kind} ${effectTarget(eff)}`, { effect: eff.id, decision: eff.decision });
      const hub = typeof result.delivered_at === "string" ? new Date(result.delivered_at) : undefined;
      const at = (hub && !Number.isNaN(hub.getTime()) ? hub : rt.now()).toISOString();
      return { id: eff.id, kind: eff.kind, ok: true, result, at };
    } catch (err) {
      const error = rt.redact(errorMessage(err));
      const code = isEoaError(err) ? err.code : undefined;
      const maybe = isEoaError(err) && err.details?.may_have_arrived === true && eff.kind === "message";
      rt.logger.warn("side effect failed", {
        effect: eff.id,
        kind: eff.kind,
        error,
        may_have_arrived: maybe,
      });
      return {
        id: eff.id,
        kind: eff.kind,
        ok: false,
        error,
        ...(code ? { code } : {}),
        ...(code && FINAL_CODES.has(code) && eff.kind !== "message" && eff.kind !== "labels"
          ? { final: true }
          : {}),
        ...(isEoaError(err) && err.details ? { details: err.details } : {}),
        ...(maybe ? { uncertain: true } : {}),
      };
    }
  }
}

/** Who or what a side effect reaches, for its log line (never the content: that may be an agent's). */
function effectTarget(eff: EffectRecord): string {
  const p = eff.payload as Record<string, unknown>;
  if (eff.kind === "message") {
    const m = p.message as { to?: string; subject?: string } | undefined;
    return `to ${m?.to ?? "?"}${m?.subject ? ` (${oneLine(m.subject, 80)})` : ""}`;
  }
  if (typeof p.pr_number === "number") return `on PR #${p.pr_number}`;
  if (typeof p.issue_number === "number") return `on issue #${p.issue_number}`;
  if (typeof p.task_id === "string") return `for ${p.task_id}`;
  return "";
}
