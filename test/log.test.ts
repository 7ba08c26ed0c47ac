import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger, logSettings } from "../src/log.js";
import type { Surroundings } from "../src/sim/environment.js";
import { runCli } from "./fixtures/cli.js";
import { nightSurroundings } from "./fixtures/night-checks.js";
import { ServerProcess } from "./fixtures/server-process.js";

/**
 * Issue 13, item 3: watching a night in its log. An unknown level is refused; `json` gives one
 * object a line; at info every decision and every message sent is a line, secrets redacted.
 */

describe("log settings", () => {
  it("refuses an unknown level or format, naming the allowed values", () => {
    expect(() => logSettings({}, { EOA_LOG_LEVEL: "verbose" })).toThrow(
      /unknown log level "verbose".*debug, info, warning, error/,
    );
    expect(() => logSettings({ format: "xml" }, {})).toThrow(/unknown log format "xml".*text or json/);
    expect(logSettings({ level: "debug" }, { EOA_LOG_LEVEL: "error" })).toEqual({
      level: "debug",
      format: "text",
    });
    expect(logSettings({}, { EOA_LOG_FORMAT: "json" })).toEqual({ level: "info", format: "json" });
  });

  it("json: one parseable object a line, redacted value by value", () => {
    const lines: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string) => (lines.push(chunk), true)) as typeof process.stderr.write;
    try {
      const log = createLogger("eoa", {
        format: "json",
        redact: (t) => t.replaceAll("s3cret", "[REDACTED]"),
      });
      log.info('decision "assign" T-1', { token: "s3cret", nested: { quote: 'a"b' } });
      log.debug("not at info");
    } finally {
      process.stderr.write = write;
    }
    expect(lines).toHaveLength(1);
    const o = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(o).toMatchObject({
      level: "info",
      logger: "eoa",
      msg: 'decision "assign" T-1',
      token: "[REDACTED]",
      nested: { quote: 'a"b' },
    });
    expect(typeof o.time).toBe("string");
  });
});

describe("the built CLI's log", () => {
  let sur: Surroundings;
  beforeAll(async () => {
    sur = await nightSurroundings();
  });
  afterAll(async () => {
    await sur?.close();
  });

  it("refuses EOA_LOG_LEVEL=verbose at start with exit 2", async () => {
    const r = await runCli(["preflight", "--config", sur.configFile], sur.root, { EOA_LOG_LEVEL: "verbose" });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown log level "verbose"/);
    expect(r.stdout).toBe("");
  });

  it("at info, with --log-format json: a line per decision and per message sent", async () => {
    const p = await ServerProcess.spawn("log", sur.configFile, sur.root, {
      EOA_LOG_LEVEL: "info",
      EOA_LOG_FORMAT: "json",
    });
    try {
      await p.ready();
      const confirm = await p.call("start_session", { tasks: [{ task_id: "L-1", title: "Logged task" }] });
      if (confirm.kind !== "ok") throw new Error(JSON.stringify(confirm));
      await p.call("start_session", { session_id: confirm.data.session_id, approve: true });
      expect(await p.call("assign_task", { task_id: "L-1", agent: "dev-a" })).toMatchObject({ kind: "ok" });
      const deadline = Date.now() + 10_000;
      while (!p.stderr.includes("made message to dev-a") && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      const lines = p.stderr
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { level: string; msg: string; rule?: string; decision?: string });
      const assign = lines.find((l) => l.msg.startsWith("decision assign L-1"));
      expect(assign).toMatchObject({ level: "info", rule: expect.stringContaining("rule 1") });
      expect(lines.find((l) => l.msg.startsWith("made message to dev-a"))).toMatchObject({
        decision: expect.stringMatching(/^dec-/),
      });
    } finally {
      await p.close();
    }
  });
});
