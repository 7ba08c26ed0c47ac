import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { appendFile, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { assertBuilt, CLI } from "./fixtures/cli.js";
import { EoaError } from "../src/errors.js";
import type { Draft } from "immer";
import { tasksInPlace, tasksWhere } from "../src/state/records.js";
import { STATE_VERSION, type State, type TaskRecord } from "../src/state/schema.js";
import { StateLock } from "../src/state/lock.js";
import { readStateDir, StateStore, type StateChange } from "../src/state/store.js";

const ROOT = join(import.meta.dirname, "..");

/**
 * File system faults for the state file's creation: "crash" makes the next exclusive create make
 * its file and die before writing a byte, as a kill would; "read-only" refuses every write; "no-links"
 * is a file system without hard links.
 */
const fsFault = vi.hoisted(() => ({ mode: null as null | "crash" | "read-only" | "no-links" }));
vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const fail = (code: string) => Object.assign(new Error(`${code}: simulated`), { code });
  const writeFile = async (...args: Parameters<typeof real.writeFile>) => {
    const opts = args[2];
    if (fsFault.mode === "read-only") throw fail("EACCES");
    if (fsFault.mode === "crash" && typeof opts === "object" && opts?.flag === "wx") {
      fsFault.mode = null;
      await real.writeFile(args[0], "", { flag: "wx" });
      throw fail("EIO");
    }
    return real.writeFile(...args);
  };
  const link = async (...args: Parameters<typeof real.link>) => {
    if (fsFault.mode === "read-only") throw fail("EACCES");
    if (fsFault.mode === "no-links") throw fail("ENOSYS");
    return real.link(...args);
  };
  return { ...real, writeFile, link, default: { ...real, writeFile, link } };
});

/** Which files were flushed to the disk, in order: "fdatasync <file>", "fsync <file or dir>". */
const flushed = vi.hoisted(() => [] as string[]);
vi.mock("node:fs", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs")>();
  const paths = new Map<number, string>();
  const openSync = (...args: Parameters<typeof real.openSync>) => {
    const fd = real.openSync(...args);
    paths.set(fd, String(args[0]));
    return fd;
  };
  const fsyncSync = (fd: number) => {
    flushed.push(`fsync ${paths.get(fd)}`);
    real.fsyncSync(fd);
  };
  const fdatasync = (fd: number, done: (err: NodeJS.ErrnoException | null) => void) => {
    flushed.push(`fdatasync ${paths.get(fd)}`);
    real.fdatasync(fd, done);
  };
  const fs = { ...real, openSync, fsyncSync, fdatasync };
  return { ...fs, default: fs };
});

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "eoa-store-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const onDisk = (d = dir): Promise<State> => readStateDir(d);
/** The state directory's files but this process's lock owner file (lock.ts), there until it exits. */
const stateFiles = async () => (await readdir(dir)).filter((f) => !f.startsWith(".lock-owner-")).sort();
/** Both files that make the state: the document and its journal. */
const bytesOnDisk = async (d = dir) =>
  `${await readFile(join(d, "state.json"), "utf8")}\n--journal--\n${await readFile(join(d, "state.journal"), "utf8").catch(() => "")}`;

