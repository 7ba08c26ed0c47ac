/**
 * Listings that grow with the night come in pages (issue 16): no answer may outgrow what a client
 * reads in one message, whatever the state's size. A page holds at most `max` entries and about
 * PAGE_BYTES of JSON (one entry always, however large: the response builder bounds it), and names
 * the URI of the next one.
 */

export const PAGE_BYTES = 128 * 1024;

export function page<T>(
  items: readonly T[],
  from: number,
  max: number,
  maxBytes = PAGE_BYTES,
): { items: T[]; end: number } {
  const out: T[] = [];
  let bytes = 0;
  let i = from;
  for (; i < items.length && out.length < max; i++) {
    bytes += JSON.stringify(items[i]).length + 1;
    if (out.length && bytes > maxBytes) break;
    out.push(items[i]!);
  }
  return { items: out, end: i };
}

/** A cursor from a URI: a whole number in range, or undefined (the page is not found). */
export function offsetOf(cursor: string | undefined, total: number): number | undefined {
  if (!cursor || !/^\d{1,9}$/.test(cursor)) return undefined;
  const n = Number(cursor);
  return n < total || (n === 0 && total === 0) ? n : undefined;
}
