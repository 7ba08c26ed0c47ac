import { mkdir, open, readFile, rename } from "node:fs/promises";
import { join } from "node:path";
import type { HistoryEntry } from "./schema.js";

/**
 * The history archive: the entries a task's history no longer keeps in the state, one file per
 * page of HISTORY_PAGE entries (`archive/<task>/page-<n>.json`, n from 1), each written whole and
 * durably before the state lets its entries go. A page only ever holds the same entries, so writing
 * it again (a crash before the state knew, or another process archiving the same page) is harmless.
 */

const dirOf = (stateDir: string, taskId: string) => join(stateDir, "archive", encodeURIComponent(taskId));
const pageFile = (page: number) => `page-${String(page).padStart(9, "0")}.json`;

/** Writes `pages` (each a page's entries) as pages `first`, `first + 1`, ...: durable on return. */
export async function writeHistoryPages(
  stateDir: string,
  taskId: string,
  first: number,
  pages: readonly (readonly HistoryEntry[])[],
): Promise<void> {
  const dir = dirOf(stateDir, taskId);
  await mkdir(dir, { recursive: true });
  for (const [i, entries] of pages.entries()) {
    const file = join(dir, pageFile(first + i));
    const tmp = `${file}.${process.pid}.tmp`;
    const fh = await open(tmp, "w");
    try {
      await fh.writeFile(JSON.stringify(entries));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  }
  // The renames reach the disk before the state lets the entries go.
  const d = await open(dir, "r");
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/** One archived page of a task's history, or null: not archived (the state says how many are). */
export async function readHistoryPage(
  stateDir: string,
  taskId: string,
  page: number,
): Promise<HistoryEntry[] | null> {
  const text = await readFile(join(dirOf(stateDir, taskId), pageFile(page)), "utf8").catch(() => null);
  return text === null ? null : (JSON.parse(text) as HistoryEntry[]);
}
