import { mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { FakeClock } from "../clock.js";
import { deepMerge, loadConfig, type Config } from "../config.js";
import { buildRuntime, closeRuntime } from "../deps.js";
import type { Runtime } from "../engine/runtime.js";
import type { LogSink } from "../log.js";
import { createServer, type EoaServer } from "../server.js";
import { startAiMaestroServer, type AiMaestroStandIn } from "./aimaestro-server.js";
import { startGitHubServer, type GitHubStandIn } from "./github/index.js";
import { LocalRepo } from "./git-repo.js";

/**
 * A whole night's surroundings on one machine: an AI Maestro-compatible hub and a GitHub-compatible
 * API on loopback, a real git repository as the remote, a fake clock, and an eoa-mcp runtime wired
 * to them. Tests and `eoa-mcp simulate` both stand on it.
 */

export const SEED_AGENTS = [
  { id: "dev-agent-1", capabilities: ["python", "auth", "api"], backup: ["dev-agent-2"] },
  { id: "dev-agent-2", capabilities: ["python", "api"], backup: ["dev-agent-1"] },
];

/** The seed's three tasks as GitHub issues. */
export const SEED_ISSUES = [
  {
    number: 101,
    title: "User Authentication",
    labels: ["priority:high", "effort:m", "capability:auth"],
    body: [
      "Implement login with hashed passwords.",
      "",
      "- [ ] Users can log in with email and password",
      "- [ ] Passwords are hashed",
      "",
      "## Scope",
      "- `src/auth/**`",
      "- `tests/**`",
      "",
      "## Tests",
      "- unit tests for login",
    ].join("\n"),
  },
  {
    number: 102,
    title: "Password Reset",
    labels: ["priority:normal", "effort:m"],
    body: "Password reset by email token.\n\nDepends on #101\n\n- [ ] Reset link expires after one hour\n\n## Scope\n- `src/reset/**`\n- `tests/**`\n",
  },
  {
    number: 103,
    title: "Session Management",
    labels: ["priority:normal", "effort:m"],
    body: "Server-side sessions with expiry.\n\nBlocked by #101\n\n- [ ] Sessions expire after idle timeout\n\n## Scope\n- `src/session/**`\n- `tests/**`\n",
  },
];

export interface EnvironmentOptions {
  /** Extra config merged over the defaults (limits, review, ...). */
  config?: Record<string, unknown>;
  agents?: Array<{ id: string; capabilities: string[]; backup?: string[]; max_concurrent_tasks?: number }>;
  issues?: typeof SEED_ISSUES;
  /** Recognisable secrets to run with (the secrets test). */
  tokens?: { github?: string; aimaestro?: string };
  /** Keep logs on stderr (default: silent). */
  verbose?: boolean;
  root?: string;
}

export interface Surroundings {
  root: string;
  stateDir: string;
  clock: FakeClock;
  aimaestro: AiMaestroStandIn;
  github: GitHubStandIn;
  repo: LocalRepo;
  /**
   * The remote as eoa-mcp reaches it (`git.remote`): a link to the bare repository, so a test can
   * cut eoa-mcp off from its remote while GitHub, which keeps its own copy, still answers.
   */
  remote: string;
  /** The config file path, for spawning real server processes on the same surroundings. */
  configFile: string;
  close(): Promise<void>;
}

export interface NightEnvironment extends Surroundings {
  config: Config;
  rt: Runtime;
  logSinks: Set<LogSink>;
  /** An MCP client connected in memory to a fresh server on `rt`. */
  connect(): Promise<{ client: Client; server: EoaServer }>;
}

/** The stand-ins, the git remote and a config file pointing at them; no eoa-mcp runtime. */
export async function createSurroundings(opts: EnvironmentOptions = {}): Promise<Surroundings> {
  const root = opts.root ?? (await mkdtemp(join(tmpdir(), "eoa-night-")));
  const clock = new FakeClock("2025-12-30T22:00:00Z");
  const aimaestro = await startAiMaestroServer({
    clock,
    ...(opts.tokens?.aimaestro ? { token: opts.tokens.aimaestro } : {}),
  });
  const repo = await LocalRepo.create(join(root, "git"));
  const remote = join(root, "git", "origin.git");
  await symlink(repo.bare, remote);
  const github = await startGitHubServer({
    clock,
    owner: "acme",
    repo: "webapp",
    gitDir: repo.bare,
    ...(opts.tokens?.github ? { token: opts.tokens.github } : {}),
  });
  const agents = opts.agents ?? SEED_AGENTS;
  for (const a of agents) {
    aimaestro.registerAgent(a.id);
    aimaestro.setOnline(a.id, true);
  }
  aimaestro.registerAgent("user-notification-channel");
  aimaestro.registerAgent("orchestrator-queue");
  github.addWorkflow({ name: "CI", path: ".github/workflows/ci.yml" });
  // CI has run on main and passed, as on a repository ready for a night.
  github.setCheckRuns(await repo.head(), [
    { name: "test", workflow: "CI", status: "completed", conclusion: "success" },
  ]);
  for (const issue of opts.issues ?? SEED_ISSUES) github.addIssue(issue);

  const stateDir = join(root, "state");
  const fileConfig = deepMerge(
    {
      stateDir,
      orchestrator: "eoa-orchestrator",
      aimaestro: { url: aimaestro.url, ...(opts.tokens?.aimaestro ? { token: opts.tokens.aimaestro } : {}) },
      github: {
        repo: "acme/webapp",
        apiUrl: github.url,
        ...(opts.tokens?.github ? { token: opts.tokens.github } : {}),
      },
      git: { remote },
      roster: agents,
      review: { commands: { test: "sh tests/run.sh", lint: "sh lint.sh" }, command_timeout_minutes: 2 },
      // The rehearsal's night runs in minutes: a poll cycle counts once a minute of its clock.
      limits: { poll_interval_seconds: 60 },
    },
    // Merged key by key, so that e.g. { github: { project: 1 } } keeps the stand-in's URL.
    opts.config ?? {},
  );
  const configFile = join(root, "eoa.config.json");
  await writeFile(configFile, JSON.stringify(fileConfig, null, 2));
  return {
    root,
    stateDir,
    clock,
    aimaestro,
    github,
    repo,
    remote,
    configFile,
    async close() {
      await aimaestro.close();
      await github.close();
      if (!opts.root) await rm(root, { recursive: true, force: true });
    },
  };
}

export async function createEnvironment(opts: EnvironmentOptions = {}): Promise<NightEnvironment> {
  const sur = await createSurroundings(opts);
  const config = loadConfig({ argv: ["--config", sur.configFile], env: {}, cwd: sur.root });
  const logSinks = new Set<LogSink>();
  const rt = await buildRuntime(config, {
    clock: sur.clock,
    logSinks,
    logStderr: opts.verbose ?? false,
    fast: true,
  });
  const servers: EoaServer[] = [];

  return {
    ...sur,
    config,
    rt,
    logSinks,
    async connect() {
      const server = createServer(rt, { logSinks, externalPollMs: 50 });
      servers.push(server);
      const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
      const client = new Client({ name: "eoa-test", version: "1.0.0" });
      await server.server.connect(serverSide);
      await client.connect(clientSide);
      return { client, server };
    },
    async close() {
      for (const s of servers) await s.close().catch(() => undefined);
      await closeRuntime(rt);
      await sur.close();
    },
  };
}