describe("StateStore", () => {
  it("creates a valid, versioned state file on open", async () => {
    const store = await StateStore.open(join(dir, "nested", "state"));
    const doc = await onDisk(join(dir, "nested", "state"));
    expect(doc.version).toBe(STATE_VERSION);
    expect(doc.tasks).toEqual({});
    expect((await store.read()).current_session_id).toBeNull();
  });

  it("a crash while creating the file leaves none that cannot be read: the next start creates it", async () => {
    fsFault.mode = "crash";
    await expect(StateStore.open(dir)).rejects.toMatchObject({ code: "STATE_DIR_UNWRITABLE" });
    expect(fsFault.mode).toBeNull();
    expect(await readdir(dir)).toEqual([]);
    const store = await StateStore.open(dir);
    expect((await store.read()).version).toBe(STATE_VERSION);
    expect((await onDisk()).version).toBe(STATE_VERSION);
    expect(await readdir(dir)).toEqual(["state.json"]);
  });

  it("opens an existing state directory it cannot write to, for reading", async () => {
    await (
      await StateStore.open(dir)
    ).transact((d) => {
      d.cycle.count = 7;
    });
    fsFault.mode = "read-only";
    try {
      expect((await (await StateStore.open(dir)).read()).cycle.count).toBe(7);
      expect((await readStateDir(dir)).cycle.count).toBe(7);
    } finally {
      fsFault.mode = null;
    }
  });

  it("creates the file in place on a file system without hard links", async () => {
    fsFault.mode = "no-links";
    try {
      expect((await (await StateStore.open(dir)).read()).version).toBe(STATE_VERSION);
    } finally {
      fsFault.mode = null;
    }
    expect(await readdir(dir)).toEqual(["state.json"]);
    expect((await onDisk()).version).toBe(STATE_VERSION);
  });

  it("refuses a state directory it cannot create with STATE_DIR_UNWRITABLE", async () => {
    await writeFile(join(dir, "a-file"), "");
    await expect(StateStore.open(join(dir, "a-file", "state"))).rejects.toMatchObject({
      code: "STATE_DIR_UNWRITABLE",
      nextStep: expect.stringContaining("EOA_STATE_DIR"),
    });
  });

  it("transact appends the change to the journal, leaving the document as it was", async () => {
    const store = await StateStore.open(dir);
    const before = await readFile(store.file, "utf8");
    const result = await store.transact((draft) => {
      draft.current_session_id = "2025-12-30-session-01";
      return "returned";
    });
    expect(result).toBe("returned");
    expect((await onDisk()).current_session_id).toBe("2025-12-30-session-01");
    expect(await readFile(store.file, "utf8")).toBe(before);
    const lines = (await readFile(store.journalFile, "utf8")).trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      g: 0,
      p: [{ op: "replace", path: ["current_session_id"] }],
    });
    expect(await stateFiles()).toEqual(["state.journal", "state.json", "state.rev"]);
  });

  it("compacts past the journal limit: the document is replaced (temp file + rename) with the next generation and the journal emptied", async () => {
    const store = await StateStore.open(dir, { journalLimitBytes: 1 });
    const before = await stat(store.file);
    await store.transact((draft) => {
      draft.current_session_id = "compacted";
    });
    const doc = JSON.parse(await readFile(store.file, "utf8")) as State;
    expect(doc).toMatchObject({ current_session_id: "compacted", generation: 1 });
    // A rename puts a new inode in place; an in-place write would keep the old one.
    expect((await stat(store.file)).ino).not.toBe(before.ino);
    expect(await readFile(store.journalFile, "utf8")).toBe("");
    expect(await stateFiles()).toEqual(["state.journal", "state.json", "state.rev"]);
    expect((await onDisk()).current_session_id).toBe("compacted");
  });

  it("flushes to the disk each journal append, and a new generation's document and directory before it empties the journal", async () => {
    const store = await StateStore.open(dir, { journalLimitBytes: 400 });
    flushed.length = 0;
    await store.transact((draft) => {
      draft.current_session_id = "one";
    });
    // The journal was created by this append: its directory entry is flushed too.
    expect(flushed).toEqual([`fdatasync ${store.journalFile}`, `fsync ${dir}`]);
    flushed.length = 0;
    await store.transact((draft) => {
      draft.current_session_id = "two";
    });
    expect(flushed).toEqual([`fdatasync ${store.journalFile}`]);
    flushed.length = 0;
    await store.transact((draft) => {
      draft.current_session_id = "x".repeat(400);
    });
    expect(flushed).toEqual([
      `fsync ${join(dir, ".state.json.tmp")}`,
      `fsync ${store.journalFile}`,
      `fsync ${dir}`,
    ]);
    expect((await onDisk()).generation).toBe(1);
  });

  it("ignores journal lines of an older generation and a line cut short by a crash, and cuts the remnant before appending", async () => {
    const store = await StateStore.open(dir);
    await store.transact((draft) => {
      draft.counters.decision = 1;
    });
    // A compaction that crashed before emptying the journal leaves generation-0 lines behind a
    // generation-1 document; a crash mid-append leaves half a line.
    const doc = JSON.parse(await readFile(store.file, "utf8")) as State;
    await writeFile(
      store.file,
      JSON.stringify({ ...doc, generation: 1, counters: { ...doc.counters, decision: 5 } }),
    );
    await appendFile(store.journalFile, '{"g":1,"p":[{"op":"replace","path":["counters","inc');
    const fresh = await StateStore.open(dir);
    expect((await fresh.read()).counters.decision).toBe(5);
    await fresh.transact((draft) => {
      draft.counters.incident = 3;
    });
    expect(await onDisk()).toMatchObject({ counters: { decision: 5, incident: 3 } });
    for (const line of (await readFile(store.journalFile, "utf8")).trim().split("\n"))
      expect(() => JSON.parse(line)).not.toThrow();
  });

  it("a transaction that throws changes nothing, on disk or in memory, and the error propagates", async () => {
    const store = await StateStore.open(dir);
    await store.transact((draft) => {
      draft.counters.decision = 7;
    });
    const bytes = await bytesOnDisk();
    const stateBefore = await store.read();
    const refusal = new EoaError("REFUSED", "no", "do something else");
    await expect(
      store.transact((draft) => {
        draft.counters.decision = 99;
        draft.current_session_id = "half-done";
        throw refusal;
      }),
    ).rejects.toBe(refusal);
    expect(await bytesOnDisk()).toBe(bytes);
    const after = await store.read();
    expect(after.counters.decision).toBe(7);
    expect(after.current_session_id).toBeNull();
    expect(after).toEqual(stateBefore);
    // The lock was released: the next transaction goes through.
    await store.transact((draft) => {
      draft.counters.decision = 8;
    });
    expect((await onDisk()).counters.decision).toBe(8);
  });

  it("a task's entries filtered and assigned back, before anything else in the task is written, stay plain data", async () => {
    const store = await StateStore.open(dir);
    const entries = Array.from({ length: 5 }, (_, i) => ({ at: `t${i}`, event: "progress" }));
    await store.transact((d) => {
      d.tasks["T-1"] = { task_id: "T-1", history: entries } as unknown as TaskRecord;
    });
    // The first write to the task is an array read through its view (found by the history cap).
    await store.transact((d) => {
      const t = d.tasks["T-1"]!;
      t.history = t.history.filter((_, i) => i % 2 === 0);
    });
    await store.transact((d) => {
      d.tasks["T-1"]!.history.push({ at: "t9", event: "progress" });
    });
    expect((await store.read()).tasks["T-1"]!.history.map((h) => h.at)).toEqual(["t0", "t2", "t4", "t9"]);
    expect((await onDisk()).tasks["T-1"]!.history).toHaveLength(4);
  });

  it("returns frozen state: a change outside a transaction is impossible", async () => {
    const store = await StateStore.open(dir);
    const state = await store.read();
    expect(() => {
      (state as State).current_session_id = "sneaky";
    }).toThrow();
  });

  it("tells listeners which top-level keys and which task ids a transaction touched", async () => {
    const store = await StateStore.open(dir);
    const events: StateChange[] = [];
    const off = store.onChange((change) => events.push(change));
    await store.transact((draft) => {
      draft.tasks["GH-101"] = { task_id: "GH-101" } as State["tasks"][string];
      draft.tasks["GH-102"] = { task_id: "GH-102" } as State["tasks"][string];
      draft.counters.decision++;
    });
    expect(events).toHaveLength(1);
    expect([...events[0]!.keys].sort()).toEqual(["counters", "tasks"]);
    expect([...events[0]!.taskIds].sort()).toEqual(["GH-101", "GH-102"]);

    await store.transact((draft) => {
      draft.tasks["GH-102"]!.title = "Password Reset";
    });
    expect([...events[1]!.keys]).toEqual(["tasks"]);
    expect([...events[1]!.taskIds]).toEqual(["GH-102"]);

    // A transaction that changes nothing is not an event (and writes nothing).
    const bytes = await readFile(store.file, "utf8");
    await store.transact((draft) => draft.tasks["GH-101"]?.task_id);
    expect(events).toHaveLength(2);
    expect(await readFile(store.file, "utf8")).toBe(bytes);

    off();
    await store.transact((draft) => {
      draft.cycle.count++;
    });
    expect(events).toHaveLength(2);
  });

  it("refuses a state file written by a newer version and leaves it untouched", async () => {
    const newer = JSON.stringify({ version: STATE_VERSION + 1, future: true });
    await writeFile(join(dir, "state.json"), newer);
    await expect(StateStore.open(dir)).rejects.toThrow(/newer than this server understands/);
    expect(await readFile(join(dir, "state.json"), "utf8")).toBe(newer);
  });

  it("fills in top-level keys an older or partial document lacks", async () => {
    await writeFile(join(dir, "state.json"), JSON.stringify({ version: 1, current_session_id: "s" }));
    const store = await StateStore.open(dir);
    const state = await store.read();
    expect(state.current_session_id).toBe("s");
    expect(state.escalations).toEqual([]);
    expect(state.counters).toEqual({ escalation: 0, decision: 0, effect: 0, incident: 0 });
  });

  it("serves reads from memory until another writer changes the file, then re-reads it", async () => {
    const a = await StateStore.open(dir);
    const b = await StateStore.open(dir);
    // Every listener hears of another's write, whoever's read noticed it (one per MCP session).
    const heard: StateChange[][] = [[], []];
    for (const h of heard) a.onChange((change) => h.push(change));
    const first = await a.read();
    expect(await a.read()).toBe(first);
    expect(heard).toEqual([[], []]);

    await b.transact((draft) => {
      draft.current_session_id = "written-by-b";
    });
    const second = await a.read();
    expect(second).not.toBe(first);
    expect(second.current_session_id).toBe("written-by-b");
    expect(await a.read()).toBe(second);
    for (const h of heard) expect(h).toEqual([expect.objectContaining({ external: true })]);
    // Its own writes are announced as what they touched, not as another's.
    await a.transact((draft) => {
      draft.current_session_id = "written-by-a";
    });
    await a.read();
    for (const h of heard) expect(h.map((c) => c.external ?? false)).toEqual([true, false]);
  });

  /** `a` has read the state and keeps what it hears; `b` writes as another process would. */
  async function twoStores() {
    const a = await StateStore.open(dir);
    const b = await StateStore.open(dir);
    const heard: StateChange[] = [];
    a.onChange((change) => heard.push(change));
    const before = await a.read();
    const write = (id: string) =>
      b.transact((draft) => {
        draft.current_session_id = id;
      });
    return { a, b, heard, before, write };
  }

  it("watch: one poll for every watcher notices another's write; none once the last watcher stops", async () => {
    const { a, heard, write } = await twoStores();
    const stops = [a.watch(10), a.watch(10)];
    await write("one");
    await vi.waitFor(() => expect(heard).toHaveLength(1), { timeout: 10_000 });
    stops[0]!();
    stops[0]!(); // a second stop of the same watcher counts once
    await write("two");
    await vi.waitFor(() => expect(heard).toHaveLength(2), { timeout: 10_000 });
    stops[1]!();
    await write("three");
    await sleep(100);
    expect(heard).toHaveLength(2);
    expect(heard.every((c) => c.external)).toBe(true);
  });

  it("announces another's write once: not when a read catches it between its token and its append", async () => {
    const { a, b, heard, before, write } = await twoStores();
    // What a writer does first (persist): a new revision token, the journal not yet appended.
    await writeFile(join(dir, "state.rev"), "another-process-mid-write");
    expect(await a.read()).toEqual(before);
    expect(heard).toEqual([]);
    await write("written-by-b");
    expect((await a.read()).current_session_id).toBe("written-by-b");
    expect(heard).toEqual([expect.objectContaining({ external: true })]);
    // A compaction starts a generation: announced even with the journal as long as before (empty).
    await b.compact();
    await a.read();
    expect(heard).toHaveLength(2);
    await b.compact();
    await a.read();
    expect(heard).toHaveLength(3);
  });

  it("writes its revision token over a longer one whole: its own writes are not taken for another's", async () => {
    const { a, heard } = await twoStores();
    // Tokens are written in place; what was there before may be longer than one.
    await writeFile(join(dir, "state.rev"), "x".repeat(100));
    await a.transact((draft) => {
      draft.current_session_id = "mine";
    });
    expect((await readFile(join(dir, "state.rev"), "utf8")).length).toBe(36);
    expect((await a.read()).current_session_id).toBe("mine");
    expect(heard.map((c) => c.external ?? false)).toEqual([false]);
  });

  it("announces another's compaction once, and a change after it, when a read catches it half-way", async () => {
    const { a, b, heard, write } = await twoStores();
    const journal = join(dir, "state.journal");
    /** b compacts, and a reads between its new document and its emptied journal. */
    const compactCaughtHalfWay = async () => {
      const lines = await readFile(journal, "utf8");
      await b.compact();
      await writeFile(journal, lines);
      await a.read();
      await writeFile(journal, "");
    };

    await write("s-1");
    await a.read();
    await compactCaughtHalfWay();
    expect(heard).toHaveLength(2); // the write, and the new generation
    expect((await a.read()).current_session_id).toBe("s-1");
    expect(heard).toHaveLength(2); // the journal emptied: nothing new

    // The next write's line is as long as the one the half-way read saw: a change all the same.
    await write("s-2");
    await compactCaughtHalfWay();
    expect(heard).toHaveLength(3);
    await write("s-3");
    expect((await a.read()).current_session_id).toBe("s-3");
    expect(heard).toHaveLength(4);
    expect(heard.every((c) => c.external)).toBe(true);
  });

  it("announces another's write that a read notices while this process waits for the lock", async () => {
    const { a, heard, write } = await twoStores();
    await write("written-by-b");
    // Someone holds the lock, so a's transaction waits; a poll reads meanwhile and sees b's write.
    const release = new StateLock(join(dir, "state.json"), "another-process").tryTake()!;
    const waiting = a.transact((draft) => {
      draft.cycle.count += 1;
    });
    await sleep(50);
    expect((await a.read()).current_session_id).toBe("written-by-b");
    release();
    await waiting;
    expect(heard.map((c) => c.external ?? false)).toEqual([true, false]);
  });

  it("re-reads inside the lock when another writer changed the revision token, even with the file's identity unchanged", async () => {
    // Every change compacts here, so that the document itself holds it.
    const a = await StateStore.open(dir, { journalLimitBytes: 1 });
    await a.transact((draft) => {
      draft.current_session_id = "aaaa";
    });
    const pinned = new Date("2025-12-30T22:00:00.500Z");
    await utimes(a.file, pinned, pinned);
    expect((await a.read()).current_session_id).toBe("aaaa");
    // Another writer's change that leaves the file's identity as it was, as a recycled inode written
    // within one tick of the file system's clock does. Every writer replaces the revision token first.
    const text = (await readFile(a.file, "utf8")).replace('"aaaa"', '"bbbb"');
    await writeFile(join(dir, "state.rev"), "another-writer");
    await writeFile(a.file, text);
    await utimes(a.file, pinned, pinned);
    await a.transact((draft) => {
      draft.counters.effect++;
    });
    const doc = await onDisk();
    expect(doc.current_session_id).toBe("bbbb");
    expect(doc.counters.effect).toBe(1);
    expect((await a.read()).current_session_id).toBe("bbbb");
  });

  it("reads another's write from the journal's tail: what it did not touch stays as it was", async () => {
    const a = await StateStore.open(dir);
    const b = await StateStore.open(dir);
    await a.transact((draft) => {
      for (const id of ["A", "B"])
        draft.tasks[id] = { task_id: id, title: id, history: [] } as unknown as TaskRecord;
    });
    const before = await a.read();
    const untouched = before.tasks["B"];
    await b.transact((draft) => {
      draft.tasks["A"]!.title = "changed by b";
      draft.counters.decision = 3;
    });
    const after = await a.read();
    expect(after.tasks["A"]!.title).toBe("changed by b");
    expect(after.counters.decision).toBe(3);
    // A fresh parse of the document would have made a new object of every task.
    expect(after.tasks["B"]).toBe(untouched);
    expect(after.sessions).toBe(before.sessions);
    expect(Object.isFrozen(after.tasks["A"])).toBe(true);
    expect(after).toEqual(await onDisk());
  });

  it("a change to one task copies that task only; every record it hands out is frozen", async () => {
    const store = await StateStore.open(dir);
    await store.transact((draft) => {
      for (const id of ["A", "B"])
        draft.tasks[id] = { task_id: id, title: id, history: [], depends_on: [] } as unknown as TaskRecord;
    });
    const before = await store.read();
    const [a, b] = [before.tasks["A"]!, before.tasks["B"]];
    const walked: string[] = [];
    await store.transact((draft) => {
      // Reading every task, nested values included, drafts and copies none of them.
      for (const t of Object.values(draft.tasks)) walked.push(`${t.task_id}:${[...t.depends_on].length}`);
      draft.tasks["A"]!.history.push({ at: "2025-12-30T22:00:00.000Z", event: "assigned" });
    });
    expect(walked).toEqual(["A:0", "B:0"]);
    const after = await store.read();
    expect(after.tasks["B"]).toBe(b);
    expect(after.tasks["A"]!.history).toHaveLength(1);
    // The record read before is replaced, not changed. (The map itself is the store's one map.)
    expect(a.history).toHaveLength(0);
    expect(after.tasks["A"]).not.toBe(a);
    expect(Object.isFrozen(after.tasks["A"]!.history)).toBe(true);
    const lines = (await readFile(store.journalFile, "utf8")).trim().split("\n");
    expect(JSON.parse(lines.at(-1)!)).toEqual({
      g: 0,
      p: [{ op: "add", path: ["tasks", "A", "history", 0], value: expect.any(Object) }],
    });
  });

  it("calls afterLargeLoad once a document over 1 MB is read whole, not for a small one", async () => {
    const calls: string[] = [];
    const writer = await StateStore.open(dir);
    await writer.transact((draft) => {
      draft.tasks["A"] = { task_id: "A", title: "A", history: [] } as unknown as TaskRecord;
    });
    await writer.compact();
    await (await StateStore.open(dir, { afterLargeLoad: () => calls.push("small") })).read();
    await writer.transact((draft) => {
      for (let i = 0; i < 300; i++)
        draft.tasks[`T-${i}`] = {
          task_id: `T-${i}`,
          title: "x".repeat(4_000),
          history: [],
        } as unknown as TaskRecord;
    });
    await writer.compact();
    const reader = await StateStore.open(dir, { afterLargeLoad: () => calls.push("large") });
    expect(Object.keys((await reader.read()).tasks)).toHaveLength(301);
    expect(calls).toEqual(["large"]);
  });

  it("a state loaded from the files is frozen through and through, tasks and the rest", async () => {
    const store = await StateStore.open(dir);
    await store.transact((draft) => {
      draft.tasks["A"] = {
        task_id: "A",
        history: [{ at: "2025-12-30T22:00:00.000Z", event: "created" }],
        escalation_rules: { on_blocked: "report" },
      } as unknown as TaskRecord;
      draft.sessions.push({ id: "S", task_ids: ["A"] } as unknown as State["sessions"][number]);
    });
    await store.compact();
    const loaded = await (await StateStore.open(dir)).read();
    for (const value of [
      loaded.tasks["A"],
      loaded.tasks["A"]!.history,
      loaded.tasks["A"]!.history[0],
      loaded.tasks["A"]!.escalation_rules,
      loaded.sessions,
      loaded.sessions[0],
      loaded.sessions[0]!.task_ids,
    ])
      expect(Object.isFrozen(value)).toBe(true);
  });

  it("re-reads inside the lock: two stores in one process never lose each other's updates", async () => {
    const a = await StateStore.open(dir);
    const b = await StateStore.open(dir);
    await a.read();
    await b.read();
    await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        (i % 2 ? a : b).transact((draft) => {
          draft.counters.effect++;
        }),
      ),
    );
    expect((await onDisk()).counters.effect).toBe(40);
  });
});

