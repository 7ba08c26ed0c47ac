import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ConfigError, gitRemoteOf, loadConfig, redactedConfig, secretsOf } from "../src/config.js";
import { createEnvironment } from "../src/sim/environment.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "eoa-config-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function file(name: string, value: unknown): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, typeof value === "string" ? value : JSON.stringify(value));
  return path;
}

/** The ConfigError loadConfig throws, for its message. */
function refusal(...args: Parameters<typeof loadConfig>): ConfigError {
  try {
    loadConfig(...args);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error("loadConfig accepted the configuration");
}

const ROSTER_MD = `# AGENT_ROSTER

| Agent | Capabilities | Backup |
|-------|--------------|--------|
| dev-agent-1 | python, auth | dev-agent-2 |
| dev-agent-2 | python | dev-agent-1 |
`;

describe("loadConfig layering: defaults ← file ← environment ← flags", () => {
  it("uses the SPEC's defaults when nothing is given", () => {
    const cfg = loadConfig({ argv: [], env: {}, cwd: dir });
    expect(cfg.stateDir).toBe(join(dir, ".eoa"));
    expect(cfg.orchestrator).toBe("eoa-orchestrator");
    expect(cfg.aimaestro.url).toBe("http://localhost:23000");
    expect(cfg.aimaestro.token).toBeUndefined();
    expect(cfg.github).toMatchObject({ apiUrl: "https://api.github.com" });
    expect(cfg.github.repo).toBeUndefined();
    expect(cfg.limits).toEqual({
      poll_interval_seconds: 300,
      heartbeat_missed_threshold: 3,
      ci_poll_attempts: 5,
      max_concurrent_tasks: 3,
      max_retry_attempts: 3,
      max_fix_rounds: 5,
      ack_timeout_minutes: 5,
      errors_before_offline: 3,
    });
    expect(cfg.review).toMatchObject({
      coverage_threshold: 80,
      merge_method: "squash",
      auto_merge: true,
      protected_paths: [],
    });
    expect(cfg.escalation).toEqual({
      user_channel: "user-notification-channel",
      review_queue: "orchestrator-queue",
    });
    expect(cfg.agents).toEqual([]);
    expect(gitRemoteOf(cfg)).toBeUndefined();
  });

  it("reads ./eoa.config.json from the working directory when present, EOA_CONFIG or --config otherwise", async () => {
    await file("eoa.config.json", { orchestrator: "from-cwd-file" });
    const other = await file("other.json", { orchestrator: "from-env-file" });
    const third = await file("third.json", { orchestrator: "from-flag-file" });
    expect(loadConfig({ argv: [], env: {}, cwd: dir }).orchestrator).toBe("from-cwd-file");
    expect(loadConfig({ argv: [], env: { EOA_CONFIG: other }, cwd: dir }).orchestrator).toBe("from-env-file");
    expect(loadConfig({ argv: ["--config", third], env: { EOA_CONFIG: other }, cwd: dir }).orchestrator).toBe(
      "from-flag-file",
    );
  });

  it("lets each layer override the one before, key by key", async () => {
    const cfgFile = await file("eoa.config.json", {
      stateDir: "file-state",
      orchestrator: "file-orchestrator",
      aimaestro: { url: "http://file-hub:1", timeout_ms: 2500 },
      github: { repo: "acme/from-file" },
      limits: { max_fix_rounds: 7, ci_poll_attempts: 9 },
    });
    const env = {
      EOA_STATE_DIR: "env-state",
      AIMAESTRO_API: "http://env-hub:2",
      EOA_REPO: "acme/from-env",
      EOA_PROJECT: "4",
    };
    const argv = ["--config", cfgFile];

    const fileOnly = loadConfig({ argv, env: {}, cwd: dir });
    expect(fileOnly.stateDir).toBe(join(dir, "file-state"));
    expect(fileOnly.aimaestro.url).toBe("http://file-hub:1");
    expect(fileOnly.limits).toMatchObject({ max_fix_rounds: 7, ci_poll_attempts: 9, max_retry_attempts: 3 });

    const withEnv = loadConfig({ argv, env, cwd: dir });
    expect(withEnv.stateDir).toBe(join(dir, "env-state"));
    expect(withEnv.aimaestro.url).toBe("http://env-hub:2");
    // A sibling key the environment did not set survives from the file.
    expect(withEnv.aimaestro.timeout_ms).toBe(2500);
    expect(withEnv.github.repo).toBe("acme/from-env");
    expect(withEnv.github.project).toBe(4);
    expect(withEnv.orchestrator).toBe("file-orchestrator");
    expect(withEnv.limits.max_fix_rounds).toBe(7);
    expect(gitRemoteOf(withEnv)).toBe("https://github.com/acme/from-env.git");

    const withFlags = loadConfig({
      argv: [
        ...argv,
        "--state-dir",
        "/abs/flag-state",
        "--aimaestro-url",
        "http://flag-hub:3",
        "--repo",
        "acme/from-flag",
        "--orchestrator",
        "flag-orchestrator",
      ],
      env,
      cwd: dir,
    });
    expect(withFlags.stateDir).toBe("/abs/flag-state");
    expect(withFlags.aimaestro.url).toBe("http://flag-hub:3");
    expect(withFlags.aimaestro.timeout_ms).toBe(2500);
    expect(withFlags.github.repo).toBe("acme/from-flag");
    expect(withFlags.orchestrator).toBe("flag-orchestrator");
    expect(withFlags.limits.max_fix_rounds).toBe(7);
  });

  it("takes the GitHub token from GITHUB_TOKEN, else GH_TOKEN, over the file's", async () => {
    const cfgFile = await file("eoa.config.json", { github: { repo: "acme/webapp", token: "file-token" } });
    const argv = ["--config", cfgFile];
    expect(loadConfig({ argv, env: {}, cwd: dir }).github.token).toBe("file-token");
    expect(loadConfig({ argv, env: { GH_TOKEN: "gh-token" }, cwd: dir }).github.token).toBe("gh-token");
    expect(
      loadConfig({ argv, env: { GH_TOKEN: "gh-token", GITHUB_TOKEN: "github-token" }, cwd: dir }).github
        .token,
    ).toBe("github-token");
    // An empty variable is not a value.
    expect(loadConfig({ argv, env: { GITHUB_TOKEN: "", GH_TOKEN: "gh-token" }, cwd: dir }).github.token).toBe(
      "gh-token",
    );
  });
});

describe("loadConfig refuses a bad value, naming the key and where it came from", () => {
  it("a limit out of range in the file", async () => {
    const cfgFile = await file("eoa.config.json", { limits: { max_fix_rounds: 0 } });
    const err = refusal({ argv: ["--config", cfgFile], env: {}, cwd: dir });
    expect(err.message).toContain("limits.max_fix_rounds");
    expect(err.message).toContain(cfgFile);
  });

  it("a non-number in the environment", () => {
    const err = refusal({ argv: [], env: { EOA_PROJECT: "abc" }, cwd: dir });
    expect(err.message).toContain("github.project");
    expect(err.message).toContain("(from environment variable EOA_PROJECT)");
  });

  it("a bad URL in the environment", () => {
    const err = refusal({ argv: [], env: { AIMAESTRO_API: "not a url" }, cwd: dir });
    expect(err.message).toContain("aimaestro.url");
    expect(err.message).toContain("(from environment variable AIMAESTRO_API)");
  });

  it("a bad flag value", () => {
    const err = refusal({ argv: ["--port", "eighty"], env: {}, cwd: dir });
    expect(err.message).toContain("http.port");
    expect(err.message).toContain("from command-line flags");
  });

  it("the layer that won is the one named", async () => {
    const cfgFile = await file("eoa.config.json", { aimaestro: { url: "http://fine:1" } });
    const err = refusal({ argv: ["--config", cfgFile, "--aimaestro-url", "ftp://x"], env: {}, cwd: dir });
    expect(err.message).toContain("aimaestro.url");
    expect(err.message).toContain("from command-line flags");
  });

  it("an unknown key in the file, at the top level or nested", async () => {
    const top = await file("top.json", { stateDir: "s", stat_dir: "typo" });
    const topErr = refusal({ argv: ["--config", top], env: {}, cwd: dir });
    expect(topErr.message).toMatch(/invalid configuration: stat_dir: unknown key/);
    expect(topErr.message).toContain(`from ${top}`);

    const nested = await file("nested.json", { limits: { max_fix_round: 3 } });
    const nestedErr = refusal({ argv: ["--config", nested], env: {}, cwd: dir });
    expect(nestedErr.message).toContain("limits.max_fix_round");
    expect(nestedErr.message).toContain(`from ${nested}`);
  });

  it("a config file that is not JSON, or missing when named", async () => {
    const broken = await file("broken.json", "{ stateDir: ");
    expect(refusal({ argv: ["--config", broken], env: {}, cwd: dir }).message).toMatch(/not valid JSON/);
    // Located as an editor shows it, not by character offset.
    const comma = await file("comma.json", '{\n  "stateDir": "s",\n  "repo": "a/b",\n}\n');
    expect(refusal({ argv: ["--config", comma], env: {}, cwd: dir }).message).toBe(
      `config file ${comma} is not valid JSON: Expected double-quoted property name in JSON at line 4, column 1`,
    );
    expect(refusal({ argv: [], env: { EOA_CONFIG: join(dir, "absent.json") }, cwd: dir }).message).toMatch(
      /cannot read config file .*absent\.json/,
    );
  });
});

describe("the roster in the config", () => {
  it("comes from the roster array", async () => {
    const cfgFile = await file("eoa.config.json", {
      roster: [
        { id: "dev-agent-1", capabilities: ["python"], backup: ["dev-agent-2"], max_concurrent_tasks: 2 },
        { id: "dev-agent-2", session: "dev2-session", capabilities: ["api"] },
      ],
    });
    const cfg = loadConfig({ argv: ["--config", cfgFile], env: {}, cwd: dir });
    expect(cfg.agents).toEqual([
      { id: "dev-agent-1", capabilities: ["python"], backup: ["dev-agent-2"], max_concurrent_tasks: 2 },
      { id: "dev-agent-2", session: "dev2-session", capabilities: ["api"] },
    ]);
  });

  it("or from an AGENT_ROSTER.md named by rosterFile, EOA_ROSTER_FILE or --roster-file", async () => {
    await file("AGENT_ROSTER.md", ROSTER_MD);
    const cfgFile = await file("eoa.config.json", { rosterFile: "AGENT_ROSTER.md" });
    const ids = (c: ReturnType<typeof loadConfig>) => c.agents.map((a) => a.id);
    expect(ids(loadConfig({ argv: ["--config", cfgFile], env: {}, cwd: dir }))).toEqual([
      "dev-agent-1",
      "dev-agent-2",
    ]);
    expect(ids(loadConfig({ argv: [], env: { EOA_ROSTER_FILE: "AGENT_ROSTER.md" }, cwd: dir }))).toHaveLength(
      2,
    );
    const cfg = loadConfig({ argv: ["--roster-file", join(dir, "AGENT_ROSTER.md")], env: {}, cwd: dir });
    expect(cfg.agents[0]).toEqual({
      id: "dev-agent-1",
      capabilities: ["python", "auth"],
      backup: ["dev-agent-2"],
    });
  });

  it("refuses both roster and rosterFile", async () => {
    await file("AGENT_ROSTER.md", ROSTER_MD);
    const cfgFile = await file("eoa.config.json", {
      roster: [{ id: "dev-agent-1", capabilities: ["python"] }],
      rosterFile: "AGENT_ROSTER.md",
    });
    expect(refusal({ argv: ["--config", cfgFile], env: {}, cwd: dir }).message).toMatch(
      /roster: give either roster or rosterFile/,
    );
  });

  it("refuses a roster file that does not parse, naming rosterFile and the file", async () => {
    const md = await file("AGENT_ROSTER.md", "# Agents\n\nJust prose, no table.\n");
    const err = refusal({ argv: ["--roster-file", md], env: {}, cwd: dir });
    expect(err.message).toContain("rosterFile");
    expect(err.message).toContain(md);
    expect(err.message).toMatch(/no agent table/);

    const missing = refusal({ argv: ["--roster-file", join(dir, "nope.md")], env: {}, cwd: dir });
    expect(missing.message).toContain("rosterFile");
    expect(missing.message).toContain("nope.md");
  });

  it("refuses a bad agent in the roster array, naming its key", async () => {
    const cfgFile = await file("eoa.config.json", { roster: [{ id: "dev-agent-1", capabilities: [] }] });
    expect(refusal({ argv: ["--config", cfgFile], env: {}, cwd: dir }).message).toContain(
      "roster.0.capabilities",
    );
  });

  it("refuses a backup that is not on the roster, an agent that backs itself up, and a duplicate id", async () => {
    const notOnRoster = await file("a.json", {
      roster: [{ id: "dev-agent-1", capabilities: ["python"], backup: ["dev-agent-9"] }],
    });
    expect(refusal({ argv: ["--config", notOnRoster], env: {}, cwd: dir }).message).toMatch(
      /roster: backup dev-agent-9 of dev-agent-1 is not on the roster/,
    );
    const self = await file("b.json", {
      roster: [{ id: "dev-agent-1", capabilities: ["python"], backup: ["dev-agent-1"] }],
    });
    expect(refusal({ argv: ["--config", self], env: {}, cwd: dir }).message).toMatch(/its own backup/);
    const twice = await file("c.json", {
      roster: [
        { id: "dev-agent-1", capabilities: ["python"] },
        { id: "dev-agent-1", capabilities: ["api"] },
      ],
    });
    expect(refusal({ argv: ["--config", twice], env: {}, cwd: dir }).message).toMatch(/listed twice/);
  });
});

describe("secrets in the configuration", () => {
  const GITHUB = "ghp_" + "A".repeat(36);
  const AIMAESTRO = "aim-secret-token-1234";
  const HTTP = "http-bearer-secret-5678";
  const REMOTE_PASSWORD = "remote-pass-9012";

  it("redactedConfig hides every token and a password in the git remote, and keeps the rest", async () => {
    const cfgFile = await file("secrets.json", {
      aimaestro: { token: AIMAESTRO },
      github: { repo: "acme/webapp" },
      git: { remote: `https://bot:${REMOTE_PASSWORD}@git.example.com/acme/webapp.git` },
      http: { token: HTTP },
    });
    const cfg = loadConfig({ argv: ["--config", cfgFile], env: { GITHUB_TOKEN: GITHUB }, cwd: dir });
    expect(secretsOf(cfg).sort()).toEqual([AIMAESTRO, GITHUB, HTTP].sort());
    const shown = redactedConfig(cfg);
    const text = JSON.stringify(shown);
    for (const secret of [GITHUB, AIMAESTRO, HTTP, REMOTE_PASSWORD]) expect(text).not.toContain(secret);
    expect(shown).toMatchObject({
      aimaestro: { token: "[redacted]", url: "http://localhost:23000" },
      github: { token: "[redacted]", repo: "acme/webapp" },
      http: { token: "[redacted]" },
      git: { remote: "https://[redacted]@git.example.com/acme/webapp.git" },
    });
    // Absent secrets show as absent, not as redacted.
    const bare = redactedConfig(loadConfig({ argv: [], env: {}, cwd: dir }));
    expect(bare).toMatchObject({
      aimaestro: { token: null },
      github: { token: null },
      http: { token: null },
    });
  });

  it("eoa://config read through an MCP client shows [redacted], never a token", async () => {
    const env = await createEnvironment({ tokens: { github: GITHUB, aimaestro: AIMAESTRO } });
    try {
      const { client } = await env.connect();
      const read = await client.readResource({ uri: "eoa://config" });
      const content = read.contents[0] as { text: string; mimeType?: string };
      expect(content.mimeType).toBe("application/json");
      expect(content.text).not.toContain(GITHUB);
      expect(content.text).not.toContain(AIMAESTRO);
      const shown = JSON.parse(content.text) as {
        github: { token: string; repo: string };
        aimaestro: { token: string; url: string };
        stateDir: string;
      };
      expect(shown.github).toMatchObject({ token: "[redacted]", repo: "acme/webapp" });
      expect(shown.aimaestro).toMatchObject({ token: "[redacted]", url: env.aimaestro.url });
      expect(shown.stateDir).toBe(env.stateDir);
    } finally {
      await env.close();
    }
  });
});
