import { randomUUID } from "node:crypto";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Low } from "lowdb";
import { DataFile } from "lowdb/node";
import lockfile from "proper-lockfile";
import { enablePatches, produceWithPatches, freeze, type Draft, type Patch } from "immer";
import { EoaError } from "../errors.js";
import { emptyState, migrate, type State } from "./schema.js";

enablePatches();

export type ReadonlyState = Readonly<State>;

/** What a committed transaction touched: top-level keys and, for tasks, the task ids. */
export interface StateChange {
  keys: Set<string>;
  taskIds: Set<string>;
}

export type ChangeListener = (change: StateChange, state: ReadonlyState) => void;

/**
 * The state file behind a cross-process lock.
 *
 * Several server processes (one per MCP client) may share a state directory, and lowdb alone is
 * not safe for that: every read-modify-write takes the lock, re-reads the file inside it, applies
 * the change and writes atomically (lowdb's writer renames a temp file over the old one). Reads
 * outside a transaction, and inside one, come from memory while the revision token and the file's
 * identity (inode, mtime, size) are unchanged, since parsing a large document on every tool call
 * is the dominant cost.
 *
 * Transactions are synchronous functions on purpose: the lock must never be held across a network
 * call.
 */
export class StateStore {
  readonly file: string;
  /**
   * A fresh random token written by every transaction before the state file: the cache is keyed by
   * it and the file's identity, so another process's write is noticed even when the inode is
   * recycled and the size and mtime tick are the same.
   */
  private readonly revFile: string;
  private readonly db: Low<State>;
  private cache: { key: string; state: ReadonlyState } | undefined;
  private readonly listeners = new Set<ChangeListener>();

  private constructor(readonly dir: string) {
    this.file = join(dir, "state.json");
    this.revFile = join(dir, "state.rev");
    // Compact JSON: the document is rewritten on every change, and indentation doubles the cost.
    this.db = new Low<State>(
      new DataFile<State>(this.file, { parse: JSON.parse, stringify: (d) => JSON.stringify(d) }),
      emptyState(),
    );
  }

  static async open(dir: string): Promise<StateStore> {
    try {
      await mkdir(dir, { recursive: true });
      // `wx` creates the file only if absent, so two processes starting at once cannot clobber it.
      await writeFile(join(dir, "state.json"), JSON.stringify(emptyState(), null, 2), { flag: "wx" }).catch(
        (err: NodeJS.ErrnoException) => {
          if (err.code !== "EEXIST") throw err;
        },
      );
    } catch (err) {
      throw new EoaError(
        "STATE_DIR_UNWRITABLE",
        `cannot create the state directory ${dir}: ${(err as Error).message}`,
        "set EOA_STATE_DIR (or stateDir in the config file) to a writable directory",
      );
    }
    const store = new StateStore(dir);
    await store.read();
    return store;
  }

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The current state, frozen. Re-read from disk only when another writer changed the file. */
  async read(): Promise<ReadonlyState> {
    const key = await this.fileKey();
    if (this.cache && this.cache.key === key) return this.cache.state;
    return this.load(key);
  }

  private async load(key: string): Promise<ReadonlyState> {
    await this.db.read();
    const state = freeze(migrate(this.db.data), true);
    this.cache = { key, state };
    return state;
  }

  /**
   * Lock, re-read, apply `fn` to a draft, write atomically if anything changed, unlock.
   * If `fn` throws, nothing is written and the error propagates: a refused call changes nothing.
   */
  async transact<T>(fn: (draft: Draft<State>) => T): Promise<T> {
    const release = await this.lock();
    let change: StateChange | undefined;
    let next: ReadonlyState | undefined;
    let result!: T;
    try {
      // Inside the lock the revision token decides: every writer replaces it before writing.
      const key = await this.fileKey();
      const current = this.cache && this.cache.key === key ? this.cache.state : await this.load(key);
      const [produced, patches] = produceWithPatches(current, (draft) => {
        result = fn(draft);
      });
      if (patches.length > 0) {
        this.db.data = produced as State;
        try {
          await writeFile(this.revFile, randomUUID());
          await this.db.write();
        } catch (err) {
          this.cache = undefined;
          throw new EoaError(
            "STATE_WRITE_FAILED",
            `could not write ${this.file}: ${(err as Error).message}; the change was not saved`,
            "free disk space or fix the permissions of the state directory, then retry the call",
          );
        }
        next = produced;
        this.cache = { key: await this.fileKey(), state: produced };
        change = summarize(patches);
      }
    } finally {
      await release().catch(() => undefined);
    }
    if (change && next) for (const l of this.listeners) l(change, next);
    return result;
  }

  /** True when another process wrote the file since this one last read it (the cache is then refreshed). */
  async changedElsewhere(): Promise<boolean> {
    const key = await this.fileKey();
    if (this.cache && this.cache.key === key) return false;
    await this.read();
    return true;
  }

  private async fileKey(): Promise<string> {
    const rev = await readFile(this.revFile, "utf8").catch(() => "none");
    try {
      const s = await stat(this.file);
      return `${rev}:${s.ino}:${s.mtimeMs}:${s.size}`;
    } catch {
      return `${rev}:missing`;
    }
  }

  private async lock(): Promise<() => Promise<void>> {
    try {
      return await lockfile.lock(this.file, {
        realpath: false,
        stale: 15_000,
        update: 5_000,
        retries: { retries: 200, factor: 1.3, minTimeout: 5, maxTimeout: 200, randomize: true },
      });
    } catch (err) {
      throw new EoaError(
        "STATE_LOCKED",
        `the state file ${this.file} stayed locked by another eoa-mcp process: ${(err as Error).message}`,
        "retry in a moment; if no other eoa-mcp process is running, delete the stale state.json.lock directory",
      );
    }
  }
}

function summarize(patches: Patch[]): StateChange {
  const keys = new Set<string>();
  const taskIds = new Set<string>();
  for (const p of patches) {
    const [top, second] = p.path;
    if (typeof top === "string") keys.add(top);
    if (top === "tasks" && typeof second === "string") taskIds.add(second);
  }
  return { keys, taskIds };
}
