import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { redactSecrets, scanDiffForSecrets } from "../src/protocol/secrets.js";
import { parseTestCounts, readCoverage } from "../src/review/coverage.js";
import { runCommand, scrubbedEnv } from "../src/review/run-command.js";

const exec = promisify(execFile);

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "eoa-review-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Members of a process group that are still running (zombies awaiting reaping do not count). */
async function liveGroupMembers(pgid: number): Promise<string[]> {
  const { stdout } = await exec("ps", ["-eo", "pid=,pgid=,stat=,comm="]);
  return stdout
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => Number(f[1]) === pgid && !f[2]?.startsWith("Z"))
    .map((f) => f.join(" "));
}

/** A timeout long enough for a busy machine to have started the shell (and run its `trap`). */
const SHELL_STARTED_MS = 1_500;

describe("runCommand", () => {
  it("reports success and failure exit codes with the output tail", async () => {
    const ok = await runCommand("echo hello; echo oops >&2", { cwd: dir, timeoutMs: 10_000 });
    expect(ok).toMatchObject({ exitCode: 0, signal: null, timedOut: false, aborted: false });
    expect(ok.outputTail).toContain("hello");
    expect(ok.outputTail).toContain("oops");
    const bad = await runCommand("echo failing; exit 3", { cwd: dir, timeoutMs: 10_000 });
    expect(bad.exitCode).toBe(3);
    expect(bad.outputTail).toContain("failing");
  });

  it("keeps only the last ~4 KB of output and streams chunks", async () => {
    const chunks: string[] = [];
    const r = await runCommand("i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done", {
      cwd: dir,
      timeoutMs: 10_000,
      onOutput: (c) => chunks.push(c),
    });
    expect(r.outputTail.length).toBeLessThanOrEqual(4096);
    expect(r.outputTail).toContain("line-1999");
    expect(r.outputTail).not.toContain("line-1\n");
    expect(chunks.join("")).toContain("line-0\n");
  });

  it("runs in the given directory", async () => {
    const r = await runCommand("pwd", { cwd: dir, timeoutMs: 10_000 });
    expect(r.outputTail.trim()).toBe(dir);
  });

  it("kills a hanging command on timeout", async () => {
    let pid = 0;
    const r = await runCommand("echo $$; sleep 60", {
      cwd: dir,
      timeoutMs: SHELL_STARTED_MS,
      killGraceMs: 1000,
      onOutput: (c) => (pid ||= Number(c.trim())),
    });
    expect(r).toMatchObject({ exitCode: null, timedOut: true, aborted: false });
    expect(r.signal).toMatch(/SIG(TERM|KILL)/);
    expect(pid).toBeGreaterThan(0);
    expect(await liveGroupMembers(pid)).toEqual([]);
  });

  it("kills the whole process group, background children included", async () => {
    let pid = 0;
    const r = await runCommand('echo $$; sh -c "sleep 60 & sleep 60"', {
      cwd: dir,
      timeoutMs: SHELL_STARTED_MS,
      killGraceMs: 1000,
      onOutput: (c) => (pid ||= Number(c.trim())),
    });
    expect(r.timedOut).toBe(true);
    expect(pid).toBeGreaterThan(0);
    expect(await liveGroupMembers(pid)).toEqual([]);
  });

  it("escalates to SIGKILL when the command ignores SIGTERM", async () => {
    let pid = 0;
    const r = await runCommand("trap '' TERM; echo $$; sleep 60 & wait; sleep 60", {
      cwd: dir,
      timeoutMs: SHELL_STARTED_MS,
      killGraceMs: 500,
      onOutput: (c) => (pid ||= Number(c.trim())),
    });
    expect(r.timedOut).toBe(true);
    expect(r.signal).toBe("SIGKILL");
    expect(pid).toBeGreaterThan(0);
    expect(await liveGroupMembers(pid)).toEqual([]);
  });

  it("stops background processes a finished command left behind", async () => {
    let pid = 0;
    const r = await runCommand("echo $$; sleep 60 > /dev/null 2>&1 & exit 0", {
      cwd: dir,
      timeoutMs: 10_000,
      killGraceMs: 1000,
      onOutput: (c) => (pid ||= Number(c.trim())),
    });
    expect(r.exitCode).toBe(0);
    expect(await liveGroupMembers(pid)).toEqual([]);
  });

  it("stops on abort", async () => {
    const ac = new AbortController();
    let pid = 0;
    const r = await runCommand('echo $$; sh -c "sleep 60 & sleep 60"', {
      cwd: dir,
      timeoutMs: 30_000,
      signal: ac.signal,
      killGraceMs: 1000,
      onOutput: (c) => {
        pid ||= Number(c.trim());
        setTimeout(() => ac.abort(), 100); // once the shell runs: its children are starting
      },
    });
    expect(r).toMatchObject({ aborted: true, timedOut: false, exitCode: null });
    expect(pid).toBeGreaterThan(0);
    expect(await liveGroupMembers(pid)).toEqual([]);
    const early = await runCommand("echo never", { cwd: dir, timeoutMs: 1000, signal: AbortSignal.abort() });
    expect(early).toMatchObject({ aborted: true, exitCode: null, outputTail: "" });
  });

  describe("environment", () => {
    const saved = { ...process.env };
    afterEach(() => {
      process.env = { ...saved };
    });

    it("never passes tokens to the command", async () => {
      process.env.GITHUB_TOKEN = "ghp_shouldnotleak";
      process.env.AIMAESTRO_TOKEN = "also-secret";
      process.env.SOME_OTHER_VAR = "ambient";
      const r = await runCommand("env", {
        cwd: dir,
        timeoutMs: 10_000,
        env: { NODE_ENV: "test", NPM_TOKEN: "passed-anyway", AWS_SECRET_ACCESS_KEY: "x", DB_PASSWORD: "y" },
      });
      expect(r.exitCode).toBe(0);
      expect(r.outputTail).not.toContain("ghp_shouldnotleak");
      expect(r.outputTail).not.toContain("also-secret");
      expect(r.outputTail).not.toContain("ambient");
      expect(r.outputTail).not.toContain("passed-anyway");
      expect(r.outputTail).not.toMatch(/AWS_SECRET|DB_PASSWORD/);
      expect(r.outputTail).toContain("CI=true");
      expect(r.outputTail).toContain("NODE_ENV=test");
      expect(r.outputTail).toContain("PATH=");
    });

    it("scrubbedEnv keeps only the basics", () => {
      process.env.GH_TOKEN = "x";
      process.env.LANG = "C.UTF-8";
      const env = scrubbedEnv({ FOO: "1", MY_API_KEY: "k" });
      expect(Object.keys(env).sort()).toEqual(
        [
          "CI",
          "FOO",
          "LANG",
          "PATH",
          ...(process.env.HOME ? ["HOME"] : []),
          ...(process.env.TMPDIR ? ["TMPDIR"] : []),
        ].sort(),
      );
    });
  });
});

