import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEnvironment, type NightEnvironment } from "../src/sim/environment.js";
import { tools } from "../src/tools/index.js";
import { assertBuilt, CLI, runProcess, type Finished } from "./fixtures/cli.js";
import { INSPECTOR_DIR, inspectorBin } from "./fixtures/inspector.js";

/**
 * Issue 5, part 5: a real third-party client, the MCP Inspector CLI, drives the built server over
 * stdio against the loopback stand-ins. `npm test` builds first; run `npm run build` before running
 * this file alone.
 *
 * The Inspector declares Node 22 (npm prints EBADENGINE for it on Node 20, though its CLI runs
 * there), so it is not one of eoa-mcp's own dependencies: it has a package of its own in
 * `tools/inspector`, with its lockfile, installed there by the suite's global set-up (`npm ci`).
 *
 * The Inspector has a `--config` option of its own, so the server's command comes after `--`.
 */

const SLOW = 60_000;

let env: NightEnvironment;
let home: string;
let bin: string;
beforeAll(async () => {
  assertBuilt();
  env = await createEnvironment();
  home = await mkdtemp(join(tmpdir(), "eoa-inspector-home-"));
  bin = inspectorBin();
});
afterAll(async () => {
  await env?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

/** `mcp-inspector --cli <args> -- node dist/cli.js --config <file>`. */
function inspect(args: string[]): Promise<Finished> {
  return runProcess(
    process.execPath,
    [
      bin,
      "--cli",
      "--cwd",
      env.root,
      // The ad-hoc default (15 s) is too short for a loaded CI machine; the test timeout bounds it.
      "--connect-timeout",
      "50000",
      ...args,
      "--",
      process.execPath,
      CLI,
      "--config",
      env.configFile,
    ],
    {
      cwd: INSPECTOR_DIR,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: home,
        NO_UPDATE_NOTIFIER: "1",
        npm_config_update_notifier: "false",
      },
    },
  );
}

function json<T>(r: { stdout: string; stderr: string }): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`the Inspector did not print JSON.\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
}

describe("MCP Inspector CLI against the built server", () => {
  it.concurrent(
    "tools/list in strict mode: no schema-portability warning",
    async () => {
      const r = await inspect(["--strict", "--method", "tools/list"]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).not.toMatch(/Warning|Error: tool/);
      expect(json<{ tools: unknown[] }>(r).tools).toHaveLength(tools.length);
    },
    SLOW,
  );

  it.concurrent(
    "tools/list: every tool with its schemas and annotations",
    async () => {
      const r = await inspect(["--method", "tools/list"]);
      expect(r.code, r.stderr).toBe(0);
      const listed = json<{
        tools: Array<{
          name: string;
          title?: string;
          inputSchema: { type: string; additionalProperties?: boolean };
          outputSchema?: { type: string };
          annotations?: Record<string, boolean>;
        }>;
      }>(r);
      expect(listed.tools.map((t) => t.name)).toEqual(tools.map((t) => t.name));
      for (const t of listed.tools) {
        expect(t.title, t.name).toBeTruthy();
        expect(t.inputSchema.type, t.name).toBe("object");
        expect(t.inputSchema.additionalProperties, t.name).toBe(false);
        expect(t.outputSchema?.type, t.name).toBe("object");
        expect(Object.keys(t.annotations ?? {}).sort(), t.name).toEqual(
          expect.arrayContaining(["destructiveHint", "idempotentHint", "openWorldHint", "readOnlyHint"]),
        );
      }
    },
    SLOW,
  );

  it.concurrent(
    "tools/call preflight: the checklist, with the stand-ins reachable",
    async () => {
      const r = await inspect(["--method", "tools/call", "--tool-name", "preflight"]);
      expect(r.code, r.stderr).toBe(0);
      const result = json<{
        isError?: boolean;
        content: Array<{ type: string; text: string }>;
        structuredContent: { items: Array<{ item: string; status: string; evidence: string }> };
      }>(r);
      expect(result.isError).toBeFalsy();
      expect(result.content[0]?.text).toMatch(/Prerequisites Checklist/);
      const items = result.structuredContent.items;
      expect(items.length).toBeGreaterThan(5);
      for (const i of items) expect(["pass", "fail", "unknown"], i.item).toContain(i.status);
      expect(items.find((i) => /AI Maestro server running/i.test(i.item))?.status).toBe("pass");
      expect(items.find((i) => /online/i.test(i.item))?.status).toBe("pass");
    },
    SLOW,
  );

  it.concurrent(
    "resources/read eoa://session: JSON, no session yet",
    async () => {
      const r = await inspect(["--method", "resources/read", "--uri", "eoa://session"]);
      expect(r.code, r.stderr).toBe(0);
      const read = json<{ contents: Array<{ uri: string; mimeType: string; text: string }> }>(r);
      expect(read.contents).toHaveLength(1);
      expect(read.contents[0]).toMatchObject({ uri: "eoa://session", mimeType: "application/json" });
      expect(JSON.parse(read.contents[0]!.text)).toMatchObject({ session: null });
    },
    SLOW,
  );

  it.concurrent(
    "a domain error is an isError result (the Inspector exits 5) with its stable code",
    async () => {
      const r = await inspect(["--method", "tools/call", "--tool-name", "write_report"]);
      expect(r.code).toBe(5);
      const result = json<{ isError: boolean; structuredContent: { error: { code: string } } }>(r);
      expect(result.isError).toBe(true);
      expect(result.structuredContent.error.code).toBe("SESSION_NOT_FOUND");
    },
    SLOW,
  );
});
