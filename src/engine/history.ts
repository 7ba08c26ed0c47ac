import { historyToArchive } from "../protocol/machine/index.js";
import { writeHistoryPart } from "../state/archive.js";
import type { Runtime } from "./runtime.js";

/**
 * Moves the oldest history of every task past the cap to the archive (protocol/machine/history.ts):
 * the batch is on the disk before the state lets it go. Run by each poll cycle.
 */
export async function archiveHistories(rt: Runtime): Promise<number> {
  const state = await rt.store.read();
  let moved = 0;
  for (const t of Object.values(state.tasks)) {
    const positions = historyToArchive(t);
    if (!positions.length) continue;
    const from = t.history_archived ?? 0;
    await writeHistoryPart(
      rt.config.stateDir,
      t.task_id,
      from,
      positions.map((i) => t.history[i]!),
    );
    await rt.step({ type: "history-archived", task_id: t.task_id, from, count: positions.length });
    moved += positions.length;
  }
  return moved;
}
