import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { LoggingMessageNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GitMirror } from "../src/clients/git.js";
import { EoaError } from "../src/errors.js";
import { createLogger, type LogSink } from "../src/log.js";
import { ScriptedAgent, type Faults } from "../src/sim/agents.js";
import { createSurroundings, SEED_AGENTS, SEED_ISSUES, type Surroundings } from "../src/sim/environment.js";
import { assertBuilt, CLI } from "./fixtures/cli.js";
import { walk } from "./fixtures/file-tree.js";
import { FIXED_RESOURCES } from "./fixtures/resources.js";
import { callTool, type ToolResult } from "./fixtures/tool-calls.js";

/**
 * Issue 6, part 5: tokens never leave the server (SPEC §5). Recognisable tokens for GitHub, AI
 * Maestro and the HTTP transport are set in the config file and in the environment of a real
 * `eoa-mcp` process (`dist/cli.js`; `npm test` builds first, run `npm run build` before running this
 * file alone); the stand-ins require them. A whole simulated night runs through that process, with
 * faults that produce error messages (AI Maestro down, AI Maestro and GitHub answering 401, CI
 * failing, a security escalation), then a short session on the Streamable HTTP transport. Every
 * place text goes is then scanned for the tokens, and every scan is shown able to fail.
 */

const ORCH = "eoa-orchestrator";
const CYCLE_MINUTES = 10;
const MAX_CYCLES = 40;

const alnum = (n: number) =>
  [...randomBytes(n)]
    .map((b) => "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[b % 62])
    .join("");

/** Each token: a recognisable prefix and a random tail that appears nowhere else. */
const TOKENS = {
  github: `ghp_SECRETGITHUB${alnum(30)}`,
  aimaestro: `aim-SECRET-TOKEN-${alnum(32)}`,
  http: `http-SECRET-TOKEN-${alnum(32)}`,
} as const;
type TokenName = keyof typeof TOKENS;

/** All three tokens in one text, as a careless author pastes them. */
const PLANTED = `creds: github ${TOKENS.github} maestro=${TOKENS.aimaestro}\nhttp: ${TOKENS.http}`;
/** The ids of messages the test itself put into the orchestrator's inbox: the hub got them from an agent, not from eoa-mcp. */
const planted = new Set<string>();

/** What counts as a leak: the whole token, or any 16 characters of its random tail (a cut or wrapped copy). */
function needles(token: string): string[] {
  const tail = token.slice(token.length - 30);
  const out = [token];
  for (let i = 0; i + 16 <= tail.length; i += 7) out.push(tail.slice(i, i + 16));
  return out;
}

type Sinks = Record<string, string[]>;

/** Every (sink, token) pair where a token shows up. */
function leaks(sinks: Sinks): Array<{ sink: string; token: TokenName; where: string }> {
  const found: Array<{ sink: string; token: TokenName; where: string }> = [];
  for (const [sink, texts] of Object.entries(sinks)) {
    for (const text of texts) {
      for (const name of Object.keys(TOKENS) as TokenName[]) {
        const hit = needles(TOKENS[name]).find((n) => text.includes(n));
        if (hit) {
          const at = text.indexOf(hit);
          found.push({ sink, token: name, where: text.slice(Math.max(0, at - 80), at + 80) });
        }
      }
    }
  }
  return found;
}

const json = (v: unknown) => JSON.stringify(v) ?? "";

let root: string;
let sur: Surroundings;
let envDump: string;
const sinks: Sinks = {};
const add = (sink: string, text: string): void => {
  (sinks[sink] ??= []).push(text);
};
const notes: { errors: string[]; reviews: string[]; serverEnv: string; httpRefusal: string; uris: string[] } =
  {
    uris: [],
    errors: [],
    reviews: [],
    serverEnv: "",
    httpRefusal: "",
  };

beforeAll(async () => {
  assertBuilt();
  root = await mkdtemp(join(tmpdir(), "eoa-secrets-"));
  envDump = join(root, "review-env.txt");
  sur = await createSurroundings({
    root,
    tokens: { github: TOKENS.github, aimaestro: TOKENS.aimaestro },
    // Issue 14: the tokens planted in text that enters the process (an issue body here, a PR body
    // and an agent's message below) are redacted before they are stored, sent or written.
    issues: SEED_ISSUES.map((i) => (i.number === 102 ? { ...i, body: `${i.body}\n${PLANTED}\n` } : i)),
    config: {
      http: { token: TOKENS.http },
      review: {
        // The review commands dump their whole environment where the test can read it afterwards.
        commands: { test: `env >> '${envDump}'; sh tests/run.sh`, lint: `env >> '${envDump}'; sh lint.sh` },
      },
    },
  });
  await runNight();
  await runHttp();
  await collectAfterwards();
}, 240_000);

afterAll(async () => {
  await sur?.close();
  if (root) await rm(root, { recursive: true, force: true });
});

/** The environment of every spawned server: the tokens as a user would export them. */
function serverEnv(extra: Record<string, string>): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "",
    HOME: root,
    TMPDIR: root,
    EOA_LOG_LEVEL: "debug",
    GITHUB_TOKEN: TOKENS.github,
    GH_TOKEN: TOKENS.github,
    AIMAESTRO_TOKEN: TOKENS.aimaestro,
    EOA_HTTP_TOKEN: TOKENS.http,
    ...extra,
  };
}