describe("tasksWhere and tasksInPlace", () => {
  const task = (id: string, title: string) =>
    ({ task_id: id, title, status: "todo" }) as unknown as TaskRecord;
  const all = () => true;

  it("sees, inside a transaction, the tasks as they stand: changed, added and untouched ones", async () => {
    const store = await StateStore.open(dir);
    await store.transact((d) => {
      d.tasks["A"] = task("A", "a");
      d.tasks["B"] = task("B", "b");
    });
    const before = (await store.read()).tasks["B"];
    let seen: TaskRecord[] = [];
    await store.transact((d) => {
      expect(tasksWhere(d, all).map((t) => t.title)).toEqual(["a", "b"]); // nothing drafted yet
      d.tasks["A"]!.title = "a changed";
      d.tasks["C"] = task("C", "c");
      seen = tasksWhere(d, all);
      // A plain copy: what the transaction does next does not reach it.
      d.tasks["A"]!.title = "a changed twice";
    });
    expect(seen.map((t) => t.title)).toEqual(["a changed", "b", "c"]);
    expect(seen[1]).toBe(before); // an untouched task is not copied
    expect(Object.values((await store.read()).tasks).map((t) => t.title)).toEqual([
      "a changed twice",
      "b",
      "c",
    ]);
  });

  it("copies a task this transaction put in as a plain object, drafts inside it included", async () => {
    const store = await StateStore.open(dir);
    await store.transact((d) => {
      d.tasks["A"] = { ...task("A", "a"), depends_on: ["X"] };
    });
    await store.transact((d) => {
      d.tasks["C"] = task("C", "c");
      // A spread of a draft: B's depends_on is A's drafted array.
      d.tasks["B"] = { ...d.tasks["A"]!, task_id: "B" };
      const now = tasksWhere(d, all);
      d.tasks["C"]!.title = "c changed later";
      d.tasks["B"]!.depends_on.push("Y");
      expect(now.find((t) => t.task_id === "C")!.title).toBe("c");
      const b = now.find((t) => t.task_id === "B")!;
      expect(b.depends_on).toEqual(["X"]);
      expect(() => structuredClone(b)).not.toThrow();
    });
  });

  it("gives only the tasks picked, each read in place to pick it", async () => {
    const store = await StateStore.open(dir);
    await store.transact((d) => {
      for (const id of ["A", "B", "C"]) d.tasks[id] = task(id, id.toLowerCase());
    });
    await store.transact((d) => {
      d.tasks["B"]!.status = "in-progress";
      d.tasks["C"]!.title = "c changed";
      const picked = tasksWhere(d, (t) => t.status === "in-progress");
      expect(picked.map((t) => t.task_id)).toEqual(["B"]);
      d.tasks["B"]!.status = "ai-review";
      expect(picked[0]!.status).toBe("in-progress");
    });
  });

  it("reads the tasks in place: a changed task is the transaction's own, seen as it changes", async () => {
    const store = await StateStore.open(dir);
    await store.transact((d) => {
      d.tasks["A"] = task("A", "a");
      d.tasks["B"] = task("B", "b");
    });
    const committed = (await store.read()).tasks["B"];
    await store.transact((d) => {
      d.tasks["A"]!.title = "a changed";
      const [a, b] = tasksInPlace(d);
      expect(b).toBe(committed);
      d.tasks["A"]!.title = "a changed twice";
      expect(a!.title).toBe("a changed twice");
    });
  });

  it("reads a plain (not drafted) state as well", () => {
    const s = { tasks: { A: task("A", "a") } } as unknown as Draft<State>;
    expect(tasksWhere(s, all).map((t) => t.task_id)).toEqual(["A"]);
    expect(tasksInPlace(s).map((t) => t.task_id)).toEqual(["A"]);
  });
});

