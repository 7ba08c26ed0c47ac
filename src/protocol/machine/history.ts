import type { TaskRecord } from "../../state/schema.js";
import type { Step } from "./records.js";

/**
 * A task's history is capped in the state (issue 16): an agent that reports progress every minute
 * for a week must not put megabytes into the state file, every read of it and the task's resource.
 * Older entries move to the archive in pages, oldest first; the first entry of each kind
 * (created, assigned, acknowledged, the first review, ...) stays, so that "when did it start" is
 * always answered from the state.
 */

/** Entries a task keeps in the state besides the first of each kind: the latest. */
export const HISTORY_KEPT = 200;
/** Entries an archive page holds: whole pages only are archived. */
export const HISTORY_PAGE = 100;
/**
 * Characters an entry's detail keeps, on one line: an entry summarizes (the whole text is in the
 * record it names), and a page of entries, or a task's kept history, stays well within one reply.
 */
export const HISTORY_DETAIL = 300;

/**
 * The positions of the entries to archive now, oldest first: as many whole pages as the entries
 * older than the latest HISTORY_KEPT fill, the first of each kind left out. Entries only join at
 * the end, so whoever looks (another process too) picks the same entries for the same pages.
 */
export function historyToArchive(t: Pick<TaskRecord, "history">): number[] {
  if (t.history.length < HISTORY_KEPT + HISTORY_PAGE) return [];
  const cut = t.history.length - HISTORY_KEPT;
  const seen = new Set<string>();
  const out: number[] = [];
  t.history.forEach((h, i) => {
    const first = !seen.has(h.event);
    seen.add(h.event);
    if (i < cut && !first) out.push(i);
  });
  return out.slice(0, out.length - (out.length % HISTORY_PAGE));
}

/**
 * The archive holds the `count` entries `historyToArchive` named when the task had archived `from`:
 * they leave the state. The same positions still name them; a page another process archived first
 * (`from` moved on) changes nothing.
 */
export function historyArchived(s: Step, e: { task_id: string; from: number; count: number }): void {
  const t = s.draft.tasks[e.task_id];
  if (!t || (t.history_archived ?? 0) !== e.from || e.count % HISTORY_PAGE !== 0) return;
  const drop = new Set(historyToArchive(t).slice(0, e.count));
  if (drop.size !== e.count) return;
  // Written first: the task is a draft from here on, so the entries kept are the draft's own.
  t.history_archived = e.from + e.count;
  t.history = t.history.filter((_, i) => !drop.has(i));
}
