import {
  createDraft,
  current,
  enableArrayMethods,
  enablePatches,
  finishDraft,
  isDraft,
  type Draft,
  type Patch,
} from "immer";
import type { KanbanColumn, State, TaskRecord } from "./schema.js";
import { bump, filedUnder, heldIn, idsUnder, taskChanged, type TaskKey } from "./task-index.js";

enablePatches();
enableArrayMethods();

/**
 * A transaction's draft of the state, with a change cost that does not grow with the number of
 * tasks.
 *
 * immer alone drafts the task map as one object: changing one task copies the whole map (and
 * freezes the copy), O(tasks) per transaction. Here immer drafts everything but the task map, and
 * the map is drafted task by task: `draft.tasks[id]` gives a view of that one task, which becomes
 * an immer draft of it at the first write to it or to anything inside it. Reading tasks and
 * walking the map, nested values included, drafts nothing. The committed state
 * keeps one task map, changed in place at commit (its tasks are frozen records, replaced, never
 * changed): a state read earlier therefore sees the tasks as they are now, while its other parts
 * stay as they were. Everything else is immer's usual copy-on-write.
 */
export class StateDraft {
  readonly draft: Draft<State>;
  private readonly rest: Draft<Omit<State, "tasks">>;
  private readonly slots = new Map<string, Slot>();

  constructor(
    private readonly base: State,
    /** The committed task map: read here, changed only by `commit`. */
    private readonly live: Record<string, TaskRecord>,
  ) {
    const { tasks: _tasks, ...rest } = base;
    this.rest = createDraft(rest);
    const tasks = this.tasksProxy();
    drafts.set(tasks, this);
    this.draft = rootProxy(this.rest, tasks);
  }

  /**
   * The change as patches (task paths under ["tasks", id]) and the state it leads to, without
   * touching the committed one: `commit` applies it once it is saved.
   */
  finish(): { patches: Patch[]; next: Omit<State, "tasks">; tasks: Map<string, TaskRecord | undefined> } {
    const patches: Patch[] = [];
    const tasks = new Map<string, TaskRecord | undefined>();
    // Plain values first: they may hold drafts of other tasks, revoked once those are finished.
    for (const [id, slot] of this.slots) {
      if (slot.kind === "view") continue;
      const had = Object.hasOwn(this.live, id);
      if (slot.kind === "deleted") {
        if (!had) continue;
        tasks.set(id, undefined);
        patches.push({ op: "remove", path: ["tasks", id] });
        continue;
      }
      const value = frozen(copyOut(slot.value)) as TaskRecord;
      tasks.set(id, value);
      patches.push({ op: had ? "replace" : "add", path: ["tasks", id], value });
    }
    for (const [id, slot] of this.slots) {
      if (slot.kind !== "view" || !slot.draft) continue;
      let own: Patch[] = [];
      const value = finishDraft(slot.draft, (p) => {
        own = p;
      }) as TaskRecord;
      if (value === slot.base) continue;
      tasks.set(id, value);
      for (const p of own) patches.push({ ...p, path: ["tasks", id, ...p.path] });
    }
    let restPatches: Patch[] = [];
    const next = finishDraft(this.rest, (p) => {
      restPatches = p;
    }) as Omit<State, "tasks">;
    return { patches: [...restPatches, ...patches], next, tasks };
  }

  /**
   * The tasks as they stand now, read in place: untouched ones as they are (frozen), changed ones
   * as this transaction's drafts of them, not copies.
   */
  inPlace(): TaskRecord[] {
    const out: TaskRecord[] = [];
    for (const id of this.keys()) {
      const slot = this.slots.get(id);
      const task = slot ? inPlaceOf(slot) : this.live[id];
      if (task) out.push(task);
    }
    return out;
  }

  /**
   * The tasks filed under any of `keys` (see task-index.ts) as they stand now, read in place as
   * `inPlace` reads them: the committed ones through the store's index, those this transaction
   * changed as they are now. Undefined when the committed map has no index.
   */
  under(keys: readonly TaskKey[]): TaskRecord[] | undefined {
    const ids = idsUnder(this.live, keys);
    if (!ids) return undefined;
    const out: TaskRecord[] = [];
    for (const id of ids) if (!this.slots.has(id)) out.push(this.live[id]!);
    for (const slot of this.slots.values()) {
      const task = inPlaceOf(slot);
      if (task && filedUnder(task, keys)) out.push(task);
    }
    return out;
  }

