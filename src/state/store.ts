import { randomUUID } from "node:crypto";
import {
  closeSync,
  constants,
  fdatasync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  statSync,
  truncateSync,
  watch,
  writeSync,
  type FSWatcher,
} from "node:fs";
import { access, link, mkdir, readFile, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { DataFile } from "lowdb/node";
import { freeze, type Draft, type Patch } from "immer";
import { EoaError } from "../errors.js";
import { applyToState, frozen, StateDraft } from "./draft.js";
import { StateLock } from "./lock.js";
import { indexTasks, taskChanged } from "./task-index.js";
import { emptyState, migrate, STATE_VERSION, type State, type TaskRecord } from "./schema.js";

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

/** The files' identity: the revision token, the document's inode/mtime/size, the journal's size. */
interface FileKey {
  rev: string;
  doc: string;
  journal: number;
}

/** A state as read from the files. */
interface Loaded {
  state: ReadonlyState;
  /** How much of the journal the state accounts for: its whole lines (where the next append goes). */
  journalBytes: number;
  /** The bytes of those lines that belong to the document's generation: grows with every append. */
  appliedBytes: number;
}

export interface StoreOptions {
  /** When the journal outgrows it, the next change rewrites the document. */
  journalLimitBytes?: number;
  /** fsync each journal append and each new generation (default true; the bench turns it off to price it). */
  fsync?: boolean;
  /**
   * Called after the document was read whole, when it was larger than 1 MB: its text is garbage
   * then, and the server collects it at once (see v8-flags.ts).
   */
  afterLargeLoad?: () => void;
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
 * tasks dwarfs everything else. So a transaction appends its changes (patches, one JSON line) to
 * `state.journal`, and the lowdb document `state.json` is a snapshot that the journal's lines of
 * the same `generation` apply to. When the journal grows past a bound, the document is rewritten
 * atomically (temp file + rename) with the next generation and the journal emptied; a crash between
 * the two leaves lines of an old generation, which are ignored. A line cut short by a crash is
 * ignored too, and cut off before the next append. At any point the two files give a valid state.
 * Both survive power loss as well as a kill: each append is fsynced, and a generation is fsynced
 * with its directory before the journal is emptied.
 *
 * Another process's write is read from the journal's tail (the lines past those this process has):
 * the document is parsed again only when another process started a generation. A change costs what
 * it touched, not the size of the state (see StateDraft).
 *
 * Transactions are synchronous functions on purpose: the lock must never be held across a network
 * call.
 */
export class StateStore {
  readonly file: string;
  /**
   * A fresh random token written by every transaction before the state file: the cache is keyed by
   * it and the files' identity, so another process's write is noticed even when the inode is
   * recycled and the size and mtime tick are the same.
   */
  private readonly revFile: string;
  readonly journalFile: string;
  /** lowdb's reader of the document, loaded on the first read: start-up does not wait for it. */
  private adapterLoaded: Promise<DataFile<State>> | undefined;
  private cache: (Loaded & { key: FileKey }) | undefined;
  private readonly listeners = new Set<ChangeListener>();
  private watchers = 0;
  private watchTimer: NodeJS.Timeout | undefined;
  /** The revision token this process wrote last: files carrying it are this process's own write. */
  private ownRev: string | undefined;
  private readonly journalLimit: number;
  private readonly fsync: boolean;
  private readonly afterLargeLoad: (() => void) | undefined;
  /** Transactions of this store take the file lock one at a time: no polling against itself. */
  private lockQueue: Promise<void> = Promise.resolve();
  private readonly fileLock: StateLock;
  /** Wakes a lock wait when the lock goes (see `acquire`). */
  private dirWatcher: FSWatcher | undefined;
  private readonly lockWaiters = new Set<() => void>();

  private constructor(
    readonly dir: string,
    opts: StoreOptions,
  ) {
    this.file = join(dir, "state.json");
    this.revFile = join(dir, "state.rev");
    this.journalFile = join(dir, "state.journal");
    this.fileLock = new StateLock(this.file);
    this.journalLimit = opts.journalLimitBytes ?? JOURNAL_LIMIT_BYTES;
    this.fsync = opts.fsync ?? true;
    this.afterLargeLoad = opts.afterLargeLoad;
  }

  /**
   * Creates the directory and an empty state file if need be. The state itself is read on first
   * use, so that a server answers `initialize` before it has parsed a large state.
   */
  static async open(dir: string, opts: StoreOptions = {}): Promise<StateStore> {
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
    const store = new StateStore(dir, opts);
    await store.refuseNewer();
    return store;
  }

  /**
   * A document written by a newer version is refused at open, not at the first tool call. Its
   * version is the first key of every document this store writes: a few bytes tell, and only a
   * document written otherwise is parsed whole for it.
   */
  private async refuseNewer(): Promise<void> {
    // Unreadable: the full parse below says why.
    const head = readBytes(this.file, 0, 64) ?? "";
    const version = /^\{\s*"version"\s*:\s*(\d+)\s*,/.exec(head)?.[1];
    if (version !== undefined && Number(version) <= STATE_VERSION) return;
    migrate(await (await this.adapter()).read().catch(() => null));
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

  /**
   * The current state, frozen except for its task map, which only the store changes (task by task,
   * each task a frozen record: see StateDraft). Re-read from disk only when another writer changed
   * the files.
   */
  async read(): Promise<ReadonlyState> {
    const state = (await this.current(false)).state;
    return this.overlay ? this.overlay(state) : state;
  }

  /**
   * What this process has done but not written yet (Runtime's outcomes left for its next
   * transaction), laid over every read of this process: it reads its own writes. Transactions start
   * from the files alone.
   */
  private overlay: ((state: ReadonlyState) => ReadonlyState) | undefined;

  setOverlay(fn: (state: ReadonlyState) => ReadonlyState): void {
    this.overlay = fn;
  }

  /** The cached state while the files are as it saw them, else its tail or a fresh load. */
  private async current(inLock: boolean): Promise<Loaded> {
    const key = this.fileKey();
    const had = this.cache;
    if (had && sameKey(had.key, key)) return had;
    // A new token with the files as they were, outside the lock: a writer between its token and its
    // line (a journal holding older lines may have been emptied and refilled to the same size,
    // though). Inside the lock no writer is half-way: there it is a document rewritten in place.
    const unchanged = had && had.key.doc === key.doc && had.key.journal === key.journal;
    if (had && unchanged && !inLock && had.journalBytes === had.appliedBytes) return had;
    // Only more lines of the same generation can be read as a tail: lines of an older one (a
    // compaction caught half-way) go when the journal is emptied, and a new token with no new line
    // may be a document rewritten in place.
    if (
      had &&
      had.key.doc === key.doc &&
      had.journalBytes === had.appliedBytes &&
      key.journal > had.journalBytes
    ) {
      const tail = this.readTail(had, key);
      if (tail) return tail;
    }
    return this.load(key);
  }

  /**
   * The lines another process appended since this one last read, applied to what it has; undefined
   * when they are not simply more lines of the same generation (then the caller loads afresh).
   */
  private readTail(had: Loaded & { key: FileKey }, key: FileKey): Loaded | undefined {
    const from = Math.max(had.journalBytes - 1, 0);
    const text = readBytes(this.journalFile, from, key.journal - from);
    if (text === undefined) return undefined;
    // It must start where a line ended, or the journal was rewritten meanwhile.
    if (had.journalBytes > 0 && !text.startsWith("\n")) return undefined;
    const body = had.journalBytes > 0 ? text.slice(1) : text;
    const end = body.lastIndexOf("\n") + 1;
    const patches: Patch[] = [];
    try {
      for (const line of body.slice(0, end).split("\n")) {
        if (!line) continue;
        const entry = JSON.parse(line) as { g: number; p: Patch[] };
        if (entry.g !== had.state.generation) return undefined;
        patches.push(...entry.p);
      }
    } catch {
      return undefined;
    }
    // A generation started while the tail was read: load it whole.
    if (this.docKey() !== key.doc) return undefined;
    const bytes = Buffer.byteLength(body.slice(0, end));
    let state = had.state;
    if (patches.length) {
      const { tasks, ...rest } = had.state;
      state = freeze({ ...applyToState(rest, tasks, patches), tasks });
    }
    const loaded = {
      state,
      journalBytes: had.journalBytes + bytes,
      appliedBytes: had.appliedBytes + bytes,
    };
    this.cache = { key, ...loaded };
    if (bytes > 0 && key.rev !== this.ownRev) this.announceExternal(state);
    return loaded;
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
  private async load(key: FileKey): Promise<Loaded> {
    for (let attempt = 0; ; attempt++) {
      const snapshot = migrate(await (await this.adapter()).read());
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
      const { tasks, ...parsed } = snapshot;
      const rest = applyToState(parsed, tasks, patches);
      for (const id in tasks) frozen(tasks[id]);
      indexTasks(tasks);
      const state = freeze({ ...rest, tasks });
      const journalBytes = Buffer.byteLength(journal.slice(0, end));
      const after = this.fileKey();
      const loaded = { state, journalBytes, appliedBytes };
      if (sameKey(after, key)) {
        const had = this.cache;
        this.cache = { key, ...loaded };
        const changed =
          had !== undefined &&
          (had.appliedBytes !== appliedBytes || had.state.generation !== state.generation);
        if (changed && key.rev !== this.ownRev) this.announceExternal(state);
        // The document's text, and the state this one replaces, are garbage now: collected before
        // the work that follows grows the heap around them (VmHWM 111 -> 96 MB at 10,000 tasks).
        if (this.afterLargeLoad && sizeOf(this.file) > LARGE_DOCUMENT_BYTES) this.afterLargeLoad();
        return loaded;
      }
      if (attempt >= 4) return loaded;
      key = after;
    }
  }

  private adapter(): Promise<DataFile<State>> {
    return (this.adapterLoaded ??= import("lowdb/node").then(
      ({ DataFile }) =>
        new DataFile<State>(this.file, { parse: JSON.parse, stringify: (d) => JSON.stringify(d) }),
    ));
  }

  private announceExternal(state: ReadonlyState): void {
    const change: StateChange = { keys: new Set(), taskIds: new Set(), external: true };
    for (const l of this.listeners) l(change, state);
  }

  /**
   * Lock, re-read, apply `fn` to a draft, write if anything changed, unlock.
   * If `fn` throws, nothing is written and the error propagates: a refused call changes nothing.
   */
  async transact<T>(fn: (draft: Draft<State>) => T): Promise<T> {
    const release = await this.lock();
    let change: StateChange | undefined;
    let next: ReadonlyState | undefined;
    let result!: T;
    let flush: (() => Promise<void>) | void = undefined;
    try {
      // Inside the lock the revision token decides: every writer replaces it before writing.
      const loaded = await this.current(true);
      const tx = new StateDraft(loaded.state, loaded.state.tasks);
      result = fn(tx.draft);
      const { patches, next: rest, tasks } = tx.finish();
      if (patches.length > 0) {
        let saved: Loaded;
        try {
          const line = `${JSON.stringify({ g: rest.generation, p: patches })}\n`;
          const base = loaded.journalBytes;
          const bytes = Buffer.byteLength(line);
          if (base + bytes > this.journalLimit) {
            const all = Object.assign(Object.create(null) as Record<string, TaskRecord>, loaded.state.tasks);
            indexTasks(all);
            saved = await this.writeNextGeneration({ ...rest, tasks: withChanges(all, tasks) });
          } else {
            flush = await this.persist({ append: line, after: base });
            saved = {
              state: freeze({ ...rest, tasks: withChanges(loaded.state.tasks, tasks) }),
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
        this.cache = { key: this.fileKey(), ...saved };
        change = summarize(patches);
      }
    } finally {
      release();
    }
    // Flushed to the disk after the lock is released, so that other processes need not wait for
    // the disk; the caller is answered after it. A later writer's flush covers this line too (the
    // same file), so nothing that follows it is on the disk without it.
    if (flush) {
      await flush().catch((err: Error) => {
        throw new EoaError(
          "STATE_WRITE_FAILED",
          `could not flush the state in ${this.dir} to the disk: ${err.message}; the change is recorded but may not survive a power cut`,
          "check the disk; the call's effect stands (a retry with the same idempotency key returns it)",
          { committed: true },
        );
      });
    }
    if (change && next) for (const l of this.listeners) l(change, next);
    return result;
  }

  /** Rewrites the document with the journal folded in (the next generation) and empties the journal. */
  async compact(): Promise<void> {
    const release = await this.lock();
    try {
      const compacted = await this.writeNextGeneration((await this.current(true)).state);
      this.cache = { key: this.fileKey(), ...compacted };
    } finally {
      release();
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
   * disk would). The revision token goes first: readers that see it change re-read. Synchronous:
   * the small writes take microseconds, where a thread-pool round trip costs a fraction of a
   * millisecond. An append returns its flush to the disk, which the caller makes after unlocking;
   * a generation is flushed here, before the journal is emptied.
   */
  private persist(op: { append: string; after: number } | { compact: State }): (() => Promise<void>) | void {
    this.ownRev = randomUUID();
    writeToken(this.revFile, this.ownRev);
    if ("compact" in op) {
      // Durable before the journal is emptied: a power cut in between leaves the old generation's
      // lines, ignored beside the new document, never an emptied journal beside the old one.
      const tmp = join(this.dir, ".state.json.tmp");
      writeDurably(tmp, JSON.stringify(op.compact), "w", this.fsync);
      renameSync(tmp, this.file);
      writeDurably(this.journalFile, "", "w", this.fsync);
      if (this.fsync) fsyncDir(this.dir);
      return;
    }
    // Whatever follows the last whole line is a crash's remnant: cut it before appending.
    const size = sizeOf(this.journalFile);
    if (size !== op.after && size >= 0) truncateSync(this.journalFile, op.after);
    writeDurably(this.journalFile, op.append, "a", false);
    if (!this.fsync) return;
    return async () => {
      await syncData(this.journalFile);
      // A journal just created is an entry of the directory, durable only with it.
      if (size < 0) fsyncDir(this.dir);
    };
  }

  /** The files' identity, from three tiny synchronous reads (see `persist`). */
  private fileKey(): FileKey {
    let rev = "none";
    try {
      rev = readFileSync(this.revFile, "utf8");
    } catch {
      // No token yet: a state directory no transaction has written.
    }
    const journal = Math.max(sizeOf(this.journalFile), 0);
    return { rev, doc: this.docKey(), journal };
  }

  /** The document's identity: one `stat`, where a tail read only asks whether a generation began. */
  private docKey(): string {
    try {
      const s = statSync(this.file);
      return `${s.ino}:${s.mtimeMs}:${s.size}`;
    } catch {
      return "missing";
    }
  }

  /** The file lock, taken by this store's transactions one at a time. */
  private async lock(): Promise<() => void> {
    const turn = this.lockQueue;
    let done!: () => void;
    this.lockQueue = new Promise((resolve) => (done = resolve));
    await turn;
    try {
      const release = await this.acquire();
      return () => {
        try {
          release();
        } catch {
          // Taken over as stale meanwhile: nothing of this process's is left to remove.
        } finally {
          done();
        }
      };
    } catch (err) {
      done();
      throw err;
    }
  }

  /**
   * Takes the lock, waiting while another process holds it. A wait ends when the lock goes (the
   * state directory is watched) or, at the latest, after a short backoff: a lock left by a killed
   * process is taken over once stale (see StateLock). While it waits, the store reads what the
   * holder before it wrote, so that inside the lock there is little left to catch up on.
   */
  private async acquire(): Promise<() => void> {
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (let backoff = 2; ; backoff = Math.min(backoff * 2, LOCK_BACKOFF_MAX_MS)) {
      const release = this.fileLock.tryTake();
      if (release) return release;
      if (Date.now() > deadline) {
        throw new EoaError(
          "STATE_LOCKED",
          `the state file ${this.file} stayed locked by another eoa-mcp process (${this.fileLock.holder() ?? "an older version"}) for ${LOCK_WAIT_MS / 1000} s`,
          `retry in a moment; if no other eoa-mcp process is running, delete ${this.fileLock.path}`,
        );
      }
      // Listened for before the read, which the holder may finish during.
      const released = this.lockReleased(backoff);
      // A failed read is the transaction's to report, inside the lock.
      await this.current(false).catch(() => undefined);
      await released;
    }
  }

  private lockReleased(ms: number): Promise<void> {
    if (!this.dirWatcher) {
      try {
        this.dirWatcher = watch(this.dir, (_event, name) => {
          // Its creation (another process taking it) says the same name: only a free lock wakes.
          if (name !== "state.json.lock" || !this.lockWaiters.size || this.fileLock.taken()) return;
          for (const wake of this.lockWaiters) wake();
        });
        this.dirWatcher.on("error", () => undefined).unref();
      } catch {
        // No file system events here: the backoff alone.
      }
    }
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.lockWaiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.lockWaiters.add(wake);
    });
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
/** How long a transaction waits for another process's lock before it gives up. */
const LOCK_WAIT_MS = 30_000;
/** The longest a lock wait sleeps between tries when no file system event wakes it. */
const LOCK_BACKOFF_MAX_MS = 50;

function sameKey(a: FileKey, b: FileKey): boolean {
  return a.rev === b.rev && a.doc === b.doc && a.journal === b.journal;
}

/** The file's size, or -1 when it does not exist. */
/** A document above this size is followed by `afterLargeLoad` when read whole. */
const LARGE_DOCUMENT_BYTES = 1 << 20;

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return -1;
  }
}

/** `tasks` with a transaction's changes put in (in place: see StateDraft). */
function withChanges(
  tasks: Record<string, TaskRecord>,
  changes: Map<string, TaskRecord | undefined>,
): Record<string, TaskRecord> {
  for (const [id, task] of changes) {
    if (task === undefined) delete tasks[id];
    else tasks[id] = task;
    taskChanged(tasks, id, task);
  }
  return tasks;
}

/**
 * Writes the revision token over the old one, in place: every token has the same length. Replacing
 * the file's contents (truncate, then write) made ext4 start writing the file back at its close
 * (its guard for files rewritten that way), 0.2 ms per transaction inside the lock, 1-2 ms with
 * four processes. A reader catching the write half-way reads a token that is neither, and re-reads.
 */
function writeToken(file: string, token: string): void {
  const fd = openSync(file, constants.O_WRONLY | constants.O_CREAT);
  try {
    writeSync(fd, token, 0);
    // Longer than a token: another writer's (a test's) leftover.
    if (fstatSync(fd).size > Buffer.byteLength(token)) ftruncateSync(fd, Buffer.byteLength(token));
  } finally {
    closeSync(fd);
  }
}

/** Writes `text` to `file` (flag "w" replaces, "a" appends) and, with `sync`, to the disk. */
function writeDurably(file: string, text: string, flag: "w" | "a", sync: boolean): void {
  const fd = openSync(file, flag);
  try {
    if (text) writeSync(fd, text);
    if (sync) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Flushes `file`'s data to the disk, off the event loop (a flush takes milliseconds). */
async function syncData(file: string): Promise<void> {
  const fd = openSync(file, "r");
  try {
    await new Promise<void>((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
  } finally {
    closeSync(fd);
  }
}

/** `length` bytes of `file` from `position` (fewer at its end); undefined when it cannot be read. */
function readBytes(file: string, position: number, length: number): string | undefined {
  try {
    const fd = openSync(file, "r");
    try {
      const buf = Buffer.allocUnsafe(length); // only the bytes read are used
      return buf.subarray(0, readSync(fd, buf, 0, length, position)).toString("utf8");
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
}

/** A rename or a new file is durable once its directory is. */
function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
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
