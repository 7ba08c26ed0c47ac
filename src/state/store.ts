import { randomUUID } from "node:crypto";
import { appendFileSync, readFileSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { access, link, mkdir, readFile, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Low } from "lowdb";
import { DataFile } from "lowdb/node";
import lockfile from "proper-lockfile";
import { applyPatches, enablePatches, produceWithPatches, freeze, type Draft, type Patch } from "immer";
import { EoaError } from "../errors.js";
import { emptyState, migrate, type State } from "./schema.js";

enablePatches();

export type ReadonlyState = Readonly<State>;

/**
 * What a committed transaction touched: top-level keys and, for tasks, the task ids. `external`:
 * another process wrote the files, and any part may have changed.
 */
export interface StateChange {
  keys: Set<string>;
  taskIds: Set<string>;
  external?: boolean;
}

export type ChangeListener = (change: StateChange, state: ReadonlyState) => void;

/** A state as read from the files. */
interface Loaded {
  state: ReadonlyState;
  /** How much of the journal the state accounts for: its whole lines (where the next append goes). */
  journalBytes: number;
  /** The bytes of those lines that belong to the document's generation: grows with every append. */
  appliedBytes: number;
}

/**
 * The state file behind a cross-process lock.
 *
 * Several server processes (one per MCP client) may share a state directory, and lowdb alone is
 * not safe for that: every read-modify-write takes the lock, re-reads inside it, applies the change
 * and writes it before unlocking. Reads, inside a transaction or not, come from memory while the
 * revision token and the files' identity are unchanged: parsing a large document on every tool call
 * would be the dominant cost.
 *
 * Writing the whole document on every change costs O(state) per transaction, which at thousands of
 * tasks dwarfs everything else. So a transaction appends its changes (immer patches, one JSON line)
 * to `state.journal`, and the lowdb document `state.json` is a snapshot that the journal's lines of
 * the same `generation` apply to. When the journal grows past a bound, the document is rewritten
 * atomically (temp file + rename) with the next generation and the journal emptied; a crash between
 * the two leaves lines of an old generation, which are ignored. A line cut short by a crash is
 * ignored too, and cut off before the next append. At any point the two files give a valid state.
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
  readonly journalFile: string;
  private readonly db: Low<State>;
  private cache: (Loaded & { key: string }) | undefined;
  private readonly listeners = new Set<ChangeListener>();
  private watchers = 0;
  private watchTimer: NodeJS.Timeout | undefined;
  /** The revision token this process wrote last: files carrying it are this process's own write. */
  private ownRev: string | undefined;

  private constructor(
    readonly dir: string,
    private readonly journalLimit = JOURNAL_LIMIT_BYTES,
  ) {
    this.file = join(dir, "state.json");
    this.revFile = join(dir, "state.rev");
    this.journalFile = join(dir, "state.journal");
    // Compact JSON: indentation doubles the cost of a compaction.
    this.db = new Low<State>(
      new DataFile<State>(this.file, { parse: JSON.parse, stringify: (d) => JSON.stringify(d) }),
      emptyState(),
    );
  }

  /** `journalLimitBytes`: when the journal outgrows it, the next change rewrites the document. */
  static async open(dir: string, opts: { journalLimitBytes?: number } = {}): Promise<StateStore> {
    try {
      await mkdir(dir, { recursive: true });
      await createOnce(join(dir, "state.json"), JSON.stringify(emptyState(), null, 2));
    } catch (err) {
      throw new EoaError(
        "STATE_DIR_UNWRITABLE",
        `cannot create the state directory ${dir} or its state file: ${(err as Error).message}`,
        "set EOA_STATE_DIR (or stateDir in the config file) to a writable directory",
      );
    }
    const store = new StateStore(dir, opts.journalLimitBytes);
    await store.read();
    // A journal left long (a crash, or a large change) is folded in now rather than replayed on every load.
    if (store.cache && store.cache.journalBytes > store.journalLimit) await store.compact();
    return store;
  }

  /**
   * Looks for another process's writes every `everyMs` while anyone watches (one timer for all
   * watchers); listeners hear of them through `onChange`. Returns the watcher's stop.
   */
  watch(everyMs: number): () => void {
    this.watchers++;
    this.watchTimer ??= setInterval(() => void this.read().catch(() => undefined), everyMs).unref();
    let stopped = false;
    return () => {
      if (stopped) return;
      stopped = true;
      if (--this.watchers === 0) {
        clearInterval(this.watchTimer);
        this.watchTimer = undefined;
      }
    };
  }

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The current state, frozen. Re-read from disk only when another writer changed the file. */
  async read(): Promise<ReadonlyState> {
    return (await this.current()).state;
  }

  /** The cached state while the files are as it saw them, else a fresh load (see `load`). */
  private async current(): Promise<Loaded> {
    const key = await this.fileKey();
    return this.cache && this.cache.key === key ? this.cache : this.load(key);
  }

  /**
   * Reads the document and its journal. A write by another process in between may mix old and new
   * files, so the read is repeated until the files' key held still across it. A load that changes
   * what this process had, from files another process wrote last, is announced to listeners (files
   * this process is writing are ahead of its cache for a moment, and are not). Every write appends
   * a line of the current generation or starts a generation, so the two tell a change: a writer
   * caught half-way (its token written, not yet its line; its document, not yet the emptied
   * journal) is announced once for what it has changed.
   */
  private async load(key: string): Promise<Loaded> {
    for (let attempt = 0; ; attempt++) {
      // Straight from the adapter: `db.data` is shared, and two loads in one process may interleave.
      const snapshot = migrate(await this.db.adapter.read());
      const journal = await readFile(this.journalFile, "utf8").catch((err: NodeJS.ErrnoException) => {
        // No journal is an empty one; an unreadable one must not silently roll the state back.
        if (err.code === "ENOENT") return "";
        throw new EoaError(
          "STATE_READ_FAILED",
          `cannot read ${this.journalFile}: ${err.message}`,
          "fix the state directory's permissions (or restore state.journal), then retry",
        );
      });
      const end = journal.lastIndexOf("\n") + 1; // a partial last line is not part of the state
      const patches: Patch[] = [];
      let appliedBytes = 0;
      for (const line of journal.slice(0, end).split("\n")) {
        if (!line) continue;
        const entry = JSON.parse(line) as { g: number; p: Patch[] };
        if (entry.g !== snapshot.generation) continue; // a compaction's leftover, folded in already
        patches.push(...entry.p);
        appliedBytes += Buffer.byteLength(line) + 1;
      }
      const state = freeze(patches.length ? applyPatches(snapshot, patches) : snapshot, true);
      const journalBytes = Buffer.byteLength(journal.slice(0, end));
      const after = await this.fileKey();
      const loaded = { state, journalBytes, appliedBytes };
      if (after === key) {
        const had = this.cache;
        this.cache = { key, ...loaded };
        const changed =
          had !== undefined &&
          (had.appliedBytes !== appliedBytes || had.state.generation !== state.generation);
        if (changed && !(this.ownRev && key.startsWith(`${this.ownRev}:`))) {
          const change: StateChange = { keys: new Set(), taskIds: new Set(), external: true };
          for (const l of this.listeners) l(change, state);
        }
        return loaded;
      }
      if (attempt >= 4) return loaded;
      key = after;
    }
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
      const loaded = await this.current();
      const [produced, patches] = produceWithPatches(loaded.state, (draft) => {
        result = fn(draft);
      });
      if (patches.length > 0) {
        let saved: Loaded;
        try {
          const line = `${JSON.stringify({ g: produced.generation, p: patches })}\n`;
          const base = loaded.journalBytes;
          const bytes = Buffer.byteLength(line);
          if (base + bytes > this.journalLimit) {
            saved = await this.writeNextGeneration(produced);
          } else {
            await this.persist({ append: line, after: base });
            saved = {
              state: produced,
              journalBytes: base + bytes,
              appliedBytes: loaded.appliedBytes + bytes,
            };
          }
        } catch (err) {
          this.cache = undefined;
          throw new EoaError(
            "STATE_WRITE_FAILED",
            `could not write the state in ${this.dir}: ${(err as Error).message}; the change was not saved`,
            "free disk space or fix the permissions of the state directory, then retry the call",
          );
        }
        next = saved.state;
        this.cache = { key: await this.fileKey(), ...saved };
        change = summarize(patches);
      }
    } finally {
      await release().catch(() => undefined);
    }
    if (change && next) for (const l of this.listeners) l(change, next);
    return result;
  }

  /** Rewrites the document with the journal folded in (the next generation) and empties the journal. */
  async compact(): Promise<void> {
    const release = await this.lock();
    try {
      const compacted = await this.writeNextGeneration((await this.current()).state);
      this.cache = { key: await this.fileKey(), ...compacted };
    } finally {
      await release().catch(() => undefined);
    }
  }

  /** Writes `state` as the document of the next generation, with an empty journal. */
  private async writeNextGeneration(state: ReadonlyState): Promise<Loaded> {
    const next = freeze({ ...state, generation: state.generation + 1 });
    await this.persist({ compact: next as State });
    return { state: next, journalBytes: 0, appliedBytes: 0 };
  }

  /**
   * The only place that writes the state files (and so the one place a test makes fail, as a full
   * disk would). The revision token goes first: readers that see it change re-read.
   */
  private async persist(op: { append: string; after: number } | { compact: State }): Promise<void> {
    // The small writes are synchronous: a few microseconds each, where a thread-pool round trip
    // costs a fraction of a millisecond and a transaction makes several.
    this.ownRev = randomUUID();
    writeFileSync(this.revFile, this.ownRev);
    if ("compact" in op) {
      this.db.data = op.compact;
      await this.db.write();
      writeFileSync(this.journalFile, "");
      return;
    }
    // Whatever follows the last whole line is a crash's remnant: cut it before appending.
    if (sizeOf(this.journalFile) !== op.after) {
      try {
        truncateSync(this.journalFile, op.after);
      } catch {
        // Nothing to cut (no journal yet).
      }
    }
    appendFileSync(this.journalFile, op.append);
  }

  /** The files' identity, from three tiny synchronous reads (see `persist`). */
  private async fileKey(): Promise<string> {
    let rev = "none";
    try {
      rev = readFileSync(this.revFile, "utf8");
    } catch {
      // No token yet: a state directory no transaction has written.
    }
    const journal = sizeOf(this.journalFile);
    try {
      const s = statSync(this.file);
      return `${rev}:${s.ino}:${s.mtimeMs}:${s.size}:${journal}`;
    } catch {
      return `${rev}:missing:${journal}`;
    }
  }

  private async lock(): Promise<() => Promise<void>> {
    try {
      return await lockfile.lock(this.file, {
        realpath: false,
        // A lock left by a killed process is broken after 5 s; a live holder refreshes it every 2 s.
        stale: 5_000,
        update: 2_000,
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

/**
 * The state as the files on disk give it (document plus journal), read afresh without a lock and
 * without folding a long journal in (which would rewrite the files): for tests, tools and people
 * inspecting a state directory.
 */
export async function readStateDir(dir: string): Promise<State> {
  return (await StateStore.open(dir, { journalLimitBytes: Infinity })).read() as Promise<State>;
}

/** Past this, the next change rewrites the document and empties the journal. */
const JOURNAL_LIMIT_BYTES = 4 * 1024 * 1024;

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
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

/**
 * Creates `file` with `text` unless it exists, all at once: written under a name of its own, then
 * linked into place, which fails if another process got there first. Written in place with `wx`
 * instead, the file would be empty for a moment (and for good after a crash), and every process
 * reading it then would fail.
 */
async function createOnce(file: string, text: string): Promise<void> {
  // Already there: nothing to write, so a read-only directory (a copy being inspected) will do.
  if (await exists(file)) return;
  const tmp = `${file}.${randomUUID()}.new`;
  let written = false;
  try {
    await writeFile(tmp, text, { flag: "wx" });
    written = true;
    await link(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST" || (await exists(file))) return;
    if (!written) throw err;
    // Written but not linked: a file system without hard links. Create in place, the next best thing.
    await writeFile(file, text, { flag: "wx" }).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "EEXIST") throw e;
    });
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}