  /**
   * How many tasks each agent holds in `columns` as the transaction stands: the index's count of
   * the committed tasks, corrected for the tasks this transaction changed. Undefined when the
   * committed map has no index.
   */
  heldIn(columns: readonly KanbanColumn[]): Map<string, number> | undefined {
    const held = heldIn(this.live, columns);
    if (!held) return undefined;
    const add = (task: TaskRecord | undefined, by: number) => {
      if (task?.assignee && columns.includes(task.status)) bump(held, task.assignee, by);
    };
    for (const [id, slot] of this.slots) {
      if (slot.kind === "view" && !slot.draft) continue;
      add(Object.hasOwn(this.live, id) ? this.live[id] : undefined, -1);
      add(inPlaceOf(slot), 1);
    }
    return held;
  }

  private has(id: string): boolean {
    const slot = this.slots.get(id);
    return slot ? slot.kind !== "deleted" : Object.hasOwn(this.live, id);
  }

  private keys(): string[] {
    const keys = Object.keys(this.live);
    let changed = false;
    for (const slot of this.slots.values()) if (slot.kind !== "view") changed = true;
    if (!changed) return keys;
    const out = keys.filter((id) => this.has(id));
    for (const [id, slot] of this.slots)
      if (slot.kind === "set" && !Object.hasOwn(this.live, id)) out.push(id);
    return out;
  }

  private get(id: string): unknown {
    const had = this.slots.get(id);
    if (had) return had.kind === "view" ? had.view : had.kind === "set" ? had.value : undefined;
    if (!Object.hasOwn(this.live, id)) return undefined;
    const slot: ViewSlot = { kind: "view", base: this.live[id]!, view: {}, children: new Map() };
    slot.view = taskView(slot);
    this.slots.set(id, slot);
    return slot.view;
  }

  private tasksProxy(): Record<string, TaskRecord> {
    const descriptor = (value: unknown): PropertyDescriptor => ({
      value,
      writable: true,
      enumerable: true,
      configurable: true,
    });
    return new Proxy(Object.create(null) as Record<string, TaskRecord>, {
      get: (_, id) => (typeof id === "string" ? this.get(id) : undefined),
      set: (_, id, value) => {
        if (typeof id !== "string") return false;
        this.slots.set(id, { kind: "set", value });
        return true;
      },
      deleteProperty: (_, id) => {
        if (typeof id === "string") this.slots.set(id, { kind: "deleted" });
        return true;
      },
      has: (_, id) => typeof id === "string" && this.has(id),
      ownKeys: () => this.keys(),
      getOwnPropertyDescriptor: (_, id) =>
        typeof id === "string" && this.has(id) ? descriptor(this.get(id)) : undefined,
      defineProperty: () => false,
    });
  }
}

type ViewSlot = {
  kind: "view";
  base: TaskRecord;
  draft?: Draft<TaskRecord>;
  view: object;
  /** Views of nested values, by the committed value they show. */
  children: Map<unknown, object>;
};
type Slot = ViewSlot | { kind: "set"; value: unknown } | { kind: "deleted" };

/** A changed task as the transaction has it now, read in place (undefined: deleted). */
function inPlaceOf(slot: Slot): TaskRecord | undefined {
  if (slot.kind === "set") return slot.value as TaskRecord;
  return slot.kind === "view" ? ((slot.draft ?? slot.base) as TaskRecord) : undefined;
}

/** The task map of each live transaction, and each task view with its slot. */
const drafts = new WeakMap<object, StateDraft>();
const views = new WeakMap<object, { slot: ViewSlot; copy: () => unknown }>();

/** The transaction a task map belongs to, if it is a transaction's. */
export function draftOf(tasks: object): StateDraft | undefined {
  return drafts.get(tasks);
}

