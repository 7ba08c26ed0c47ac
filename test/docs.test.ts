import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { withReference } from "../src/docs.js";
import { tools } from "../src/tools/index.js";
import { resources } from "../src/resources/index.js";

describe("README reference", () => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");

  it("is what the code generates (run `npm run docs` after changing a tool, resource, prompt or config key)", () => {
    expect(withReference(readme)).toBe(readme);
  });

  it("names every tool and resource", () => {
    for (const t of tools) expect(readme).toContain(`\`${t.name}\``);
    for (const r of resources) expect(readme).toContain(`\`${r.uri}\``);
  });

  it("states the two commands that set up and test a fresh machine", () => {
    expect(readme).toContain("npm install && npm run simulate");
    expect(readme).toContain("npm test");
    const ci = readFileSync(new URL("../.ci/run", import.meta.url), "utf8");
    expect(ci).toMatch(/npm ci\nnpm test/);
  });
});
