/** Text from agents, issues and PRs is untrusted: capped, stripped of control characters, one line where it lands in a subject. */

export const MAX_NOTE = 2000;

export function cap(text: string, max = MAX_NOTE): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/g, "");
  return clean.length > max ? `${clean.slice(0, max)}… [truncated ${clean.length - max} chars]` : clean;
}

export function oneLine(text: string, max = 120): string {
  const flat = cap(text, 4 * max)
    .replace(/\s+/g, " ")
    .trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** Marks text that came from outside (agents, PRs, issues) before it is shown to the model. */
export function untrusted(source: string, text: string): string {
  return `<untrusted source="${source}">\n${unmarked(text)}\n</untrusted>`;
}

/** The same marking within one line: a title in a list, a line of the report, a JSON value. */
export function untrustedInline(source: string, text: string): string {
  return `<untrusted source="${source}">${unmarked(text)}</untrusted>`;
}

/**
 * Forged marking tags removed until none is left: removing once would turn
 * `</untr</untrusted>usted>` into a closing tag that ends the block early.
 */
function unmarked(text: string): string {
  let out = text;
  for (let before = ""; before !== out;) {
    before = out;
    out = out.replace(/<\/?untrusted[^>]*>?/gi, "");
  }
  return out;
}
