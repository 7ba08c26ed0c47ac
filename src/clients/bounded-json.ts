import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Token } from "stream-json/parser.js";

/**
 * A JSON body of any size, keeping at most `maxString` characters of each string. One huge field
 * (an agent's 50 MB subject) then costs neither memory nor the rest of the document: the listing
 * it sits in stays readable, and the message can be dealt with by its id. A body up to
 * `wholeBytes` is parsed whole, which is some fifty times faster; a larger one field by field as it
 * streams in.
 */

export interface BoundedJsonLimits {
  /** Bodies up to this size are read whole and parsed at once. */
  wholeBytes: number;
  /** Characters kept of each string or key; the rest is dropped and the string marked cut. */
  maxString: number;
  /** Characters kept in all: a bound on memory whatever the body's size. */
  maxKept: number;
  /** Nesting depth of objects and arrays. */
  maxDepth: number;
}

export class BoundedJsonError extends Error {
  constructor(
    message: string,
    readonly reason: "too-large" | "too-deep" | "invalid",
  ) {
    super(message);
  }
}

/** What a cut string ends with, so that no reader takes it for the whole text. */
export const CUT_MARK = "…[cut]";

/** The kept part of a cut string, marked, never ending in half a surrogate pair. */
function cutText(kept: string): string {
  const last = kept.charCodeAt(kept.length - 1);
  return (last >= 0xd800 && last <= 0xdbff ? kept.slice(0, -1) : kept) + CUT_MARK;
}

type Container =
  | { kind: "object"; value: Record<string, unknown>; key: string | null }
  | { kind: "array"; value: unknown[] };

export async function readBoundedJson(body: Readable, limits: BoundedJsonLimits): Promise<unknown> {
  const source = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const head: Buffer[] = [];
  let size = 0;
  while (size <= limits.wholeBytes) {
    const next = await source.next();
    if (next.done) return cutWhole(Buffer.concat(head).toString("utf8"), limits);
    head.push(next.value);
    size += next.value.length;
  }
  // Past the whole-body size: what was read, then the rest, through the streaming parser.
  const rest = Readable.from(
    (async function* () {
      yield* head;
      head.length = 0;
      for (let next = await source.next(); !next.done; next = await source.next()) yield next.value;
    })(),
    { objectMode: false },
  );
  try {
    return await streamBounded(rest, limits);
  } finally {
    // Ended early (a limit, bad JSON): stop the download too.
    await source.return?.();
  }
}

function cutWhole(text: string, limits: BoundedJsonLimits): unknown {
  let value: unknown;
  try {
    value = text ? JSON.parse(text) : undefined;
  } catch (err) {
    throw new BoundedJsonError((err as Error).message, "invalid");
  }
  if (value === undefined) throw new BoundedJsonError("the body is empty", "invalid");
  const cut = (v: unknown, depth: number): unknown => {
    if (typeof v === "string") return v.length > limits.maxString ? cutText(v.slice(0, limits.maxString)) : v;
    if (v === null || typeof v !== "object") return v;
    if (depth >= limits.maxDepth) {
      throw new BoundedJsonError(`JSON nested deeper than ${limits.maxDepth}`, "too-deep");
    }
    if (Array.isArray(v)) return v.map((x) => cut(x, depth + 1));
    const out = Object.create(null) as Record<string, unknown>;
    for (const [k, x] of Object.entries(v)) out[cut(k, limits.maxDepth) as string] = cut(x, depth + 1);
    return out;
  };
  return cut(value, 0);
}

async function streamBounded(body: Readable, limits: BoundedJsonLimits): Promise<unknown> {
  const stack: Container[] = [];
  let root: unknown;
  let done = false;
  let kept = 0;
  let text: string[] = [];
  let textLength = 0;
  let cut = false;

  let failure: BoundedJsonError | undefined;
  const fail = (err: BoundedJsonError): never => {
    failure = err;
    throw err;
  };
  const keep = (n: number) => {
    kept += n;
    if (kept > limits.maxKept) {
      fail(new BoundedJsonError(`more than ${limits.maxKept} characters of JSON to keep`, "too-large"));
    }
  };
  const place = (value: unknown) => {
    const top = stack[stack.length - 1];
    if (!top) {
      root = value;
      done = true;
    } else if (top.kind === "array") {
      top.value.push(value);
    } else {
      // No prototype, so a key named __proto__ is a key like any other, as with JSON.parse.
      top.value[top.key!] = value;
      top.key = null;
    }
  };
  const open = (c: Container) => {
    if (stack.length >= limits.maxDepth) {
      fail(new BoundedJsonError(`JSON nested deeper than ${limits.maxDepth}`, "too-deep"));
    }
    keep(1);
    place(c.value);
    stack.push(c);
  };

  // Loaded only for the rare body that needs it, not at every start-up.
  const { default: parser } = await import("stream-json/parser.js");
  await pipeline(
    body,
    parser.asStream({
      packKeys: true,
      streamKeys: false,
      packStrings: false,
      streamStrings: true,
      packNumbers: true,
      streamNumbers: false,
    }),
    async (tokens: AsyncIterable<Token>) => {
      for await (const t of tokens) {
        switch (t.name) {
          case "startObject":
            open({ kind: "object", value: Object.create(null) as Record<string, unknown>, key: null });
            break;
          case "startArray":
            open({ kind: "array", value: [] });
            break;
          case "endObject":
          case "endArray":
            stack.pop();
            break;
          case "keyValue": {
            const top = stack[stack.length - 1] as Extract<Container, { kind: "object" }>;
            const key =
              t.value.length > limits.maxString ? cutText(t.value.slice(0, limits.maxString)) : t.value;
            keep(key.length);
            top.key = key;
            break;
          }
          case "startString":
            text = [];
            textLength = 0;
            cut = false;
            break;
          case "stringChunk": {
            const room = limits.maxString - textLength;
            if (room <= 0) {
              cut = true;
              break;
            }
            const part = t.value.length > room ? t.value.slice(0, room) : t.value;
            if (part.length < t.value.length) cut = true;
            keep(part.length);
            text.push(part);
            textLength += part.length;
            break;
          }
          case "endString": {
            const value = cut ? cutText(text.join("")) : text.join("");
            place(value);
            text = [];
            break;
          }
          case "numberValue":
            keep(t.value.length);
            place(Number(t.value));
            break;
          case "nullValue":
          case "trueValue":
          case "falseValue":
            keep(4);
            place(t.value);
            break;
          default:
            break;
        }
      }
    },
  ).catch((err: unknown) => {
    // Thrown from the reader, the limit's error reaches pipeline() as an abort of the body.
    if (failure) throw failure;
    // The body itself failing (a reset, the time limit) is the caller's to report as such.
    if (!(err instanceof Error) || !/^Parser /.test(err.message)) throw err;
    throw new BoundedJsonError(err.message, "invalid");
  });
  if (!done) throw new BoundedJsonError("the body ended before its JSON did", "invalid");
  return root;
}
