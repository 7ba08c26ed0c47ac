/**
 * Gate 2's "no secrets in the diff", and the redactor every outgoing text passes through
 * (docs/PROTOCOL.md, Durability: tokens never appear in output, resources, logs or reports). Pure
 * functions, no I/O.
 */

export interface SecretFinding {
  /** Path in the new tree. */
  file: string;
  /** 1-based line number in the new version of the file. */
  line: number;
  kind: string;
  /** The added line with the secret masked (first 4 characters, then ****). */
  excerpt: string;
}

interface TokenPattern {
  kind: string;
  re: RegExp;
}

/** Well-known credential formats; each regex is global and matches the credential itself. */
const TOKEN_PATTERNS: TokenPattern[] = [
  { kind: "github_token", re: /\bgh[pousr]_[A-Za-z0-9]{36,255}\b/g },
  { kind: "github_token", re: /\bgithub_pat_[A-Za-z0-9_]{22,255}\b/g },
  { kind: "aws_access_key_id", re: /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g },
  { kind: "slack_token", re: /\bxox[baprs]-[0-9A-Za-z-]{10,}/g },
  { kind: "stripe_live_key", re: /\b[sr]k_live_[0-9A-Za-z]{16,}\b/g },
  { kind: "google_api_key", re: /\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])/g },
];

const PRIVATE_KEY_HEADER = /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----/;

/**
 * `password = "…"`, `"client_secret": "…"`: a credential-named key assigned a quoted literal
 * without whitespace (a sentence is a message, not a password). Group 2 is the value.
 */
