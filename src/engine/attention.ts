import { untrustedInline } from "../protocol/text.js";
import type { State } from "../state/schema.js";
import { actionsDue } from "./actions-due.js";
import { waitingForCi } from "./night.js";
import type { Runtime } from "./runtime.js";

/**
 * What needs the model (issue 11, item 3): a PR ready for Gate 1, an agent's question or error
 * report, an escalation the user answered, every agent offline, the session finished, a task to
 * assign. Level-triggered from the state, keyed so that one fact is told once however many changes
 * or processes see it. Agent text stays marked untrusted.
 */

export interface AttentionEvent {
  key: string;
  kind:
    | "review_due"
    | "agent_question"
    | "escalation"
    | "agent_error"
    | "escalation_answered"
    | "all_agents_offline"
    | "session_finished"
    | "assign_due";
  task_id: string | null;
  /** What happened and which tool answers it. */
  content: string;
}

/** Every fact in `state` that needs the model now, by key. */
export function attentionNeeded(state: Readonly<State>): AttentionEvent[] {
  const out: AttentionEvent[] = [];
  const session = state.sessions.find((s) => s.id === state.current_session_id);
  if (!session || session.status === "awaiting_approval") return out;
  const ci = new Set(waitingForCi(state).map((w) => w.task_id));
  for (const a of actionsDue(state).actions) {
    if (a.tool === "review_pr" && a.task_id && !ci.has(a.task_id)) {
      const t = state.tasks[a.task_id];
      out.push({
        key: `review:${a.task_id}#${t?.pr_number ?? "?"}@${t?.review_head ?? "new"}:${t?.status ?? ""}`,
        kind: "review_due",
        task_id: a.task_id,
        content: `${a.why}. Call review_pr ${JSON.stringify(a.arguments)} and judge Gate 1 from the packet.`,
      });
    } else if (a.tool === "write_report") {
      out.push({
        key: `report:${session.id}`,
        kind: "session_finished",
        task_id: null,
        content: `Every task of ${session.id} is settled (${a.why}). Call write_report ${JSON.stringify(a.arguments)} for the morning report.`,
      });
    } else if (
      a.tool === "send_instructions" ||
      a.tool === "reassign_task" ||
      a.tool === "mark_agent_offline"
    ) {
      // An agent's question or error report waiting for the orchestrator's judgment.
      const w = a.task_id ? state.tasks[a.task_id]?.awaiting : undefined;
      out.push({
        key: `judge:${a.task_id ?? String(a.arguments.agent)}:${w?.message_id ?? state.agents[String(a.arguments.agent)]?.failing?.since ?? ""}`,
        kind: w?.kind === "question" ? "agent_question" : "agent_error",
        task_id: a.task_id,
        content: `${a.why}${w ? `. The agent wrote: ${untrustedInline(`${w.message_id} text`, w.note)}` : ""}. Call ${a.tool} ${JSON.stringify(a.arguments)}.`,
      });
    } else if (a.tool === "assign_task" && a.task_id) {
      out.push({
        key: `assign:${a.task_id}`,
        kind: "assign_due",
        task_id: a.task_id,
        content: `${a.why}. Call assign_task ${JSON.stringify(a.arguments)}.`,
      });
    }
  }
  for (const e of state.escalations) {
    if (e.created_at < session.created_at) continue;
    // A question the orchestrator must answer is told as that (above), not twice.
    if (e.task_id && state.tasks[e.task_id]?.awaiting?.escalation_id === e.id && e.status === "open")
      continue;
    const issue = untrustedInline(`${e.id} issue`, e.issue);
    if (e.status === "open" && e.category !== "infrastructure") {
      out.push({
        key: `escalation:${e.id}`,
        kind: "escalation",
        task_id: e.task_id ?? null,
        content: `${e.id} (${e.category}, ${e.level}, to ${e.channel}) for ${e.task_id ?? "no task"}: ${issue}. Read eoa://escalations; the user answers with resolve_escalation.`,
      });
    }
    if (e.status === "resolved" && e.resolution) {
      out.push({
        key: `answered:${e.id}`,
        kind: "escalation_answered",
        task_id: e.task_id ?? null,
        content: `${e.id} was answered: ${untrustedInline(`${e.id} decision`, e.resolution.decision)}. Parked tasks are released; call check_messages for what is due now.`,
      });
    }
  }
  if (session.status === "halted") {
    out.push({
      key: `halted:${session.id}:${session.halted_by ?? ""}`,
      kind: "all_agents_offline",
      task_id: null,
      content: `Assignment is halted: ${session.halted_reason ?? "every agent is offline"}. The user was paged (${session.halted_by ?? "escalation"}); nothing is assigned until they answer it with resolve_escalation.`,
    });
  }
  return out;
}

