/**
 * The PR's diff for Gate 1, in pages the model can read (issue 12, item 8): per-file patches packed
 * into pages of at most `pageBytes`, a file larger than a page cut at line boundaries. Page 1 goes
 * in the review packet; the rest are read from `eoa://reviews/{pr}/diff/{page}`.
 */

export const DIFF_PAGE_BYTES = 48 * 1024;

export function diffPages(text: string, pageBytes = DIFF_PAGE_BYTES): string[] {
  const pieces: string[] = [];
  for (const file of text.split(/(?=^diff --git )/m)) {
    if (!file) continue;
    if (bytes(file) <= pageBytes) pieces.push(file);
    else pieces.push(...linePages(file, pageBytes));
  }
  const pages: string[] = [];
  let page = "";
  for (const p of pieces) {
    if (page && bytes(page) + bytes(p) > pageBytes) {
      pages.push(page);
      page = "";
    }
    page += p;
  }
  if (page || !pages.length) pages.push(page);
  return pages;
}

/** A text longer than a page, in pieces of whole lines (a line longer than a page is cut). */
export function linePages(text: string, pageBytes: number): string[] {
  const out: string[] = [];
  let piece = "";
  for (const line of text.split(/(?<=\n)/)) {
    let rest = line;
    while (bytes(rest) > pageBytes) {
      if (piece) out.push(piece);
      piece = "";
      const head = Buffer.from(rest)
        .subarray(0, pageBytes)
        .toString("utf8")
        .replace(/\uFFFD$/, "");
      out.push(head);
      rest = rest.slice(head.length);
    }
    if (piece && bytes(piece) + bytes(rest) > pageBytes) {
      out.push(piece);
      piece = "";
    }
    piece += rest;
  }
  if (piece) out.push(piece);
  return out;
}

function bytes(s: string): number {
  return Buffer.byteLength(s);
}
