import { HISTORY_PAGE, historyToArchive } from "../protocol/machine/index.js";
import { readHistoryPage, writeHistoryPages } from "../state/archive.js";
import type { HistoryEntry, TaskRecord } from "../state/schema.js";
import type { Runtime } from "./runtime.js";

/**
 * Moves the oldest history of every task past the cap to the archive (protocol/machine/history.ts):
 * the pages are on the disk before the state lets their entries go. Run by each poll cycle.
 */
export async function archiveHistories(rt: Runtime): Promise<number> {
  const state = await rt.store.read();
  let moved = 0;
  for (const t of Object.values(state.tasks)) {
    const positions = historyToArchive(t);
    if (!positions.length) continue;
    const from = t.history_archived ?? 0;
    const pages: HistoryEntry[][] = [];
    for (let i = 0; i < positions.length; i += HISTORY_PAGE)
      pages.push(positions.slice(i, i + HISTORY_PAGE).map((p) => t.history[p]!));
    await writeHistoryPages(rt.config.stateDir, t.task_id, from / HISTORY_PAGE + 1, pages);
    await rt.step({ type: "history-archived", task_id: t.task_id, from, count: positions.length });
    moved += positions.length;
  }
  return moved;
}

/**
 * A task's whole history, the archived pages and the entries the state keeps, in the order they
 * happened: for readers that must see all of it (the report's review rounds, its last block).
 */
export async function wholeHistory(rt: Runtime, t: TaskRecord): Promise<HistoryEntry[]> {
  const pages = Math.ceil((t.history_archived ?? 0) / HISTORY_PAGE);
  if (!pages) return t.history;
  const archived: HistoryEntry[] = [];
  for (let p = 1; p <= pages; p++) {
    const entries = await readHistoryPage(rt.config.stateDir, t.task_id, p);
    if (!entries) throw new Error(`page ${p} of ${t.task_id}'s archived history is missing`);
    archived.push(...entries);
  }
  // The state keeps the first of each kind, older than archived entries: merged back by time.
  const out: HistoryEntry[] = [];
  let a = 0;
  for (const kept of t.history) {
    while (a < archived.length && archived[a]!.at < kept.at) out.push(archived[a++]!);
    out.push(kept);
  }
  return [...out, ...archived.slice(a)];
}
