import { errorMessage, isEoaError } from "../errors.js";
import type { FullMessage, InboxEntry } from "../clients/aimaestro.js";
import { normalizeMessageId } from "../clients/aimaestro.js";
import { classifyMessage, type Classified } from "../protocol/classify.js";
import type { InboxMessage } from "../protocol/machine/index.js";
import { cap, oneLine } from "../protocol/text.js";
import type { MessageOutcome } from "../state/schema.js";
import { actionsDue, type ActionDue } from "./actions-due.js";
import { finishOffline } from "./offline.js";
import { reconcileMerges } from "./reconcile.js";
import type { Runtime } from "./runtime.js";

/**
 * Phase 3, one poll cycle: read the orchestrator's inbox and the agents' presence, hand them to the
 * state machine as one `poll-cycle` event (applied in one transaction), mark the messages read only
 * once that has committed, then make the cycle's side effects and retry undelivered ones.
 */

export type { ActionDue } from "./actions-due.js";

export interface ReadMessage {
  id: string;
  from: string;
  subject: string;
  kind: string;
  task_id: string | null;
  outcome: MessageOutcome | "would-apply" | "already-processed";
  note: string;
}

export interface CycleResult {
  cycle: number | null;
  peek: boolean;
  read: ReadMessage[];
  changes: string[];
  actions_due: ActionDue[];
  /** Actions due beyond the ones listed (see ACTIONS_DUE_LIMIT). */
  actions_more: number;
  warnings: string[];
}

interface Fetched extends InboxMessage {
  entry: InboxEntry;
}

export async function checkMessages(
  rt: Runtime,
  opts: { limit?: number | undefined; peek?: boolean | undefined },
): Promise<CycleResult> {
  const limit = opts.limit ?? 50;
  const warnings: string[] = [];
  const read: ReadMessage[] = [];
  const me = rt.config.orchestrator;

  let inbox: InboxEntry[] = [];
  let unread: number | null = null;
  let inboxRead = true;
  try {
    const all = await rt.aimaestro.listUnread(me, 0);
    inbox = all.slice().reverse().slice(0, limit); // oldest first
    unread = all.length;
  } catch (err) {
    inboxRead = false;
    warnings.push(`inbox not read (no heartbeat or ack deadline judged this cycle): ${errorMessage(err)}`);
  }
  const fetched = await readAll(rt, inbox, warnings);

  if (opts.peek) {
    const state = await rt.store.read();
    for (const f of fetched) {
      read.push(describe(f, state.messages[f.id] ? "already-processed" : "would-apply"));
    }
    const due = actionsDue(state);
    return {
      cycle: null,
      peek: true,
      read,
      changes: [],
      actions_due: due.actions,
      actions_more: due.more,
      warnings,
    };
  }

  // Presence from AI Maestro; when the hub cannot be asked, nobody is counted as missing a beat.
  let online: Set<string> | null = null;
  try {
    online = new Set(
      (await rt.aimaestro.listAgents()).filter((a) => a.online).map((a) => a.name.toLowerCase()),
    );
  } catch (err) {
    warnings.push(`agent presence unknown, heartbeats not counted this cycle: ${errorMessage(err)}`);
  }

  const { result: cycle, effects } = await rt.step({
    type: "poll-cycle",
    messages: fetched.map(({ entry: _entry, ...m }) => m),
    online,
    inbox_read: inboxRead,
    unread: unread === null ? null : unread - fetched.length,
  });
  const changes = [...cycle.changes];
  const byId = new Map(fetched.map((f) => [f.id, f]));
  // The hub marks one message per request: a few at a time, so that 50 messages cost a few round
  // trips of time, not 50.
  const marked = await eachBounded(cycle.applied, HUB_REQUESTS_AT_ONCE, async (a) => {
    const f = byId.get(a.id)!;
    try {
      await rt.aimaestro.markRead(me, f.entry.id);
      return null;
    } catch (err) {
      // Harmless: the id is recorded, so the next cycle skips it and tries marking again.
      return `message ${f.id} applied but not marked read: ${errorMessage(err)}`;
    }
  });
  for (const w of marked) if (w) warnings.push(w);
  for (const a of cycle.applied) read.push(describe(byId.get(a.id)!, a.outcome, a.note));
  for (const o of cycle.offline) await finishOffline(rt, o, []);
  // The cycle's own effects, then every earlier one still undelivered.
  const flushed = [...(await rt.outbox.flush(effects)), ...(await rt.outbox.flush())];
  for (const f of flushed.filter((x) => !x.ok))
    warnings.push(`side effect ${f.id} (${f.kind}) failed, will retry: ${f.error}`);
  // A merge decided by a process that is gone is finished here (docs/PROTOCOL.md, Durability).
  try {
    for (const id of await reconcileMerges(rt)) changes.push(`${id}: its PR is merged on GitHub: done`);
  } catch (err) {
    warnings.push(`merges not reconciled this cycle: ${errorMessage(err)}`);
  }

  const due = actionsDue(await rt.store.read());
  return {
    cycle: cycle.count,
    peek: false,
    read,
    changes,
    actions_due: due.actions,
    actions_more: due.more,
    warnings,
  };
}

/** Every unread message read in full and classified, in inbox order; all are applied in one transaction afterwards. */
async function readAll(rt: Runtime, inbox: InboxEntry[], warnings: string[]): Promise<Fetched[]> {
  const me = rt.config.orchestrator;
  const read = await eachBounded(inbox, HUB_REQUESTS_AT_ONCE, async (entry) => {
    const id = normalizeMessageId(entry.id);
    let full: FullMessage | null;
    let classified: Classified | undefined;
    try {
      full = await rt.aimaestro.getMessage(me, entry.id);
    } catch (err) {
      if (!(isEoaError(err) && err.details?.too_large)) return `message ${id} not read: ${errorMessage(err)}`;
      // A body too large to read would be fetched again every cycle: record it from its list entry
      // (as unknown, never acted on) so that it is marked read like any other message.
      full = { ...entry, to: me, content: { type: "", message: "" } };
      classified = { kind: "unknown", reason: "message body too large to read: not acted on" };
    }
    if (!full) return null;
    const subject = typeof full.subject === "string" ? full.subject : "";
    classified ??= classifyMessage({ id, from: full.from, subject, content: full.content ?? {} });
    return { entry, id, from: senderName(entry, full), subject, classified };
  });
  const fetched: Fetched[] = [];
  for (const r of read) {
    if (typeof r === "string") warnings.push(r);
    else if (r) fetched.push(r);
  }
  return fetched;
}

/** Requests to the hub in flight at once within one cycle (reads, then marks). */
const HUB_REQUESTS_AT_ONCE = 8;

/** `fn` over `items` with at most `limit` running at once; results in the items' order. */
async function eachBounded<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

function senderName(entry: InboxEntry, full: FullMessage): string {
  const alias = (entry as { fromAlias?: string }).fromAlias;
  // Untrusted: a sender outside the roster may call itself anything, at any length (it is stored
  // in state and shown to the model). Roster names are at most 100 plain characters.
  return oneLine((alias || full.from || entry.from || "").toLowerCase(), 100);
}

function describe(m: InboxMessage, outcome: ReadMessage["outcome"], note?: string): ReadMessage {
  const c = m.classified;
  return {
    id: m.id,
    from: oneLine(m.from, 100),
    subject: oneLine(m.subject ?? "", 200),
    kind: c.kind,
    task_id: "task_id" in c && c.task_id ? c.task_id : null,
    outcome,
    note: note ?? ("note" in c ? cap(c.note, 300) : c.kind === "unknown" ? c.reason : ""),
  };
}