describe("readCoverage", () => {
  async function fixture(files: Record<string, string>): Promise<string> {
    const wt = await mkdtemp(join(dir, "wt-"));
    for (const [path, text] of Object.entries(files)) {
      await mkdir(join(wt, path, ".."), { recursive: true });
      await writeFile(join(wt, path), text);
    }
    return wt;
  }

  it("reads istanbul's coverage-summary.json", async () => {
    const wt = await fixture({
      "coverage/coverage-summary.json": JSON.stringify({
        total: { lines: { total: 200, covered: 171, pct: 85.5 }, statements: { pct: 80 } },
      }),
      "coverage/lcov.info": "LF:10\nLH:1\n",
    });
    expect(await readCoverage(wt)).toEqual({ percent: 85.5, source: "coverage/coverage-summary.json" });
  });

  it("sums LF/LH from lcov.info", async () => {
    const wt = await fixture({
      "coverage/lcov.info":
        "TN:\nSF:a.ts\nDA:1,1\nLF:10\nLH:8\nend_of_record\nSF:b.ts\nLF:30\nLH:22\nend_of_record\n",
    });
    expect(await readCoverage(wt)).toEqual({ percent: 75, source: "coverage/lcov.info" });
  });

  it("reads cobertura's line-rate", async () => {
    const wt = await fixture({
      "coverage.xml":
        '<?xml version="1.0" ?>\n<coverage version="7.4" timestamp="1" lines-valid="3" line-rate="0.8123" branch-rate="0.5">\n</coverage>\n',
    });
    expect(await readCoverage(wt)).toEqual({ percent: 81.23, source: "coverage.xml" });
  });

  it("returns null when there is no report, or only an unusable one", async () => {
    expect(await readCoverage(await fixture({}))).toBeNull();
    expect(
      await readCoverage(
        await fixture({ "coverage/coverage-summary.json": '{"total":{"lines":{"pct":"Unknown"}}}' }),
      ),
    ).toBeNull();
    expect(await readCoverage(await fixture({ "coverage/coverage-summary.json": "not json" }))).toBeNull();
  });

  it("does not follow a symlinked report", async () => {
    const outside = await fixture({ "summary.json": JSON.stringify({ total: { lines: { pct: 100 } } }) });
    const wt = await fixture({});
    await mkdir(join(wt, "coverage"));
    await symlink(join(outside, "summary.json"), join(wt, "coverage/coverage-summary.json"));
    expect(await readCoverage(wt)).toBeNull();
  });
});

