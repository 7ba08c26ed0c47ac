import { setImmediate as nextTurn } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { collectGarbage } from "../src/v8-flags.js";

describe("the server's V8 settings", () => {
  it("collectGarbage runs a full collection (the CLI's afterLargeLoad)", async () => {
    // Made in a function of its own: nothing here keeps it.
    const weak = ((): WeakRef<number[][]> =>
      new WeakRef(Array.from({ length: 1_000 }, () => new Array<number>(1_000).fill(1))))();
    // A WeakRef holds its target until the turn that made it ends.
    await nextTurn();
    collectGarbage();
    expect(weak.deref()).toBeUndefined();
  });
});