/** A plain copy of a value read inside a transaction: drafts and task views included. */
export function copyOut(value: unknown): unknown {
  if (value === null || typeof value !== "object" || Object.isFrozen(value)) return value;
  const view = views.get(value);
  if (view) return view.copy();
  if (isDraft(value)) return current(value);
  if (Array.isArray(value)) return value.map(copyOut);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = copyOut(v);
  return out;
}

/**
 * One task as the transaction sees it (or, with a `path`, a value inside it). Until something is
 * written, reads come from the committed (frozen) record, nested values as views of their own;
 * the first write anywhere in the task makes one immer draft of it, which every view then reads
 * and writes through. A symbol read on the task itself (immer's `isDraft` and `current` look one
 * up) drafts it too, so immer takes the view for the draft it stands for.
 */
function taskView(slot: ViewSlot, path: PropertyKey[] = [], base: object = slot.base): object {
  const draft = () => (slot.draft ??= createDraft(slot.base));
  const at = (root: object) => path.reduce<object>((v, k) => Reflect.get(v, k) as object, root);
  const drafted = () => at(draft());
  const source = () => (slot.draft ? drafted() : base);
  const read = (key: PropertyKey): unknown => {
    if (slot.draft) return Reflect.get(drafted(), key);
    if (typeof key === "symbol")
      return path.length === 0 ? Reflect.get(drafted(), key) : Reflect.get(base, key);
    const value = Reflect.get(base, key) as unknown;
    if (value === null || typeof value !== "object" || !Object.hasOwn(base, key)) return value;
    let child = slot.children.get(value);
    if (!child) slot.children.set(value, (child = taskView(slot, [...path, key], value)));
    return child;
  };
  const view = new Proxy(Array.isArray(base) ? [] : {}, {
    get: (_, key) => read(key),
    // A value built from views (`t.history = t.history.filter(...)`) goes in as plain data: a view
    // inside the draft would read itself through itself.
    set: (_, key, value) => Reflect.set(drafted(), key, copyOut(value)),
    deleteProperty: (_, key) => Reflect.deleteProperty(drafted(), key),
    defineProperty: (_, key, d) => Reflect.defineProperty(drafted(), key, d),
    has: (_, key) => Reflect.has(source(), key),
    ownKeys: () => Reflect.ownKeys(source()),
    getOwnPropertyDescriptor: (_, key) => {
      const d = Reflect.getOwnPropertyDescriptor(source(), key);
      if (!d) return undefined;
      // An array's length is its target's own, and must be reported as it is there.
      if (key === "length" && Array.isArray(base)) return { ...d, configurable: false };
      return { value: read(key), writable: true, enumerable: d.enumerable, configurable: true };
    },
    getPrototypeOf: () => Object.getPrototypeOf(base) as object | null,
  });
  views.set(view, { slot, copy: () => (slot.draft ? copyOut(drafted()) : base) });
  return view;
}

/** The draft handed to a transaction: immer's draft of the rest, with the task map beside it. */
function rootProxy(rest: Draft<Omit<State, "tasks">>, tasks: Record<string, TaskRecord>): Draft<State> {
  return new Proxy({} as Draft<State>, {
    get: (_, key) => (key === "tasks" ? tasks : Reflect.get(rest, key)),
    set: (_, key, value) => {
      // Replacing the whole map would bypass the task-by-task draft.
      if (key === "tasks") throw new Error("change state.tasks one task at a time, not as a whole");
      return Reflect.set(rest, key, value);
    },
    deleteProperty: (_, key) => key !== "tasks" && Reflect.deleteProperty(rest, key),
    has: (_, key) => key === "tasks" || Reflect.has(rest, key),
    ownKeys: () => [...Reflect.ownKeys(rest), "tasks"],
    getOwnPropertyDescriptor: (_, key) => ({
      value: key === "tasks" ? tasks : Reflect.get(rest, key),
      writable: true,
      enumerable: true,
      configurable: true,
    }),
  });
}

/**
 * Applies journal patches to a state, task by task: a line another process wrote costs what it
 * changed, not a copy of the map. `tasks` is changed in place (see StateDraft); the rest is
 * returned anew, frozen.
 */
