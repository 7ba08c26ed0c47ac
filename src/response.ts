import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { EoaError, errorMessage, isEoaError } from "./errors.js";

/**
 * The one way out of the server for every answer (tool results, errors, resources, log lines).
 * It redacts each string value (never serialized text, where a pattern could eat a quote or miss a
 * token behind a JSON escape), bounds sizes, and cannot fail: whatever a tool committed is
 * answered, however its rendering went.
 */

export type Redact = (text: string) => string;

/** What a tool answer, a resource or a log line is allowed to weigh. */
export const MAX_TEXT_CHARS = 256 * 1024;

/** Deeper than any data eoa-mcp reads or answers: a hostile 10,000-level message context is cut here, not walked. */
const MAX_DEPTH = 64;

/** Every string in `value` (object keys included) through `redact`; other values as they are. */
export function redactValue(value: unknown, redact: Redact, depth = 0): unknown {
  if (typeof value === "string") return redact(value);
  if (value && typeof value === "object" && depth >= MAX_DEPTH) return "[too deep]";
  if (Array.isArray(value)) return value.map((v) => redactValue(v, redact, depth + 1));
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[redact(k)] = redactValue(v, redact, depth + 1);
    return out;
  }
  return value;
}

function bound(text: string, rest = "read the resources for the rest"): string {
  return text.length <= MAX_TEXT_CHARS
    ? text
    : `${text.slice(0, MAX_TEXT_CHARS)}\n… (${text.length - MAX_TEXT_CHARS} more characters cut: ${rest})`;
}

/** A tool's success. Never throws: a rendering that fails still answers what was done. */
export function toolResult(out: { data: unknown; text: string }, redact: Redact): CallToolResult {
  try {
    return {
      content: [{ type: "text", text: bound(redact(out.text)) }],
      structuredContent: redactValue(out.data, redact) as Record<string, unknown>,
    };
  } catch (err) {
    return {
      // The advertised output schema makes every field optional: an empty object is a valid answer.
      content: [{ type: "text", text: `Done, but the answer could not be rendered (${safeMessage(err)}).` }],
      structuredContent: {},
    };
  }
}

/** A refusal or failure, with its stable code and next step. Never throws. */
export function errorResult(err: unknown, redact: Redact): CallToolResult {
  const e: EoaError = isEoaError(err)
    ? err
    : new EoaError(
        "INTERNAL",
        `internal error: ${errorMessage(err)}`,
        "this is a bug in eoa-mcp: retry once, then report it with the server's stderr log",
      );
  let error: { code: string; message: string; next_step: string; details?: Record<string, unknown> };
  try {
    error = {
      code: e.code,
      message: bound(redact(e.message)),
      next_step: redact(e.nextStep),
      ...(e.details ? { details: redactValue(e.details, redact) as Record<string, unknown> } : {}),
    };
  } catch (renderErr) {
    error = {
      code: e.code,
      message: `(message not rendered: ${safeMessage(renderErr)})`,
      next_step: "retry once",
    };
  }
  return {
    isError: true,
    content: [{ type: "text", text: `${error.code}: ${error.message}\nNext step: ${error.next_step}` }],
    structuredContent: { error },
  };
}

/** What a resource reads: JSON data (compact for listings that grow) or markdown text. */
export type ResourceBody = { json: unknown; compact?: boolean } | { markdown: string };

/**
 * A resource's text. What grows with the night comes in pages; a record too large for one reply
 * all the same (a task given the largest spec the tools accept) is cut rather than sent whole: a
 * client stops reading at its buffer's size, and the server with it.
 */
export function resourceText(body: ResourceBody, redact: Redact): string {
  const rest = "a reply holds no more";
  if ("markdown" in body) return bound(redact(body.markdown), rest);
  const value = redactValue(body.json, redact);
  return bound(body.compact ? JSON.stringify(value) : JSON.stringify(value, null, 2), rest);
}

/** A log line: the message and each value of its data redacted, then serialized. */
export function logLine(msg: string, data: Record<string, unknown> | undefined, redact: Redact): string {
  const text = redact(msg);
  if (!data) return text;
  try {
    return `${text} ${JSON.stringify(redactValue(data, redact))}`;
  } catch {
    return `${text} ${redact(String(data))}`;
  }
}

/** What went wrong while rendering, without the text being rendered (it may hold anything). */
function safeMessage(err: unknown): string {
  return err instanceof Error ? err.name : typeof err;
}