describe("parseTestCounts", () => {
  it.each([
    [
      "vitest",
      " Test Files  3 passed (3)\n      Tests  47 passed | 2 failed (49)\n",
      { passed: 47, failed: 2 },
    ],
    [
      "vitest with skips",
      "      Tests  2 failed | 40 passed | 3 skipped (45)",
      { passed: 40, failed: 2, skipped: 3 },
    ],
    [
      "vitest colours",
      "\x1b[2m      Tests \x1b[22m \x1b[1m\x1b[32m15 passed\x1b[39m\x1b[22m\x1b[90m (15)\x1b[39m",
      { passed: 15, failed: 0 },
    ],
    [
      "jest",
      "Test Suites: 1 failed, 4 passed, 5 total\nTests:       2 failed, 47 passed, 49 total\n",
      { passed: 47, failed: 2 },
    ],
    ["jest skipped", "Tests:       1 skipped, 10 passed, 11 total", { passed: 10, failed: 0, skipped: 1 }],
    [
      "mocha",
      "\n  47 passing (2s)\n  1 pending\n  2 failing\n\n  1) suite\n",
      { passed: 47, failed: 2, skipped: 1 },
    ],
    [
      "pytest",
      "============ 2 failed, 47 passed, 1 skipped in 1.23s ============",
      { passed: 47, failed: 2, skipped: 1 },
    ],
    ["pytest -q", "47 passed, 2 failed in 1.2s", { passed: 47, failed: 2 }],
    [
      "pytest errors",
      "===== 1 failed, 3 passed, 1 error, 2 warnings in 0.50s =====",
      { passed: 3, failed: 2 },
    ],
    [
      "node:test tap",
      "1..49\n# tests 49\n# suites 3\n# pass 47\n# fail 2\n# cancelled 0\n# skipped 0\n# todo 0\n",
      { passed: 47, failed: 2, skipped: 0 },
    ],
    ["node:test spec", "ℹ tests 5\nℹ pass 5\nℹ fail 0\n", { passed: 5, failed: 0 }],
    ["generic", "Summary: 12 passed, 1 failed", { passed: 12, failed: 1 }],
    ["generic tests", "12 tests passed, 3 tests failed", { passed: 12, failed: 3 }],
    [
      "workspaces sum",
      "      Tests  10 passed (10)\n...\n      Tests  5 passed | 1 failed (6)\n",
      { passed: 15, failed: 1 },
    ],
  ])("%s", (_name, output, expected) => {
    expect(parseTestCounts(output)).toEqual(expected);
  });

  it("returns null when no summary is recognised", () => {
    expect(parseTestCounts("")).toBeNull();
    expect(parseTestCounts("Build succeeded\nDone in 3s")).toBeNull();
    expect(parseTestCounts(" Test Files  3 passed (3)")).toBeNull();
  });
});

