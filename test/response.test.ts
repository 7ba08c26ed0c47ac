import { describe, expect, it } from "vitest";
import { createLogger, type LogSink } from "../src/log.js";
import { redactSecrets } from "../src/protocol/secrets.js";
import { errorResult, logLine, redactValue, resourceText, toolResult } from "../src/response.js";
import { EoaError } from "../src/errors.js";

/** The one way out: every string value redacted on its own, never serialized text; nothing can fail. */

const TOKEN = "ghp_" + "a".repeat(36);
const redact = (t: string) => redactSecrets(t, ["s3cret-configured-token"]);
const KEY =
  "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun";

describe("the response builder", () => {
  it("keeps JSON-shaped values intact (a URL next to an e-mail address is not a credential)", () => {
    const data = { url: "http://localhost:23000", owner: "dev@example.com", n: 3, ok: true, none: null };
    expect(toolResult({ data, text: JSON.stringify(data) }, redact)).toEqual({
      content: [{ type: "text", text: JSON.stringify(data) }],
      structuredContent: data,
    });
    expect(JSON.parse(resourceText({ json: data }, redact))).toEqual(data);
  });

  it("redacts a token after a newline, a configured token and a key with no END line, in every value and key", () => {
    const data = { note: `line1\n${TOKEN}`, nested: [{ k: "s3cret-configured-token" }], [TOKEN]: KEY };
    const out = JSON.stringify(toolResult({ data, text: `x\n${TOKEN}` }, redact));
    expect(out).not.toContain(TOKEN.slice(4));
    expect(out).not.toContain("s3cret-configured-token");
    expect(out).not.toContain("MIIEowIBAAKCAQEA");
    const again = toolResult({ data, text: "" }, redact).structuredContent as Record<string, unknown>;
    expect(again.note).toBe("line1\n[REDACTED]");
  });

  it("a resource with a key header in any value is still valid JSON", () => {
    const text = resourceText({ json: [{ issue: `leaked: ${KEY}`, id: "esc-001" }] }, redact);
    expect(JSON.parse(text)).toEqual([{ issue: "leaked: [REDACTED]", id: "esc-001" }]);
  });

  it("never throws: a value that cannot be rendered still gives an answer", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const r = toolResult(
      {
        data: {
          get boom() {
            throw new Error(TOKEN);
          },
        },
        text: "t",
      },
      redact,
    );
    expect(r.structuredContent).toEqual({});
    expect(JSON.stringify(r)).not.toContain(TOKEN.slice(4));
    expect(() => logLine("m", cyclic, redact)).not.toThrow();
  });

  it("errors: code, redacted message, next step and details", () => {
    const r = errorResult(new EoaError("X", `bad ${TOKEN}`, "do y", { where: `${KEY}` }), redact);
    expect(r.isError).toBe(true);
    expect(JSON.stringify(r)).not.toContain(TOKEN.slice(4));
    expect(JSON.stringify(r)).not.toContain("MIIEowIBAAKCAQEA");
    expect(r.structuredContent).toMatchObject({ error: { code: "X", next_step: "do y" } });
  });

  it("a log line redacts each value: a token behind an escape never reaches a sink", () => {
    const lines: string[] = [];
    const sink: LogSink = (_l, _n, line) => lines.push(String(line));
    const log = createLogger("t", { stderr: false, redact, sinks: new Set([sink]) });
    log.warn("effect failed", {
      error: `line1\n${TOKEN}`,
      url: "http://localhost:23000",
      owner: "dev@example.com",
    });
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain(TOKEN.slice(4));
    expect(lines[0]).toContain('"owner":"dev@example.com"');
  });

  it("redactValue leaves numbers, booleans and null alone", () => {
    expect(redactValue({ a: 1, b: false, c: null, d: [2, "x"] }, redact)).toEqual({
      a: 1,
      b: false,
      c: null,
      d: [2, "x"],
    });
  });
});
