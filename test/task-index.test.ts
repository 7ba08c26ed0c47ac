import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KANBAN_COLUMNS, type KanbanColumn, type TaskRecord } from "../src/state/schema.js";
import { heldNow, tasksFiled, tasksInPlace } from "../src/state/records.js";
import { StateStore } from "../src/state/store.js";
import { filedUnder, heldIn, tasksUnder, type TaskKey } from "../src/state/task-index.js";

/** The columns whose tasks count toward an agent's load, and two others. */
const HELD: KanbanColumn[][] = [["in-progress", "ai-review", "merge-release"], ["blocked"], ["todo"]];

/** What a walk says each agent holds in `columns`, as sorted entries. */
const heldWalked = (tasks: readonly TaskRecord[], columns: KanbanColumn[]) => {
  const held = new Map<string, number>();
  for (const t of tasks)
    if (t.assignee && columns.includes(t.status)) held.set(t.assignee, (held.get(t.assignee) ?? 0) + 1);
  return sorted(held);
};
const sorted = (held: Map<string, number>) => [...held].sort(([a], [b]) => a.localeCompare(b));

/**
 * The store's index of tasks by column (issue 16) must say what a walk over every task says, after
 * whatever changed the map: this process's transactions, another process's lines read from the
 * journal, a new generation, a fresh load; and inside a transaction, with the changes made so far.
 */

const KEYS: TaskKey[][] = [
  ["todo"],
  ["queued"],
  ["in-progress", "ai-review", "merge-release"],
  ["done"],
  ["blocked", "human-review"],
];

function task(id: string, status: KanbanColumn, queued: boolean, assignee?: string): TaskRecord {
  const now = "2026-01-01T00:00:00.000Z";
  return {
    task_id: id,
    session_id: "s",
    title: id,
    priority: "normal",
    required_capabilities: [],
    depends_on: [],
    instructions: "",
    completion_criteria: [],
    test_requirements: [],
    files_in_scope: [],
    escalation_rules: {
      on_blocked: "report",
      on_security_concern: "stop",
      on_architecture_question: "decide",
    },
    status,
    ...(queued ? { queue: { since: now, reason: "waiting" } } : {}),
    ...(assignee ? { assignee } : {}),
    assignment_epoch: 0,
    previous_assignees: [],
    fix_rounds: 0,
    ci_polls: 0,
    ci_failures: 0,
    created_at: now,
    updated_at: now,
    history: [],
  } as TaskRecord;
}

const ids = (tasks: readonly TaskRecord[]) => tasks.map((t) => t.task_id).sort();
const walked = (tasks: Record<string, TaskRecord>, keys: TaskKey[]) =>
  ids(Object.values(tasks).filter((t) => filedUnder(t, keys)));

/** A deterministic generator, so that a failure can be replayed. */
function prng(seed: number) {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "eoa-index-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("the store's task index", () => {
  it("agrees with a walk over every task after every kind of change, in two processes' stores", async () => {
    // A small journal limit: generations come often, between the other store's reads.
    const a = await StateStore.open(dir, { journalLimitBytes: 6_000 });
    const b = await StateStore.open(dir, { journalLimitBytes: 6_000 });
    const seed = Date.now();
    const rand = prng(seed);
    for (let round = 0; round < 300; round++) {
      const store = rand(2) ? a : b;
      await store.transact((d) => {
        for (let k = 0; k < 1 + rand(3); k++) {
          const id = `T-${rand(40)}`;
          const op = rand(8);
          const agent = rand(4) ? `agent-${rand(3)}` : undefined;
          if (op === 0) delete d.tasks[id];
          else if (op === 1 || !d.tasks[id])
            d.tasks[id] = task(id, KANBAN_COLUMNS[rand(KANBAN_COLUMNS.length)]!, !!rand(2), agent);
          else if (op === 2) delete d.tasks[id]!.queue;
          else if (op === 6) d.tasks[id]!.assignee = agent ?? "agent-0";
          else if (op === 7) delete d.tasks[id]!.assignee;
          else if (op === 3) d.tasks[id]!.queue = { since: "2026-01-01T00:00:00.000Z", reason: "r" };
          else d.tasks[id]!.status = KANBAN_COLUMNS[rand(KANBAN_COLUMNS.length)]!;
        }
        // Inside the transaction: what is filed now, the changes so far included.
        for (const keys of KEYS)
          expect(ids(tasksFiled(d, keys)), `seed ${seed}, round ${round}, in the transaction`).toEqual(
            ids(tasksInPlace(d).filter((t) => filedUnder(t, keys))),
          );
        for (const columns of HELD)
          expect(
            sorted(heldNow(d, columns)),
            `seed ${seed}, round ${round}, held in the transaction`,
          ).toEqual(heldWalked(tasksInPlace(d), columns));
      });
      for (const s of [a, b]) {
        const state = await s.read();
        for (const keys of KEYS)
          expect(
            ids(tasksUnder(state.tasks, keys)),
            `seed ${seed}, round ${round}, ${keys.join("+")}`,
          ).toEqual(walked(state.tasks, keys));
        for (const columns of HELD)
          expect(sorted(heldIn(state.tasks, columns)!), `seed ${seed}, round ${round}, held`).toEqual(
            heldWalked(Object.values(state.tasks), columns),
          );
      }
    }
    // A third store loads the files afresh and agrees with both.
    const c = await StateStore.open(dir);
    const fresh = await c.read();
    const other = await a.read();
    for (const keys of KEYS) expect(ids(tasksUnder(fresh.tasks, keys))).toEqual(walked(other.tasks, keys));
    for (const columns of HELD)
      expect(sorted(heldIn(fresh.tasks, columns)!)).toEqual(heldWalked(Object.values(other.tasks), columns));
  });

  it("is not used for a map the store did not make: a plain state is walked", () => {
    const tasks = { A: task("A", "todo", true), B: task("B", "in-progress", false) };
    expect(ids(tasksUnder(tasks, ["queued"]))).toEqual(["A"]);
    tasks.B = task("B", "todo", true);
    expect(ids(tasksUnder(tasks, ["queued"]))).toEqual(["A", "B"]);
  });
});
