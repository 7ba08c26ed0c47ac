import { Readable } from "node:stream";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  BoundedJsonError,
  CUT_MARK,
  readBoundedJson,
  type BoundedJsonLimits,
} from "../src/clients/bounded-json.js";

/** A body as a server sends it: in chunks of any size, split anywhere (inside a character too). */
function body(text: string, chunk: number): Readable {
  const bytes = Buffer.from(text);
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunk) parts.push(bytes.subarray(i, i + chunk));
  return Readable.from(parts, { objectMode: false });
}

const LIMITS: BoundedJsonLimits = {
  wholeBytes: 0,
  maxBytes: 1 << 30,
  maxString: 8,
  maxKept: 1 << 20,
  maxDepth: 8,
};
const whole = { ...LIMITS, wholeBytes: Infinity };

/** What the bounded reader should give: JSON.parse, with every string and key cut to 8. */
function expected(v: unknown): unknown {
  if (typeof v === "string") return v.length > 8 ? v.slice(0, 8) + CUT_MARK : v;
  if (Array.isArray(v)) return v.map(expected);
  if (v && typeof v === "object")
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [expected(k), expected(x)]));
  return v;
}

describe("readBoundedJson", () => {
  it("reads any JSON the same whole or streamed, chunked anywhere, with long strings cut", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.jsonValue({ maxDepth: 5 }),
        fc.integer({ min: 1, max: 64 }),
        async (value, chunk) => {
          const text = JSON.stringify(value);
          const want = expected(JSON.parse(text));
          expect(await readBoundedJson(body(text, chunk), LIMITS)).toEqual(want);
          expect(await readBoundedJson(body(text, chunk), whole)).toEqual(want);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("keeps characters whole when a chunk ends inside one, and cuts by characters", async () => {
    // Eight UTF-16 units are kept; a pair that the eighth would split is dropped whole.
    const text = JSON.stringify({ clé: "é€😀 naïve ünïcødé", abc: "abc😀😀😀", n: [1.5e3, true, null] });
    for (const limits of [LIMITS, whole]) {
      for (let chunk = 1; chunk <= 8; chunk++) {
        expect(await readBoundedJson(body(text, chunk), limits)).toEqual({
          clé: `é€😀 naï${CUT_MARK}`,
          abc: `abc😀😀${CUT_MARK}`,
          n: [1500, true, null],
        });
      }
    }
  });

  it("refuses, either way, JSON that is cut short, nested too deep, or has more to keep than allowed", async () => {
    const cases: Array<[string, BoundedJsonError["reason"], Partial<BoundedJsonLimits>?]> = [
      ['{"a":[1,', "invalid"],
      ["", "invalid"],
      ["{} {}", "invalid"],
      [`${"[".repeat(9)}${"]".repeat(9)}`, "too-deep"],
      [JSON.stringify(Array.from({ length: 100 }, () => "x".repeat(8))), "too-large", { maxKept: 500 }],
    ];
    for (const [text, reason, extra] of cases) {
      for (const limits of [LIMITS, whole]) {
        if (reason === "too-large" && limits === whole) continue; // a whole body is bounded by its size
        const err = await readBoundedJson(body(text, 7), { ...limits, ...extra }).catch((e: unknown) => e);
        expect(err, `${text.slice(0, 20)} (whole: ${limits === whole})`).toBeInstanceOf(BoundedJsonError);
        expect((err as BoundedJsonError).reason).toBe(reason);
      }
    }
  });

  /** `["yyyy…` without end, in 64 KB chunks, counting what was sent. */
  function endless() {
    const stream = new Readable({
      read() {
        stream.sent += 1;
        this.push(stream.sent === 1 ? '["' : "y".repeat(64 * 1024));
      },
    }) as Readable & { sent: number };
    stream.sent = 0;
    return stream;
  }

  it("stops reading a body once it has too much to keep, or too many bytes however little is kept", async () => {
    for (const limits of [
      { ...LIMITS, maxString: 1 << 30, maxKept: 1 << 20 },
      { ...LIMITS, maxString: 4096, maxBytes: 1 << 20 },
    ]) {
      const source = endless();
      const err = await readBoundedJson(source, limits).catch((e: unknown) => e);
      expect((err as BoundedJsonError).reason).toBe("too-large");
      expect(source.destroyed).toBe(true);
      expect(source.sent).toBeLessThan(64);
    }
  });

  it("streamed, cuts a long key like a string, and refuses a number too long to be one", async () => {
    const key = "k".repeat(1 << 20);
    expect(await readBoundedJson(body(JSON.stringify({ [key]: 1 }), 4096), LIMITS)).toEqual({
      [`kkkkkkkk${CUT_MARK}`]: 1,
    });
    const err = await readBoundedJson(body(`[${"9".repeat(1 << 20)}]`, 4096), LIMITS).catch(
      (e: unknown) => e,
    );
    expect((err as BoundedJsonError).reason).toBe("invalid");
  });
});
