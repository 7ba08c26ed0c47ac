import { lstat, readFile } from "node:fs/promises";
import { join } from "node:path";

/**
 * Gate 2 evidence read from what the review commands left behind: line coverage from the usual
 * report files, and test counts from the test command's output. The worktree holds PR content, so
 * only regular files (no symlinks) of bounded size are read, and only numbers are taken from them.
 */

export interface Coverage {
  percent: number;
  /** The report file it came from, relative to the worktree. */
  source: string;
}

export interface TestCounts {
  passed: number;
  failed: number;
  skipped?: number;
}

/**
 * Report files in the order they are tried. A PR could commit one of these with a flattering
 * number: callers should delete them before running the coverage command.
 */
export const COVERAGE_FILES = [
  "coverage/coverage-summary.json",
  "coverage/lcov.info",
  "coverage/cobertura-coverage.xml",
  "coverage.xml",
] as const;

const MAX_REPORT_BYTES = 64 * 1024 * 1024;

export async function readCoverage(worktreePath: string): Promise<Coverage | null> {
  for (const source of COVERAGE_FILES) {
    const text = await readReport(join(worktreePath, source));
    if (text === null) continue;
    const percent = source.endsWith(".json")
      ? istanbulPercent(text)
      : source.endsWith(".info")
        ? lcovPercent(text)
        : coberturaPercent(text);
    if (percent !== null) return { percent: Math.round(percent * 100) / 100, source };
  }
  return null;
}

async function readReport(path: string): Promise<string | null> {
  try {
    const st = await lstat(path);
    if (!st.isFile() || st.size > MAX_REPORT_BYTES) return null;
    return await readFile(path, "utf8");
  } catch {
    return null;
  }
}

function istanbulPercent(text: string): number | null {
  try {
    const pct: unknown = (JSON.parse(text) as { total?: { lines?: { pct?: unknown } } }).total?.lines?.pct;
    return typeof pct === "number" && Number.isFinite(pct) ? pct : null; // "Unknown" when no lines
  } catch {
    return null;
  }
}

function lcovPercent(text: string): number | null {
  let found = 0;
  let hit = 0;
  for (const m of text.matchAll(/^(LF|LH):(\d+)\s*$/gm)) {
    if (m[1] === "LF") found += Number(m[2]);
    else hit += Number(m[2]);
  }
  return found > 0 ? (100 * hit) / found : null;
}

function coberturaPercent(text: string): number | null {
  const tag = /<coverage\b[^>]*>/.exec(text)?.[0];
  const rate = tag && /\bline-rate\s*=\s*["']([\d.]+)["']/.exec(tag)?.[1];
  const value = rate ? Number(rate) : NaN;
  return Number.isFinite(value) && value >= 0 && value <= 1 ? value * 100 : null;
}

// ---- test counts ----------------------------------------------------------------------------------

type Counter = { passed: number; failed: number; skipped: number; seen: boolean; sawSkipped: boolean };

/**
 * Test counts from a runner's summary: vitest/jest (`Tests  47 passed | 2 failed (49)`,
 * `Tests: 2 failed, 47 passed, 49 total`), pytest (`47 passed, 2 failed in 1.2s`), node:test
 * (`# pass 47`), mocha (`47 passing`), else a generic `N passed, N failed` line. The first format
 * found wins; its summaries are summed (a workspace run prints one per package). Null if none.
 */
export function parseTestCounts(output: string): TestCounts | null {
  // eslint-disable-next-line no-control-regex
  const lines = output.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "").split(/\r?\n/);
  for (const format of FORMATS) {
    const c: Counter = { passed: 0, failed: 0, skipped: 0, seen: false, sawSkipped: false };
    for (const line of lines) format(line, c);
    if (c.seen)
      return c.sawSkipped
        ? { passed: c.passed, failed: c.failed, skipped: c.skipped }
        : { passed: c.passed, failed: c.failed };
  }
  return null;
}

/** Adds every `<n> <word>` in `text` to the counter, with the words mapped to passed/failed/skipped. */
function tally(text: string, c: Counter, words: Record<string, keyof TestCounts>): boolean {
  let any = false;
  for (const m of text.matchAll(/(\d+)\s+([a-z]+)/gi)) {
    const key = words[m[2]!.toLowerCase()];
    if (!key) continue;
    c[key] += Number(m[1]);
    if (key === "skipped") c.sawSkipped = true;
    any = true;
  }
  if (any) c.seen = true;
  return any;
}

const FORMATS: Array<(line: string, c: Counter) => void> = [
  // vitest "Tests  2 failed | 47 passed (49)" and jest "Tests:  2 failed, 47 passed, 49 total";
  // "Test Files" and "Test Suites" count files, not tests, and are not matched.
  (line, c) => {
    const m = /^\s*Tests:?\s+(.*\d+\s+(?:passed|failed).*)$/.exec(line);
    if (m) tally(m[1]!, c, { passed: "passed", failed: "failed", skipped: "skipped", todo: "skipped" });
  },
  // pytest "==== 2 failed, 47 passed, 1 skipped in 1.23s ====" (also with -q, without the rules).
  (line, c) => {
    const m = /^[=\s]*((?:\d+ [a-z]+,?\s*)+)in [\d.]+s\b/.exec(line);
    if (m && /\d+ (passed|failed)/.test(m[1]!)) {
      tally(m[1]!, c, {
        passed: "passed",
        failed: "failed",
        error: "failed",
        errors: "failed",
        skipped: "skipped",
        xfailed: "skipped",
      });
    }
  },
  // node:test TAP "# pass 47" / "# fail 2" / "# skipped 1", and its spec reporter "ℹ pass 47".
  (line, c) => {
    const m = /^\s*(?:#|ℹ)\s*(pass|fail|skipped|todo)\s+(\d+)\s*$/.exec(line);
    if (m)
      tally(`${m[2]} ${m[1]}`, c, { pass: "passed", fail: "failed", skipped: "skipped", todo: "skipped" });
  },
  // mocha "  47 passing (2s)" / "  2 failing" / "  1 pending".
  (line, c) => {
    const m = /^\s*(\d+)\s+(passing|failing|pending)\b/.exec(line);
    if (m) tally(`${m[1]} ${m[2]}`, c, { passing: "passed", failing: "failed", pending: "skipped" });
  },
  // Anything else that says "N passed" and "N failed" on one line.
  (line, c) => {
    if (/\d+\s+(?:tests?\s+)?passed\b/i.test(line) && /\d+\s+(?:tests?\s+)?failed\b/i.test(line)) {
      tally(line.replace(/(\d+)\s+tests?\s+/gi, "$1 "), c, {
        passed: "passed",
        failed: "failed",
        skipped: "skipped",
      });
    }
  },
];
