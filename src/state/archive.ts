import { mkdir, open, readdir, readFile, rename } from "node:fs/promises";
import { join } from "node:path";
import type { HistoryEntry } from "./schema.js";

/**
 * The history archive: the entries a task's history no longer keeps in the state, one file per
 * batch (`archive/<task>/<first position>.json`), written whole and durably before the state lets
 * them go. Writing a batch again (a crash before the state knew) writes the same file.
 */

const dirOf = (stateDir: string, taskId: string) => join(stateDir, "archive", encodeURIComponent(taskId));
const partName = (from: number) => `${String(from).padStart(9, "0")}.json`;

export async function writeHistoryPart(
  stateDir: string,
  taskId: string,
  from: number,
  entries: readonly HistoryEntry[],
): Promise<void> {
  const dir = dirOf(stateDir, taskId);
  await mkdir(dir, { recursive: true });
  const file = join(dir, partName(from));
  const tmp = `${file}.${process.pid}.tmp`;
  const fh = await open(tmp, "w");
  try {
    await fh.writeFile(JSON.stringify(entries));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  const d = await open(dir, "r");
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/** The batches archived for a task, by the position of their first entry. */
export async function historyParts(stateDir: string, taskId: string): Promise<number[]> {
  const names = await readdir(dirOf(stateDir, taskId)).catch(() => [] as string[]);
  return names
    .filter((n) => /^\d{9}\.json$/.test(n))
    .map((n) => Number(n.slice(0, 9)))
    .sort((a, b) => a - b);
}

export async function readHistoryPart(
  stateDir: string,
  taskId: string,
  from: number,
): Promise<HistoryEntry[] | null> {
  const text = await readFile(join(dirOf(stateDir, taskId), partName(from)), "utf8").catch(() => null);
  return text === null ? null : (JSON.parse(text) as HistoryEntry[]);
}