/** The seed's night with faults, through a real stdio server process, as `eoa-mcp simulate` runs it. */
async function runNight(): Promise<void> {
  const clockFile = join(root, "clock.txt");
  const tick = async (minutes: number) => {
    sur.clock.advance(minutes);
    await writeFile(clockFile, sur.clock.now().toISOString());
  };
  await tick(0);
  const faults: Faults = {
    silentAgent: false,
    ciFailure: true,
    mergeConflict: false,
    securityIssue: true,
    overlappingPrs: false,
    agentQuestion: false,
    agentError: false,
    bogusPr: false,
    allOffline: false,
  };
  let pr = 146;
  const world = {
    aimaestro: sur.aimaestro,
    github: sur.github,
    repo: sur.repo,
    orchestrator: ORCH,
    faults,
    nextPr: () => ++pr,
    outage: () => false,
    log: () => undefined,
  };
  const agents = SEED_AGENTS.map(
    (a) =>
      new ScriptedAgent(a.id, sur.aimaestro.url, world, {
        token: TOKENS.aimaestro,
        prBodyNote: `\n\n${PLANTED}`,
        ...(a.id === "dev-agent-1" ? { raisesSecurityOn: "GH-103" } : {}),
      }),
  );

  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI, "--config", sur.configFile],
    env: serverEnv({ EOA_FAKE_CLOCK_FILE: clockFile }),
    stderr: "pipe",
    cwd: root,
  });
  let stderr = "";
  transport.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const client = new Client({ name: "eoa-secrets", version: "1.0.0" });
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) =>
    add("MCP log notifications", json(n)),
  );

  const call = async (name: string, args: Record<string, unknown> = {}): Promise<ToolResult> => {
    const r = await callTool(client, name, args, { timeout: 120_000 });
    add("tool results", json(r));
    if (r.isError) notes.errors.push(`${name}: ${r.content?.[0]?.text ?? ""}`);
    return r;
  };
  const readAll = async () => {
    const uris = new Set([...FIXED_RESOURCES, "eoa://reports/latest"]);
    for (const r of (await client.listResources()).resources) uris.add(r.uri);
    for (const id of ["GH-101", "GH-102", "GH-103"]) uris.add(`eoa://tasks/${id}`);
    for (const uri of uris) add("resources", json(await client.readResource({ uri })));
    return uris;
  };

  try {
    await client.connect(transport);
    notes.serverEnv = await readFile(`/proc/${transport.pid}/environ`, "utf8").catch(() => "");
    await client.setLoggingLevel("debug");

    await call("preflight");
    const confirm = await call("start_session", { tasks: ["GH-101", "GH-102", "GH-103"] });
    const sessionId = confirm.structuredContent?.session_id as string;
    await call("start_session", {
      session_id: sessionId,
      approve: true,
      directive: "Escalate only for security issues",
    });
    await call("assign_task", { task_id: "GH-101", agent: "dev-agent-1", next_task_on_complete: "GH-103" });
    await call("assign_task", { task_id: "GH-102", agent: "dev-agent-2" });
    await call("assign_task", { task_id: "GH-103" });

    let githubRefused = false;
    for (let cycle = 0; cycle < MAX_CYCLES; cycle++) {
      await tick(CYCLE_MINUTES);
      if (cycle === 1) {
        // AI Maestro down for a whole cycle: the agents cannot talk, the server cannot read.
        await sur.aimaestro.setFault({ down: true });
        await call("check_messages");
        await sur.aimaestro.clearFault();
        continue;
      }
      for (const a of agents) await a.tick();
      if (cycle === 2) {
        // An agent's message carrying the tokens, delivered as the hub delivers it.
        const m = sur.aimaestro.inject({
          from: "dev-agent-2",
          to: ORCH,
          subject: `[PROGRESS] GH-102 ${PLANTED}`.slice(0, 80),
          content: { type: "message", message: `[PROGRESS] GH-102 60% db set up with ${PLANTED}` },
        });
        planted.add(m.id);
      }
      if (cycle === 3) {
        // The hub refuses the server's token once (and answers 500 once after that).
        await sur.aimaestro.setFault({ status: 401, count: 1 });
      }
      const r = await call("check_messages");
      const due = (r.structuredContent?.actions_due ?? []) as Array<{
        tool: string;
        arguments: Record<string, unknown>;
      }>;
      for (const a of due) {
        if (a.tool === "review_pr") {
          if (!githubRefused) {
            // GitHub refuses the token once, in the middle of a review.
            githubRefused = true;
            sur.github.failNext({ status: 401 });
          }
          const first = await call("review_pr", a.arguments);
          notes.reviews.push(String(first.structuredContent?.decision ?? first.content?.[0]?.text));
          if (first.structuredContent?.decision === "awaiting_assessment") {
            const second = await call("review_pr", {
              ...a.arguments,
              spec_assessment: {
                implements_request: true,
                no_scope_creep: true,
                interface_contract_met: true,
                notes: "matches the issue",
              },
            });
            notes.reviews.push(String(second.structuredContent?.decision ?? second.content?.[0]?.text));
          }
        } else if (a.tool === "assign_task") {
          await call("assign_task", a.arguments);
        }
      }
      if (cycle === 5) await readAll();
      const tasks = JSON.parse(
        ((await client.readResource({ uri: "eoa://tasks" })).contents[0] as { text: string }).text,
      ) as { tasks: Array<{ status: string }> };
      if (tasks.tasks.every((t) => ["done", "human-review", "blocked"].includes(t.status))) break;
    }
    await tick(CYCLE_MINUTES);
    await call("escalate", {
      category: "infrastructure",
      issue: "the staging database refused the connection",
      context: "seen while checking the deployment",
    });
    await call("write_report", { session_id: sessionId });
    // Every agent offline: assignment halts and the state is snapshotted.
    await call("mark_agent_offline", { agent: "dev-agent-1", reason: "laptop closed" });
    await call("mark_agent_offline", { agent: "dev-agent-2", reason: "laptop closed" });
    await call("check_messages");
    await call("write_report", { session_id: sessionId });
    notes.uris = [...(await readAll())];
    add(
      "reports/latest",
      ((await client.readResource({ uri: "eoa://reports/latest" })).contents[0] as { text: string }).text,
    );
  } finally {
    await client.close().catch(() => undefined);
    for (const a of agents) await a.close();
    add("server stderr (stdio)", stderr);
  }
}

