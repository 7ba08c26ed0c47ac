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
  return `<untrusted source="${source}">\n${text.replace(/<\/?untrusted[^>]*>/gi, "")}\n</untrusted>`;
}
