import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as prettier from "prettier";
import { describe, expect, it } from "vitest";
import { listedTool } from "../src/tools/define-tool.js";
import { tools } from "../src/tools/index.js";

/**
 * Every tool's schema as clients see it in tools/list, kept in the repository: a change to a name,
 * a description, an argument or the output fails here until the snapshot is regenerated on purpose
 * with `UPDATE_TOOLSNAPS=1 npx vitest run test/toolsnaps.test.ts` and reviewed in the diff.
 */

const DIR = join(import.meta.dirname, "__toolsnaps__");
const UPDATE = process.env.UPDATE_TOOLSNAPS === "1";
/** Written as the repository's formatter would, so that `prettier --check` passes on the snapshots. */
async function render(file: string, value: unknown): Promise<string> {
  const options = await prettier.resolveConfig(file);
  return prettier.format(JSON.stringify(value), { ...options, parser: "json" });
}

describe("tool schema snapshots", () => {
  it.each(tools.map((t) => t.name))("%s matches its snapshot", async (name) => {
    const tool = tools.find((t) => t.name === name)!;
    const file = join(DIR, `${name}.json`);
    if (UPDATE) {
      await mkdir(DIR, { recursive: true });
      await writeFile(file, await render(file, listedTool(tool)));
      return;
    }
    expect(existsSync(file), `no snapshot for ${name}: run with UPDATE_TOOLSNAPS=1`).toBe(true);
    const committed = JSON.parse(await readFile(file, "utf8")) as unknown;
    expect(
      listedTool(tool),
      `${name}'s schema changed: if on purpose, run with UPDATE_TOOLSNAPS=1 and commit`,
    ).toEqual(committed);
  });

  it("keeps no snapshot of a tool that no longer exists", async () => {
    const names = new Set(tools.map((t) => `${t.name}.json`));
    const files = existsSync(DIR) ? await readdir(DIR) : [];
    const stale = files.filter((f) => !names.has(f));
    if (UPDATE) {
      for (const f of stale) await rm(join(DIR, f));
      return;
    }
    expect(stale, "snapshots without a tool: run with UPDATE_TOOLSNAPS=1").toEqual([]);
  });
});
