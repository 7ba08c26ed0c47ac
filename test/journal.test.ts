import fc from "fast-check";
import { applyPatches, produceWithPatches, type Draft, type Patch } from "immer";
import { describe, expect, it } from "vitest";
import { applyToState, frozen } from "../src/state/draft.js";
import type { State, TaskRecord } from "../src/state/schema.js";

/** A state-shaped value: arrays and maps that grow over a night, and tasks with nested data. */
type Shape = Record<string, unknown> & { tasks: Record<string, unknown> };

const ITEM = fc.record({ id: fc.nat(20), status: fc.constantFrom("pending", "done"), n: fc.nat() });

/** What a transaction does to the state, in the ways immer turns into patches. */
const OP = fc.oneof(
  fc.record({ kind: fc.constant("push" as const), item: ITEM }),
  fc.record({ kind: fc.constant("insert" as const), at: fc.nat(6), item: ITEM }),
  fc.record({ kind: fc.constant("splice" as const), at: fc.nat(6), count: fc.nat(3) }),
  fc.record({ kind: fc.constant("filter" as const), id: fc.nat(20) }),
  fc.record({ kind: fc.constant("shift" as const) }),
  fc.record({ kind: fc.constant("settle" as const), at: fc.nat(6) }),
  fc.record({ kind: fc.constant("count" as const), key: fc.constantFrom("a", "b", "c") }),
  fc.record({ kind: fc.constant("uncount" as const), key: fc.constantFrom("a", "b", "c") }),
  fc.record({
    kind: fc.constant("task" as const),
    id: fc.constantFrom("T-1", "T-2", "T-3"),
    note: fc.string(),
  }),
  fc.record({ kind: fc.constant("newTask" as const), id: fc.constantFrom("T-1", "T-2", "T-4") }),
  fc.record({ kind: fc.constant("dropTask" as const), id: fc.constantFrom("T-1", "T-2", "T-4") }),
);
type Op = typeof OP extends fc.Arbitrary<infer T> ? T : never;

function run(draft: Draft<Shape>, op: Op): void {
  const list = draft.outbox as Array<{ id: number; status: string; n: number; result?: unknown }>;
  const tasks = draft.tasks as Record<string, { history: unknown[]; notes?: Record<string, string> }>;
  switch (op.kind) {
    case "push":
      list.push(op.item);
      break;
    case "insert":
      list.splice(Math.min(op.at, list.length), 0, op.item);
      break;
    case "splice":
      list.splice(op.at, op.count);
      break;
    case "filter":
      draft.outbox = list.filter((e) => e.id !== op.id);
      break;
    case "shift":
      list.shift();
      break;
    case "settle":
      if (list[op.at]) Object.assign(list[op.at]!, { status: "done", result: { ok: true } });
      break;
    case "count":
      (draft.counters as Record<string, number>)[op.key] =
        ((draft.counters as Record<string, number>)[op.key] ?? 0) + 1;
      break;
    case "uncount":
      delete (draft.counters as Record<string, number>)[op.key];
      break;
    case "task": {
      const t = tasks[op.id];
      if (!t) break;
      t.history.push({ event: op.note });
      (t.notes ??= {})[op.note] = op.note;
      break;
    }
    case "newTask":
      tasks[op.id] = { history: [{ event: "created" }] };
      break;
    case "dropTask":
      delete tasks[op.id];
  }
}

const base = (): Shape =>
  frozen({
    counters: { a: 1 },
    outbox: [{ id: 1, status: "pending", n: 0 }],
    decisions: [{ id: "d-1" }],
    tasks: { "T-1": { history: [] }, "T-2": { history: [{ event: "created" }], notes: { x: "y" } } },
  });

/** Frozen all the way down. */
function frozenThrough(value: unknown): boolean {
  if (value === null || typeof value !== "object") return true;
  return Object.isFrozen(value) && Object.values(value).every(frozenThrough);
}

describe("journal lines applied to a state (applyToState)", () => {
  it("give what immer's applyPatches gives, frozen through, leaving the state they start from as it was", () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(OP, { maxLength: 6 }), { minLength: 1, maxLength: 5 }),
        (transactions) => {
          // Each transaction is one journal line; a catch-up applies several lines' patches at once.
          let state = base();
          const patches: Patch[] = [];
          for (const ops of transactions) {
            const [next, p] = produceWithPatches(state, (d) => {
              for (const op of ops) run(d, op);
            });
            state = next;
            patches.push(...p);
          }
          const start = base();
          const snapshot = structuredClone(start);
          const { tasks, ...rest } = start;
          const taskMap = { ...tasks } as Record<string, TaskRecord>;
          const applied = applyToState(rest as unknown as Omit<State, "tasks">, taskMap, patches);
          const got = { ...applied, tasks: taskMap };
          expect(got).toEqual(applyPatches(start, patches));
          expect(got).toEqual(state);
          // (The task map itself is the store's, changed in place.)
          expect(frozenThrough(applied) && Object.values(taskMap).every(frozenThrough)).toBe(true);
          expect(start).toEqual(snapshot);
          // What no patch touched is shared, not copied.
          if (!patches.some((p) => p.path[0] === "decisions"))
            expect(applied).toHaveProperty("decisions", start.decisions);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("inserts into an array at an index, as a JSON patch's add does (immer's own patches add at the end only)", () => {
    const start = base();
    const { tasks, ...rest } = start;
    const patches: Patch[] = [
      { op: "add", path: ["outbox", 0], value: { id: 0 } },
      { op: "add", path: ["tasks", "T-2", "history", 0], value: { event: "first" } },
    ];
    const taskMap = { ...tasks } as Record<string, TaskRecord>;
    const applied = applyToState(rest as unknown as Omit<State, "tasks">, taskMap, patches);
    expect({ ...applied, tasks: taskMap }).toEqual(applyPatches(start, patches));
  });

  it("refuses a patch whose path does not resolve or is not data", () => {
    const { tasks, ...rest } = base();
    const bad = (path: (string | number)[]) => () =>
      applyToState(rest as unknown as Omit<State, "tasks">, { ...tasks } as Record<string, TaskRecord>, [
        { op: "replace", path, value: 1 },
      ]);
    expect(bad(["missing", "x"])).toThrow(/does not resolve/);
    expect(bad(["counters", "__proto__", "polluted"])).toThrow(/not data/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
