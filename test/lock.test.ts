import { spawnSync } from "node:child_process";
import { lstatSync, lutimesSync, mkdirSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { STALE_MS, StateLock } from "../src/state/lock.js";

let dir: string;
let file: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "eoa-lock-"));
  file = join(dir, "state.json");
});
afterEach(async () => {
  vi.useRealTimers();
  await rm(dir, { recursive: true, force: true });
});

/** Makes `path` (a link or a directory) look as old as a lock its holder stopped refreshing. */
function age(path: string): void {
  const then = new Date(Date.now() - STALE_MS - 1_000);
  if (lstatSync(path).isSymbolicLink()) lutimesSync(path, then, then);
  else utimesSync(path, then, then);
}

describe("the state directory's lock", () => {
  it("is held by one at a time, and names its holder", () => {
    const a = new StateLock(file, "a");
    const b = new StateLock(file, "b");
    const release = a.tryTake()!;
    expect(release).toBeDefined();
    expect(a.holder()).toBe("a");
    expect(b.tryTake()).toBeUndefined();
    expect(b.taken()).toBe(true);
    release();
    expect(b.taken()).toBe(false);
    const again = b.tryTake()!;
    expect(b.holder()).toBe("b");
    again();
  });

  it("two locks of one process are two holders: one's late release leaves the other's lock", () => {
    const a = new StateLock(file);
    const b = new StateLock(file);
    const releaseA = a.tryTake()!;
    expect(b.tryTake()).toBeUndefined();
    age(a.path);
    const releaseB = b.tryTake()!;
    releaseA();
    expect(b.taken()).toBe(true);
    releaseB();
    expect(b.taken()).toBe(false);
  });

  it("is taken over once its holder stopped refreshing it, and the old holder's release leaves the new holder's lock", () => {
    const a = new StateLock(file, "a");
    const b = new StateLock(file, "b");
    const releaseA = a.tryTake()!;
    expect(b.tryTake()).toBeUndefined();
    age(a.path);
    const releaseB = b.tryTake()!;
    expect(releaseB).toBeDefined();
    releaseA();
    expect(b.holder()).toBe("b");
    releaseB();
    expect(b.taken()).toBe(false);
  });

  it("stays with a live holder that holds it longer than the stale age: the holder refreshes it", () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval", "Date"] });
    const a = new StateLock(file, "a", () => Date.now());
    const b = new StateLock(file, "b", () => Date.now());
    const release = a.tryTake()!;
    vi.advanceTimersByTime(3 * STALE_MS);
    expect(b.tryTake()).toBeUndefined();
    release();
    expect(b.tryTake()).toBeDefined();
  });

  it("treats the lock directory of an older eoa-mcp as held, and removes it once stale", () => {
    mkdirSync(`${file}.lock`);
    const b = new StateLock(file, "b");
    expect(b.tryTake()).toBeUndefined();
    expect(b.holder()).toBeUndefined();
    age(`${file}.lock`);
    const release = b.tryTake()!;
    expect(b.holder()).toBe("b");
    release();
  });

  it("clears a takeover guard left by a taker that died, once stale, and takes over on the next try", async () => {
    symlinkSync("dead", `${file}.lock`);
    symlinkSync("dead", `${file}.lock.takeover`);
    age(`${file}.lock`);
    const b = new StateLock(file, "b");
    // A fresh guard: another taker is removing the stale lock right now.
    expect(b.tryTake()).toBeUndefined();
    age(`${file}.lock.takeover`);
    expect(b.tryTake()).toBeUndefined(); // this try cleared the guard
    const release = b.tryTake()!;
    expect(release).toBeDefined();
    release();
    // Only this process's owner files are left, until it exits.
    expect((await readdir(dir)).filter((f) => !f.startsWith(".lock-owner-"))).toEqual([]);
  });

  it("is released and taken without making or removing a file: a link to its holder's own file", async () => {
    const a = new StateLock(file, "a");
    a.tryTake()!();
    const owners = (await readdir(dir)).filter((f) => f.startsWith(".lock-owner-"));
    expect(owners).toHaveLength(1);
    const ino = lstatSync(join(dir, owners[0]!)).ino;
    const release = a.tryTake()!;
    expect(lstatSync(a.path).ino).toBe(ino);
    release();
    expect(await readdir(dir)).toEqual(owners);
  });

  it("removes the owner files of processes that have gone, and keeps the live ones'", async () => {
    // pid 2^22 + 1 is above Linux's pid_max: no such process.
    writeFileSync(join(dir, ".lock-owner-dead"), `${hostname()}:${2 ** 22 + 1}:00`);
    writeFileSync(join(dir, ".lock-owner-alive"), `${hostname()}:${process.pid}:00`);
    new StateLock(file, "a").tryTake()!();
    const left = await readdir(dir);
    expect(left).toContain(".lock-owner-alive");
    expect(left).not.toContain(".lock-owner-dead");
  });

  it("removes its owner file when the process exits", async () => {
    const lock = new URL("../src/state/lock.ts", import.meta.url).href;
    const child = spawnSync(
      process.execPath,
      [
        "--import",
        "tsx",
        "--input-type=module",
        "-e",
        `const { StateLock } = await import(${JSON.stringify(lock)}); new StateLock(${JSON.stringify(file)}).tryTake()();`,
      ],
      { encoding: "utf8" },
    );
    expect(child.stderr).toBe("");
    expect(child.status).toBe(0);
    expect(await readdir(dir)).toEqual([]);
  });

  it("makes its owner file again when something removed it", async () => {
    const a = new StateLock(file, "a");
    a.tryTake()!();
    for (const f of await readdir(dir)) await rm(join(dir, f));
    const release = a.tryTake()!;
    expect(a.holder()).toBe("a");
    release();
  });
});