const ASSIGNMENT =
  /[A-Za-z0-9_.-]{0,40}(?:password|passwd|secret|api[_-]?key|access[_-]?key|auth[_-]?token|access[_-]?token|private[_-]?key)[A-Za-z0-9_]{0,40}["']?\s*(?:=>|:=|=|:)\s*(["'`])([^"'`\s]{8,})\1/gi;

/** Env-file style `DB_PASSWORD=s3cr3t-value` (upper-case key, whole line). Group 1 is the value. */
const ENV_ASSIGNMENT =
  /^\s*(?:export\s+)?[A-Z0-9_]{0,40}(?:PASSWORD|PASSWD|SECRET|API_?KEY|ACCESS_?KEY|TOKEN)[A-Z0-9_]{0,40}=([^\s"'`#]{8,})\s*$/g;

/** Values that are obviously not a real credential: examples, references, templates. */
function isPlaceholder(value: string): boolean {
  const v = value.trim();
  if (/\$\{|\{\{|%\(|<[^>]*>|^\$|^%|process\.env|os\.environ|getenv|ENV\[|secrets\.|vault:/i.test(v))
    return true;
  if (/^(.)\1+$/.test(v) || /^[*x.•-]+$/i.test(v)) return true;
  if (
    /^(?:change[_-]?me|changeit|placeholder|example|sample|dummy|redacted|password\d*|secret\d*|test(?:ing)?|fake|none|null|undefined|todo|your[_-].*|my[_-]?password|\[redacted\])$/i.test(
      v,
    )
  ) {
    return true;
  }
  // A bare identifier reference such as `config.dbPassword` or `settings.SECRET_KEY`.
  return /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+$/.test(v);
}

function mask(secret: string): string {
  return `${secret.slice(0, 4)}****`;
}

function excerptOf(line: string, start: number, end: number): string {
  const masked = `${line.slice(0, start)}${mask(line.slice(start, end))}${line.slice(end)}`.trim();
  return masked.length > 160 ? `${masked.slice(0, 157)}...` : masked;
}

/** Findings on one added line. Specific formats first; a generic assignment is reported only if no format matched its value. */
function scanLine(text: string): Array<{ kind: string; excerpt: string }> {
  const found: Array<{ kind: string; excerpt: string }> = [];
  const covered: Array<[number, number]> = [];
  if (PRIVATE_KEY_HEADER.test(text)) {
    // The header names the key type and is not secret itself; the key body follows it.
    found.push({ kind: "private_key", excerpt: text.trim().slice(0, 160) });
  }
  for (const { kind, re } of TOKEN_PATTERNS) {
    for (const m of text.matchAll(re)) {
      const start = m.index;
      covered.push([start, start + m[0].length]);
      found.push({ kind, excerpt: excerptOf(text, start, start + m[0].length) });
    }
  }
  for (const m of [...text.matchAll(ASSIGNMENT), ...text.matchAll(ENV_ASSIGNMENT)]) {
    const value = m[2] ?? m[1];
    if (!value || isPlaceholder(value)) continue;
    const start = m.index + m[0].lastIndexOf(value);
    const end = start + value.length;
    if (covered.some(([s, e]) => start < e && s < end)) continue;
    found.push({ kind: "password_assignment", excerpt: excerptOf(text, start, end) });
  }
  return found;
}

/**
 * Scans the added lines of a unified diff (as `git diff` prints it) and reports each suspected
 * credential with its file and its line number in the new file. Hunk line counts are followed, so
 * an added line that itself starts with `++` is never mistaken for a file header.
 */
export function scanDiffForSecrets(unifiedDiff: string): SecretFinding[] {
  const findings: SecretFinding[] = [];
  let file: string | null = null;
  let newLine = 0;
  let oldLeft = 0;
  let newLeft = 0;
  for (const raw of unifiedDiff.split("\n")) {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (oldLeft > 0 || newLeft > 0) {
      const tag = line[0];
      if (tag === "+") {
        if (file) for (const f of scanLine(line.slice(1))) findings.push({ file, line: newLine, ...f });
        newLine++;
        newLeft--;
      } else if (tag === "-") {
        oldLeft--;
      } else if (tag === " " || line === "") {
        newLine++;
        oldLeft--;
        newLeft--;
      }
      // "\ No newline at end of file" changes no count.
      continue;
    }
    const hunk = /^@@ -\d+(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/.exec(line);
    if (hunk) {
      oldLeft = hunk[1] === undefined ? 1 : Number(hunk[1]);
      newLine = Number(hunk[2]);
      newLeft = hunk[3] === undefined ? 1 : Number(hunk[3]);
      continue;
    }
    if (line.startsWith("diff --git ")) {
      file = null;
    } else if (line.startsWith("+++ ")) {
      file = diffPath(line.slice(4));
    }
  }
  return findings;
}

/** `b/src/a.ts` → `src/a.ts`; `/dev/null` (a deleted file) → null; C-quoted names unquoted. */
function diffPath(spec: string): string | null {
  let path = spec.replace(/\t.*$/, "");
  if (path === "/dev/null") return null;
  if (path.startsWith('"') && path.endsWith('"')) {
    path = path
      .slice(1, -1)
      .replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))
      .replace(/\\(.)/g, (_, c: string) => ({ n: "\n", t: "\t" })[c] ?? c);
    // git quotes non-ASCII bytes as octal escapes: the code units above are UTF-8 bytes.
    path = new TextDecoder().decode(Uint8Array.from(path, (ch) => ch.charCodeAt(0)));
  }
  return path.startsWith("b/") ? path.slice(2) : path;
}

/**
 * A private key: the block from its BEGIN line to its END line or, with no END line, the header
 * and the base64 runs that follow it, on their lines or folded onto one (never the rest of the text).
 */
const PRIVATE_KEY_BLOCK =
  /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|(?:\s+[A-Za-z0-9+/=]{16,})*)/g;
/** `user:password@` in a URL; neither part may cross a quote, comma or bracket (`…23000","owner":"dev@…`). */
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)[^/@\s:"'<>(),;]+:[^/@\s"'<>(),;]+@/gi;

/** A text in which none of these occur holds nothing the patterns below match (each pattern contains one). */
const MAY_HOLD_A_SECRET = /gh[pousr]_|github_pat_|AKIA|ASIA|xox[baprs]-|[sr]k_live_|AIza|PRIVATE KEY|:\/\//;

/**
 * Replaces every known secret (configured tokens, length >= 4), every credential-format match,
 * private key blocks and `user:password@` in URLs with `[REDACTED]`.
 */
export function redactSecrets(text: string, known: string[]): string {
  // Every string read from the hub and every answer passes through here: most hold nothing to scan for.
  if (!MAY_HOLD_A_SECRET.test(text) && !known.some((s) => s.length >= 4 && text.includes(s))) return text;
  let out = text;
  const secrets = [...new Set(known.filter((s) => typeof s === "string" && s.length >= 4))].sort(
    (a, b) => b.length - a.length,
  );
  for (const secret of secrets) out = out.split(secret).join("[REDACTED]");
  out = out.replace(PRIVATE_KEY_BLOCK, "[REDACTED]");
  for (const { re } of TOKEN_PATTERNS) out = out.replace(re, "[REDACTED]");
  return out.replace(URL_CREDENTIALS, "$1[REDACTED]@");
}
