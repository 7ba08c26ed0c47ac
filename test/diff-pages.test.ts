import { describe, expect, it } from "vitest";
import { diffPages } from "../src/review/diff-pages.js";

/** Issue 12, item 8: the diff in pages of per-file patches, none over the bound, nothing lost. */

const file = (name: string, lines: number, width = 20) =>
  `diff --git a/${name} b/${name}\n--- a/${name}\n+++ b/${name}\n@@ -0,0 +1,${lines} @@\n` +
  Array.from({ length: lines }, (_, i) => `+${String(i).padStart(width, "x")}\n`).join("");

describe("diffPages", () => {
  it("packs whole files into pages up to the bound, in order, losing nothing", () => {
    const text = [file("a.py", 10), file("b.py", 10), file("c.py", 10)].join("");
    const pages = diffPages(text, 600);
    expect(pages.join("")).toBe(text);
    for (const p of pages) expect(Buffer.byteLength(p)).toBeLessThanOrEqual(600);
    expect(pages[0]!.startsWith("diff --git a/a.py")).toBe(true);
    expect(pages.length).toBeGreaterThan(1);
    // A file that fits is never split across pages.
    for (const p of pages) expect((p.match(/^diff --git /gm) ?? []).length).toBeGreaterThanOrEqual(1);
  });

  it("cuts a file larger than a page at line boundaries, and a line larger than a page by bytes", () => {
    const big = file("big.py", 200);
    const pages = diffPages(big, 1000);
    expect(pages.join("")).toBe(big);
    for (const p of pages) expect(Buffer.byteLength(p)).toBeLessThanOrEqual(1000);
    for (const p of pages.slice(0, -1)) expect(p.endsWith("\n")).toBe(true);
    const long = `diff --git a/min.js b/min.js\n+${"é".repeat(3000)}\n`;
    const cut = diffPages(long, 1000);
    expect(cut.join("")).toBe(long);
    for (const p of cut) expect(Buffer.byteLength(p)).toBeLessThanOrEqual(1000);
  });

  it("an empty diff is one empty page", () => {
    expect(diffPages("")).toEqual([""]);
  });
});