export function applyToState(
  rest: Omit<State, "tasks">,
  tasks: Record<string, TaskRecord>,
  patches: Patch[],
): Omit<State, "tasks"> {
  const restPatches: Patch[] = [];
  const byTask = new Map<string, Patch[]>();
  for (const p of patches) {
    const [top, id] = p.path;
    if (top !== "tasks") {
      restPatches.push(p);
      continue;
    }
    if (typeof id !== "string") {
      // The whole map at once (only older journals hold such a line): the same, record by record.
      for (const key of Object.keys(tasks)) {
        delete tasks[key];
        taskChanged(tasks, key, undefined);
      }
      byTask.clear();
      if (p.op !== "remove")
        for (const [k, v] of Object.entries(p.value as object)) {
          tasks[k] = frozen(v);
          taskChanged(tasks, k, tasks[k]);
        }
      continue;
    }
    let list = byTask.get(id);
    if (!list) byTask.set(id, (list = []));
    list.push({ ...p, path: p.path.slice(2) });
  }
  for (const [id, list] of byTask) {
    let record: unknown = tasks[id];
    const copies = new Set<object>();
    for (const p of list) {
      if (p.path.length > 0) record = applyPatch(record, p, copies);
      else record = p.op === "remove" ? undefined : p.value;
    }
    if (record === undefined) delete tasks[id];
    else tasks[id] = frozen(record as TaskRecord);
    taskChanged(tasks, id, tasks[id]);
  }
  const copies = new Set<object>();
  let next: unknown = rest;
  for (const p of restPatches) next = applyPatch(next, p, copies);
  return frozen(next as Omit<State, "tasks">);
}

/**
 * One journal patch applied to frozen JSON data, as immer's applyPatches would, copying only the
 * objects and arrays on its path (once for all the patches sharing `copies`). immer drafts the
 * whole path and, for an array insert, marks every index changed and walks them all to finalize:
 * 0.8 ms of CPU a line another process wrote, at a few hundred decisions and effects, paid by
 * every process for every other's transaction. The copies and the values put in are left unfrozen
 * for the caller's `frozen`.
 */
function applyPatch(root: unknown, patch: Patch, copies: Set<object>): unknown {
  const own = (value: unknown, at: number): Record<string | number, unknown> => {
    if (value === null || typeof value !== "object")
      throw new Error(`journal patch path does not resolve: ${patch.path.slice(0, at).join("/")}`);
    if (copies.has(value)) return value as Record<string, unknown>;
    const copy = Array.isArray(value)
      ? value.slice()
      : Object.assign(Object.create(Object.getPrototypeOf(value) as object | null) as object, value);
    copies.add(copy);
    return copy as Record<string, unknown>;
  };
  const { path } = patch;
  for (const key of path)
    if (key === "__proto__" || key === "constructor")
      throw new Error(`journal patch path is not data: ${path.join("/")}`);
  const top = own(root, 0);
  let parent = top;
  for (let i = 0; i < path.length - 1; i++) parent = parent[path[i]!] = own(parent[path[i]!], i + 1);
  const key = path[path.length - 1]!;
  if (Array.isArray(parent)) {
    const at = Number(key);
    if (patch.op === "add") parent.splice(at, 0, patch.value);
    else if (patch.op === "remove") parent.splice(at, 1);
    else parent[at] = patch.value;
  } else if (patch.op === "remove") delete parent[key];
  else parent[key] = patch.value;
  return top;
}

/**
 * Freezes a record and everything in it (JSON data: plain objects and arrays), in place. immer's
 * deep freeze lists every object's keys into a new array: freezing a loaded state of 10,000 tasks
 * that way made enough garbage to grow the heap by 18 MB, for good (issue 16's memory row).
 */
export function frozen<T>(value: T): T {
  if (value === null || typeof value !== "object" || Object.isFrozen(value)) return value;
  if (Array.isArray(value)) for (let i = 0; i < value.length; i++) frozen(value[i] as unknown);
  else for (const k in value) frozen((value as Record<string, unknown>)[k]);
  return Object.freeze(value);
}