/** Tells each fact once: the keys seen at the start are the baseline, not news. */
export class AttentionTracker {
  private readonly told = new Set<string>();

  constructor(baseline?: Readonly<State>) {
    if (baseline) for (const e of attentionNeeded(baseline)) this.told.add(e.key);
  }

  /** The facts in `state` not told yet. */
  news(state: Readonly<State>): AttentionEvent[] {
    const fresh = attentionNeeded(state).filter((e) => !this.told.has(e.key));
    for (const e of fresh) this.told.add(e.key);
    return fresh;
  }
}

/** The kinds the model can act on at once: a wait returns at the start when one is there. */
const ACTIONABLE = new Set<AttentionEvent["kind"]>([
  "review_due",
  "assign_due",
  "session_finished",
  "agent_question",
  "agent_error",
]);

/** How often a waiting `check_messages` tells the client it is alive (its request timeout resets). */
const WAIT_PROGRESS_MS = 15_000;

/**
 * `check_messages {wait_seconds}`: "due" when an action is due already; else "woke" on the first new
 * fact (from this process's steps or another's writes to the state directory), "timeout" when the
 * time is up or the request is cancelled.
 */
export async function waitForAttention(
  rt: Runtime,
  seconds: number,
  ctx: { signal: AbortSignal; progress(message: string): Promise<void>; progressEveryMs?: number },
): Promise<"due" | "woke" | "timeout"> {
  const every = ctx.progressEveryMs ?? WAIT_PROGRESS_MS;
  const start = await rt.store.read();
  if (attentionNeeded(start).some((e) => ACTIONABLE.has(e.kind))) return "due";
  if (ctx.signal.aborted) return "timeout";
  const tracker = new AttentionTracker(start);
  return new Promise((resolve) => {
    let ticks = 0;
    const finish = (woke: boolean) => {
      clearTimeout(timer);
      clearInterval(ticker);
      off();
      unwatch();
      ctx.signal.removeEventListener("abort", onAbort);
      resolve(woke ? "woke" : "timeout");
    };
    const off = rt.store.onChange((_change, state) => {
      if (tracker.news(state).length) finish(true);
    });
    // Another process (the one holding the night's lease) may be the one that changes the state.
    const unwatch = rt.store.watch(250);
    const timer = setTimeout(() => finish(false), seconds * 1000);
    const ticker = setInterval(() => {
      ticks += 1;
      const waited = Math.round((ticks * every) / 1000);
      void ctx.progress(`waiting for something due: ${waited}s of ${seconds}s`).catch(() => undefined);
    }, every);
    const onAbort = () => finish(false);
    ctx.signal.addEventListener("abort", onAbort);
  });
}

/** Claude Code's channel event (notifications/claude/channel): `meta` values are strings. */
export function channelEvent(
  e: AttentionEvent,
  redact: (text: string) => string,
): { content: string; meta: Record<string, string> } {
  return {
    content: redact(e.content),
    meta: { source: "eoa-mcp", kind: e.kind, ...(e.task_id ? { task_id: redact(e.task_id) } : {}) },
  };
}