describe("two server processes on one state directory", () => {
  const N = 200;

  function writer(label: string) {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", join(ROOT, "test/fixtures/store-writer.ts"), dir, String(N), label],
      { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<{ code: number | null; stderr: string }>((resolve) =>
      child.on("exit", (code) => resolve({ code, stderr })),
    );
    return { child, exited };
  }

  it(`lose no update when each runs ${N} transactions at the same time`, async () => {
    await StateStore.open(dir);
    const a = writer("a");
    const b = writer("b");
    try {
      // Both processes are loaded and waiting; then they start together.
      while (!(existsSync(join(dir, "ready-a")) && existsSync(join(dir, "ready-b")))) await sleep(10);
      await writeFile(join(dir, "go"), "");
      const results = await Promise.all([a.exited, b.exited]);
      expect(results).toEqual([
        { code: 0, stderr: "" },
        { code: 0, stderr: "" },
      ]);
    } finally {
      a.child.kill();
      b.child.kill();
    }

    const state = await onDisk();
    // Every increment counted: half of each writer's transactions bump the counter.
    expect(state.counters.incident).toBe(N);
    expect(state.counters.decision).toBe(N);
    // Every append present, once, with a unique id.
    const outcomes = state.decisions.map((d) => d.outcome).sort();
    const expected = ["a", "b"]
      .flatMap((l) => Array.from({ length: N / 2 }, (_, k) => `${l}-${2 * k + 1}`))
      .sort();
    expect(outcomes).toEqual(expected);
    expect(new Set(state.decisions.map((d) => d.id)).size).toBe(N);
    // Each writer's own appends are in its order.
    for (const l of ["a", "b"]) {
      const mine = state.decisions.filter((d) => d.rule === l).map((d) => (d.inputs as { i: number }).i);
      expect(mine).toEqual([...mine].sort((x, y) => x - y));
    }
    // The lock directory is gone and no temp file is left behind.
    expect((await readdir(dir)).filter((f) => f.startsWith("state.json.lock") || f.endsWith(".tmp"))).toEqual(
      [],
    );
  });
});

describe("a server's start-up", () => {
  it("answers initialize before it reads the state: a held lock delays the first tool call, not the connection", async () => {
    assertBuilt();
    await StateStore.open(dir);
    // Another process holds the state: reading it (the roster sync) must wait.
    const release = new StateLock(join(dir, "state.json"), "another-process").tryTake()!;
    const client = new Client({ name: "start-up", version: "1" });
    try {
      await client.connect(
        new StdioClientTransport({
          command: process.execPath,
          args: [CLI],
          env: { PATH: process.env.PATH ?? "", HOME: dir, EOA_STATE_DIR: dir, EOA_LOG_LEVEL: "error" },
          stderr: "ignore",
        }),
      );
      // Connected: `initialize` was answered with the state locked. What reads the state waits.
      let answered = false;
      const call = client.readResource({ uri: "eoa://session" }).then((r) => {
        answered = true;
        return r;
      });
      await sleep(200); // a chance to answer too early, which it must not take
      expect(answered).toBe(false);
      release();
      expect((await call).contents).toHaveLength(1);
    } finally {
      release();
      await client.close();
    }
  });
});
