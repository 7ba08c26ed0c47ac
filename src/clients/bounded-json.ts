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
  /** Bytes read in all: one endless string, however little of it is kept, ends here. */
  maxBytes: number;
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

/** Longer than any number a double can tell apart (a few dozen characters), with room to spare. */
const MAX_NUMBER_CHARS = 1024;

/** What a cut string ends with, so that no reader takes it for the whole text. */
export const CUT_MARK = "…[cut]";

/** The kept part of a cut string, marked, never ending in half a surrogate pair. */
function cutText(kept: string): string {
  const last = kept.charCodeAt(kept.length - 1);
  return (last >= 0xd800 && last <= 0xdbff ? kept.slice(0, -1) : kept) + CUT_MARK;
}

/** A whole string or key, cut to `max` characters if longer. */
function cutString(s: string, max: number): string {
  return s.length > max ? cutText(s.slice(0, max)) : s;
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
      for (let next = await source.next(); !next.done; next = await source.next()) {
        size += next.value.length;
        if (size > limits.maxBytes) {
          throw new BoundedJsonError(`a body of more than ${limits.maxBytes} bytes`, "too-large");
        }
        yield next.value;
      }
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
    if (typeof v === "string") return cutString(v, limits.maxString);
    if (v === null || typeof v !== "object") return v;
    if (depth >= limits.maxDepth) {
      throw new BoundedJsonError(`JSON nested deeper than ${limits.maxDepth}`, "too-deep");
    }
    if (Array.isArray(v)) return v.map((x) => cut(x, depth + 1));
    const out = Object.create(null) as Record<string, unknown>;
    for (const [k, x] of Object.entries(v)) out[cutString(k, limits.maxString)] = cut(x, depth + 1);
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
    // Nothing packed: every key, string and number arrives in pieces, and only what is kept is held.
    parser.asStream({ packValues: false, streamValues: true }),
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
          case "startKey":
          case "startNumber":
          case "startString":
            text = [];
            textLength = 0;
            cut = false;
            break;
          case "numberChunk":
            // Numbers come from the hub, not from agents: one too long to keep is no number.
            if (textLength + t.value.length > MAX_NUMBER_CHARS) {
              fail(new BoundedJsonError(`a number of more than ${MAX_NUMBER_CHARS} characters`, "invalid"));
            }
            keep(t.value.length);
            text.push(t.value);
            textLength += t.value.length;
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
          case "endKey":
            (stack[stack.length - 1] as Extract<Container, { kind: "object" }>).key = cut
              ? cutText(text.join(""))
              : text.join("");
            break;
          case "endString":
            place(cut ? cutText(text.join("")) : text.join(""));
            break;
          case "endNumber":
            place(Number(text.join("")));
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
    if (err instanceof BoundedJsonError) throw err;
    // The body itself failing (a reset, the time limit) is the caller's to report as such.
    if (!(err instanceof Error) || !/^Parser /.test(err.message)) throw err;
    throw new BoundedJsonError(err.message, "invalid");
  });
  if (!done) throw new BoundedJsonError("the body ended before its JSON did", "invalid");
  return root;
}