/** A short session on the Streamable HTTP transport, and one request with a wrong token. */
async function runHttp(): Promise<void> {
  const child = spawn(process.execPath, [CLI, "--http", "--port", "0", "--config", sur.configFile], {
    cwd: root,
    env: serverEnv({}),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  let stdout = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no HTTP url in time; stderr: ${stderr}`)), 30_000);
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once("exit", (code) => reject(new Error(`HTTP server exited (${code}): ${stderr}`)));
  });
  try {
    const wrong = await fetch(url, {
      method: "POST",
      headers: {
        authorization: `Bearer ${TOKENS.http.slice(0, -1)}x`,
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }),
    });
    notes.httpRefusal = `${wrong.status} ${await wrong.text()}`;
    add("HTTP answers", notes.httpRefusal);
    const client = new Client({ name: "eoa-secrets-http", version: "1.0.0" });
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) =>
      add("MCP log notifications", json(n)),
    );
    await client.connect(
      new StreamableHTTPClientTransport(new URL(url), {
        requestInit: { headers: { authorization: `Bearer ${TOKENS.http}` } },
      }),
    );
    await client.setLoggingLevel("debug");
    for (const uri of ["eoa://config", "eoa://session", "eoa://reports/latest"]) {
      add("resources", json(await client.readResource({ uri })));
    }
    add("tool results", json(await client.callTool({ name: "preflight", arguments: {} })));
    add("tool results", json(await client.callTool({ name: "check_messages", arguments: { peek: true } })));
    await client.close();
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("close", r));
    add("server stderr (http)", stderr);
    add("server stdout (http)", stdout);
  }
}

/** What the night left behind: the stand-ins' records, the state directory, the review environment. */
async function collectAfterwards(): Promise<void> {
  for (const name of [
    "dev-agent-1",
    "dev-agent-2",
    "user-notification-channel",
    "orchestrator-queue",
    ORCH,
  ]) {
    for (const m of sur.aimaestro.messagesFor(name)) {
      if (!planted.has(m.id)) add("messages sent to AI Maestro", json(m));
    }
  }
  for (const body of sur.aimaestro.sent) add("messages sent to AI Maestro", json(body));
  for (const c of sur.aimaestro.calls) add("AI Maestro requests", json(c));
  for (const c of sur.github.calls) add("GitHub requests", json(c));
  // Everything under the state directory except git's compressed objects (a token there would be in
  // a commit, which Gate 2's secret scan is for).
  for (const file of await walk(sur.stateDir, (e) => e.isFile())) {
    if (/\/mirror\/objects\//.test(file)) continue;
    add("state directory", `${relative(sur.stateDir, file)}\n${await readFile(file, "utf8")}`);
  }
  const state = join(sur.stateDir, "state.json");
  add("state.json", await readFile(state, "utf8"));
  const snapshots = join(sur.stateDir, "snapshots");
  for (const f of existsSync(snapshots) ? await readdir(snapshots) : []) {
    add("snapshots", await readFile(join(snapshots, f), "utf8"));
  }
  const reports = join(sur.stateDir, "reports");
  for (const f of existsSync(reports) ? await readdir(reports) : []) {
    add("report files", await readFile(join(reports, f), "utf8"));
  }
  add("review command environment", existsSync(envDump) ? await readFile(envDump, "utf8") : "");
}

describe("secrets: a whole night with recognisable tokens", () => {
  it("the scanner finds a planted token in every sink, whole or cut", () => {
    expect(Object.keys(sinks).sort()).toEqual(
      [
        "AI Maestro requests",
        "GitHub requests",
        "HTTP answers",
        "MCP log notifications",
        "messages sent to AI Maestro",
        "report files",
        "reports/latest",
        "resources",
        "review command environment",
        "server stderr (http)",
        "server stderr (stdio)",
        "server stdout (http)",
        "snapshots",
        "state directory",
        "state.json",
        "tool results",
      ].sort(),
    );
    const names = Object.keys(TOKENS) as TokenName[];
    Object.keys(sinks).forEach((sink, i) => {
      const token = TOKENS[names[i % names.length]!];
      for (const planted of [
        `x ${token} y`,
        `cut: ${token.slice(0, -3)}`,
        JSON.stringify({ t: token.slice(2) }),
      ]) {
        const copy = { ...sinks, [sink]: [...sinks[sink]!, planted] };
        expect(
          leaks(copy).some((l) => l.sink === sink),
          `a token planted in ${sink} went unnoticed`,
        ).toBe(true);
      }
    });
    // The redactor's own marker is not a false positive.
    expect(leaks({ control: ["[REDACTED] ghp_**** aim-SECRET-TOKEN- http-SECRET-TOKEN-"] })).toEqual([]);
  });

  it("the night really ran: tokens were in play, faults produced errors, every sink has content", () => {
    // The server process was given the tokens in its environment as well as in its config file.
    for (const t of Object.values(TOKENS)) expect(notes.serverEnv).toContain(t);
    const config = JSON.parse(readFileSync(sur.configFile, "utf8")) as {
      github: { token: string };
      aimaestro: { token: string };
      http: { token: string };
    };
    expect([config.github.token, config.aimaestro.token, config.http.token]).toEqual([
      TOKENS.github,
      TOKENS.aimaestro,
      TOKENS.http,
    ]);
    // The stand-ins demanded them: the night got through, so the server sent them where they belong.
    expect(notes.reviews, `${notes.reviews.join("\n")}\n---\n${notes.errors.join("\n")}`).toContain("merge");
    expect(sinks["report files"]!.join("")).toMatch(/# Autonomous Operation Report/);
    // The planted text came in (the issue body in GH-102's assignment, the PR body in a review, the
    // agent's message in the state), its tokens redacted.
    const redacted = "creds: github [REDACTED] maestro=[REDACTED]";
    expect(sinks["messages sent to AI Maestro"]!.join("")).toContain(redacted);
    expect(sinks["tool results"]!.join("")).toMatch(/Closes #10\d\\n\\ncreds: github \[REDACTED\]/);
    expect(sinks["state directory"]!.join("")).toContain("GH-102 creds: github [REDACTED]");
    expect(sinks["snapshots"]!.length).toBeGreaterThan(0);
    // Every resource was read, the task template's instances included.
    expect(notes.uris).toEqual(
      expect.arrayContaining([
        "eoa://config",
        "eoa://tasks/GH-101",
        "eoa://tasks/GH-102",
        "eoa://tasks/GH-103",
      ]),
    );
    // The faults were felt and reported with error text: in a tool's answer, or in the log when the
    // server's own cycle (it runs on the clock the test moves) met the fault first.
    const said = [...notes.errors, ...sinks["tool results"]!, ...(sinks["MCP log notifications"] ?? [])].join(
      "\n",
    );
    expect(said).toMatch(/AIMAESTRO_UNREACHABLE|inbox not read/);
    expect(said).toMatch(/AI Maestro at http:\/\/\S+ answered \w+ \S+ with 401/);
    expect(said).toMatch(/GITHUB_AUTH|Bad credentials|401/);
    expect(notes.httpRefusal).toMatch(/^401 /);
    // Logs were produced on both channels, at debug level.
    expect(sinks["server stderr (stdio)"]!.join("").split("\n").length).toBeGreaterThan(20);
    expect(sinks["MCP log notifications"]!.length).toBeGreaterThan(5);
    // The review commands ran with the environment they were given, and it was dumped.
    const dumped = sinks["review command environment"]!.join("");
    expect(dumped).toMatch(/^PATH=/m);
    expect(dumped).toMatch(/^CI=true$/m);
    for (const s of Object.keys(sinks)) {
      if (s !== "server stdout (http)") expect(sinks[s]!.join("").length, s).toBeGreaterThan(0);
    }
  });

  it("no token appears in any tool result, resource, log line, report, message, request, state file or review environment", () => {
    expect(leaks(sinks)).toEqual([]);
  });

  it("the review commands' environment holds no credential-named variable at all", () => {
    const names = sinks["review command environment"]!.join("")
      .split("\n")
      .map((l) => /^([A-Za-z_][A-Za-z0-9_]*)=/.exec(l)?.[1])
      .filter((n): n is string => !!n);
    expect(names.length).toBeGreaterThan(0);
    expect(names.filter((n) => /TOKEN|SECRET|PASSWORD|KEY|AUTH/i.test(n))).toEqual([]);
  });
});

describe("secrets: a git remote with credentials in its URL", () => {
  it("an unreachable remote's errors, logs and mirror config never carry the token", async () => {
    const dir = await mkdtemp(join(tmpdir(), "eoa-secrets-git-"));
    try {
      const lines: string[] = [];
      const sinksSet = new Set<LogSink>([(_level, _name, data) => lines.push(String(data))]);
      const logger = createLogger("eoa", { stderr: false, level: "debug", sinks: sinksSet });
      // deps.ts puts the token in GitHub HTTPS remotes this way; port 1 refuses the connection.
      const remote = `https://x-access-token:${TOKENS.github}@127.0.0.1:1/acme/webapp.git`;
      const git = new GitMirror({ remote, stateDir: dir, logger, timeoutMs: 20_000 });
      const err = await git.fetchPullHead(147).then(
        () => new Error("the fetch should have failed"),
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(EoaError);
      const e = err as EoaError;
      expect(e.code).toBe("GIT_REMOTE_UNREACHABLE");
      const files = await walk(dir, (e) => e.isFile());
      const found = leaks({
        "git error": [
          json({ code: e.code, message: e.message, next: e.nextStep, details: e.details }),
          String(e.stack),
        ],
        "git logs": lines,
        "mirror files": await Promise.all(
          files.filter((f) => !/\/objects\//.test(f)).map(async (f) => `${f}\n${await readFile(f, "utf8")}`),
        ),
      });
      expect(found).toEqual([]);
      // Control: the URL really carried the token, and the scan sees it there.
      expect(leaks({ remote: [remote] })).toHaveLength(1);
      expect(files.length).toBeGreaterThan(0);
      expect(lines.join("\n")).toContain("created git mirror");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