describe("scanDiffForSecrets", () => {
  const ghToken = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8";
  const diff = [
    "diff --git a/src/config.ts b/src/config.ts",
    "index 1111111..2222222 100644",
    "--- a/src/config.ts",
    "+++ b/src/config.ts",
    "@@ -10,4 +10,6 @@ export const config = {",
    "   name: 'demo',",
    "-  old: true,",
    `+  token: "${ghToken}",`,
    "+  region: 'eu',",
    "   port: 80,",
    '+  password = "Sup3rS3cretValue!"',
    "   end: 1,",
    "@@ -40,2 +42,3 @@",
    "   a,",
    "+  aws: 'AKIAIOSFODNN7EXAMPLE',",
    "   b,",
    "diff --git a/keys/id_rsa b/keys/id_rsa",
    "new file mode 100644",
    "--- /dev/null",
    "+++ b/keys/id_rsa",
    "@@ -0,0 +1,3 @@",
    "+-----BEGIN RSA PRIVATE KEY-----",
    "+MIIEowIBAAKCAQEA7",
    "+-----END RSA PRIVATE KEY-----",
    "diff --git a/gone.txt b/gone.txt",
    "deleted file mode 100644",
    "--- a/gone.txt",
    "+++ /dev/null",
    "@@ -1 +0,0 @@",
    `-${ghToken}`,
    "",
  ].join("\n");

  it("finds secrets on added lines with new-file line numbers, masked", () => {
    const found = scanDiffForSecrets(diff);
    expect(found.map((f) => [f.file, f.line, f.kind])).toEqual([
      ["src/config.ts", 11, "github_token"],
      ["src/config.ts", 14, "password_assignment"],
      ["src/config.ts", 43, "aws_access_key_id"],
      ["keys/id_rsa", 1, "private_key"],
    ]);
    expect(found[0]!.excerpt).toBe('token: "ghp_****",');
    expect(found[1]!.excerpt).toBe('password = "Sup3****"');
    expect(found[2]!.excerpt).toBe("aws: 'AKIA****',");
    for (const f of found) {
      expect(f.excerpt).not.toContain(ghToken);
      expect(f.excerpt).not.toContain("Sup3rS3cretValue");
      expect(f.excerpt).not.toContain("IOSFODNN7EXAMPLE");
    }
  });

  it("recognises each token kind", () => {
    const line = (text: string) =>
      scanDiffForSecrets(`--- a/x\n+++ b/x\n@@ -0,0 +1 @@\n+${text}\n`).map((f) => f.kind);
    expect(line("const t = 'github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz'")).toEqual([
      "github_token",
    ]);
    expect(line("SLACK=xoxb-123456789012-abcdefABCDEF")).toEqual(["slack_token"]);
    expect(line("stripe.key = 'sk_live_4eC39HqLyjWDarjtT1zdp7dc'")).toEqual(["stripe_live_key"]);
    expect(line("maps: AIzaSyA1234567890abcdefghijklmnopqrstuv")).toEqual(["google_api_key"]);
    expect(line("-----BEGIN OPENSSH PRIVATE KEY-----")).toEqual(["private_key"]);
    expect(line("-----BEGIN PRIVATE KEY-----")).toEqual(["private_key"]);
    expect(line('"client_secret": "q8Zr2vLp0wXy"')).toEqual(["password_assignment"]);
    expect(line("DB_PASSWORD=q8Zr2vLp0wXy")).toEqual(["password_assignment"]);
  });

  it("does not flag placeholders, references or removed lines", () => {
    const added = [
      'password = "changeme"',
      'password = "${DB_PASSWORD}"',
      "password: process.env.DB_PASSWORD,",
      'secret = "process.env.SECRET"',
      'apiKey = "<your-api-key>"',
      'password = "********"',
      'password = "xxxxxxxxxx"',
      'password = "short"',
      'passwordHint = "Password must be at least 8 characters"',
      "const secret = getSecret();",
      "password = get_password_from_vault()",
      'secret: "{{ vault.secret }}"',
      "DB_PASSWORD=${DB_PASSWORD}",
      'aws = "AKIA_NOT_A_KEY"',
      "-----BEGIN PUBLIC KEY-----",
      "token: string;",
    ];
    const d = `--- a/x\n+++ b/x\n@@ -1,1 +1,${added.length + 1} @@\n ctx\n${added.map((l) => `+${l}`).join("\n")}\n`;
    expect(scanDiffForSecrets(d)).toEqual([]);
  });

  it("treats an added line starting with '++' as content, not a header", () => {
    const d = [
      "--- a/notes.md",
      "+++ b/notes.md",
      "@@ -1,1 +1,3 @@",
      " intro",
      `+++ ${ghToken}`,
      "+end",
    ].join("\n");
    expect(scanDiffForSecrets(d)).toEqual([
      { file: "notes.md", line: 2, kind: "github_token", excerpt: "++ ghp_****" },
    ]);
  });

  it("unquotes C-quoted file names", () => {
    const d = `--- a/x\n+++ "b/caf\\303\\251 file.txt"\n@@ -0,0 +1 @@\n+${ghToken}\n`;
    expect(scanDiffForSecrets(d)[0]?.file).toBe("café file.txt");
  });
});

describe("redactSecrets", () => {
  it("replaces known secrets and token formats", () => {
    const text =
      "token abcd1234 and ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8 via https://u:pw@github.com/o/r.git\n" +
      "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\nkey AKIAIOSFODNN7EXAMPLE";
    const out = redactSecrets(text, ["abcd1234", "abc", ""]);
    expect(out).toBe(
      "token [REDACTED] and [REDACTED] via https://[REDACTED]@github.com/o/r.git\n[REDACTED]\nkey [REDACTED]",
    );
  });

  it("leaves ordinary text and short known values alone", () => {
    expect(redactSecrets("nothing to see, abc", ["abc"])).toBe("nothing to see, abc");
  });

  it("finds every credential format inside ordinary text", () => {
    for (const token of [
      "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
      "xoxb-123456789012-abcdefABCDEF",
      "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
      "AIzaSyA1234567890abcdefghijklmnopqrstuv",
      "ASIAIOSFODNN7EXAMPLE",
      "ghs_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
    ]) {
      expect(redactSecrets(`[PROGRESS] GH-101 50% (${token}) next`, [])).toBe(
        "[PROGRESS] GH-101 50% ([REDACTED]) next",
      );
    }
    expect(redactSecrets("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC", [])).toBe(
      "[REDACTED]",
    );
    expect(redactSecrets("see HTTPS://bot:hunter22@hub.example/x", [])).toBe(
      "see HTTPS://[REDACTED]@hub.example/x",
    );
    expect(redactSecrets("the key is s3cret-configured", ["s3cret-configured"])).toBe(
      "the key is [REDACTED]",
    );
  });
});
