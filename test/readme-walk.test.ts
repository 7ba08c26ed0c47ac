import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeClock } from "../src/clock.js";
import { startAiMaestroServer, type AiMaestroStandIn } from "../src/sim/aimaestro-server.js";
import { startGitHubServer, type GitHubStandIn } from "../src/sim/github-server.js";
import { assertBuilt, runProcess, type Finished } from "./fixtures/cli.js";

/**
 * Issue 17: a newcomer follows the README's "Set it up for your project" literally, block by block
 * and in order, in a fresh home directory, against the AI Maestro and GitHub stand-ins: install the
 * command, register the agents in AI Maestro, bring them online, copy the roster and config,
 * preflight, register the server with Claude Code and check it connects.
 *
 * What is not the README's text: the stand-ins' URL replaces `http://localhost:23000`, GitHub's API
 * URL comes from the environment (GITHUB_API_URL), `npm install -g` installs under a temporary
 * prefix (npm_config_prefix), and `claude` is a stand-in (test/fixtures/claude-stand-in) that
 * records `mcp add` and, for `mcp list`, starts the registered command over stdio and lists its
 * tools, as Claude Code's health check does. `npm install && npm run build` is what `npm test` did
 * before this file ran; repeating it here would rewrite dist/ under the other tests' feet, so that
 * line is checked (the CLI is built) instead of run.
 */

const ROOT = join(import.meta.dirname, "..");
const STAND_IN_BIN = join(ROOT, "test", "fixtures", "claude-stand-in");
const SLOW = 120_000;

async function readmeBlocks(): Promise<string[]> {
  const readme = await readFile(join(ROOT, "README.md"), "utf8");
  const start = readme.indexOf("## Set it up for your project");
  const end = readme.indexOf("\n## ", start + 1);
  expect(start, "the README's set-up section").toBeGreaterThan(0);
  return [...readme.slice(start, end).matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

let tmp: string;
let clock: FakeClock;
let aimaestro: AiMaestroStandIn;
let github: GitHubStandIn;
beforeAll(async () => {
  assertBuilt();
  tmp = await mkdtemp(join(tmpdir(), "eoa-readme-"));
  clock = new FakeClock("2025-12-30T22:00:00Z");
  // A hub with nobody registered yet, and the repository as a team ready for a night has it.
  aimaestro = await startAiMaestroServer({ clock });
  github = await startGitHubServer({ clock, owner: "acme", repo: "webapp", scopes: ["repo", "project"] });
  github.addWorkflow({ name: "CI", path: ".github/workflows/ci.yml" });
  github.setCheckRuns("5f0c6e1d2b3a4958877665544332211000aabbcc", [
    { name: "test", workflow: "CI", status: "completed", conclusion: "success" },
  ]);
  github.setProject({ owner: "acme", number: 1, title: "Nights", statuses: ["Todo", "In Progress", "Done"] });
  github.setCollaborator("acme-agent1", "write");
  github.setCollaborator("acme-agent2", "maintain");
});
afterAll(async () => {
  await aimaestro?.close();
  await github?.close();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe("the README's set-up, followed literally", () => {
  it(
    "installs, registers and brings the agents online, preflights clean, and the registered server connects",
    async () => {
      const home = join(tmp, "home");
      const walk = join(tmp, "walk");
      const project = join(home, "src", "webapp");
      await mkdir(project, { recursive: true });
      await mkdir(walk);
      const env = {
        PATH: [join(tmp, "global", "bin"), STAND_IN_BIN, process.env.PATH ?? ""].join(":"),
        HOME: home,
        npm_config_prefix: join(tmp, "global"),
        npm_config_update_notifier: "false",
        npm_config_audit: "false",
        npm_config_fund: "false",
        GITHUB_API_URL: github.url,
      };
      // Each block runs in its own shell, taking the exports and directory the previous one left.
      const step = (block: string, cwd: string): Promise<Finished> =>
        runProcess(
          "sh",
          [
            "-ec",
            [
              `[ -f "${walk}/env" ] && . "${walk}/env"`,
              `[ -f "${walk}/cwd" ] && cd "$(cat "${walk}/cwd")"`,
              block.replaceAll("http://localhost:23000", aimaestro.url),
              `export -p > "${walk}/env"; pwd > "${walk}/cwd"`,
            ].join("\n"),
          ],
          { cwd, env },
        );
      const ok = (r: Finished, what: string) => {
        expect(r.code, `${what}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(0);
        return r.stdout;
      };

      const [install, hub, heartbeat, token, copy, preflight, register, ...rest] = await readmeBlocks();
      expect(rest, "the walk covers every block of the section").toEqual([]);

      // 1. Install, in the clone.
      const lines = install!.split("\n").filter(Boolean);
      expect(lines[0]).toMatch(/^npm install && npm run build\s/);
      ok(await step(lines.slice(1).join("\n"), ROOT), "npm install -g");
      const where = ok(await step("command -v eoa-mcp && eoa-mcp --version", home), "eoa-mcp on PATH");
      expect(where).toContain(join(tmp, "global", "bin", "eoa-mcp"));

      // 2. AI Maestro: healthy, four agents registered, two brought online.
      const registered = ok(await step(hub!, home), "AI Maestro");
      expect(registered).toContain('"status":"healthy"');
      expect(registered.match(/"agent":\{/g)).toHaveLength(4);
      expect(ok(await step(heartbeat!, home), "heartbeats").match(/"success":true/g)).toHaveLength(2);
      expect((await readFile(join(walk, "cwd"), "utf8")).trim()).toBe(project);

      // 3-4. GitHub token, then the roster and config copied into the project.
      ok(await step(token!, home), "GitHub token");
      ok(await step(copy!, home), "roster and config");
      expect(existsSync(join(project, "AGENT_ROSTER.md"))).toBe(true);
      expect(existsSync(join(project, "eoa.config.json"))).toBe(true);

      // 5. Preflight: ready, every agent online, and nothing written.
      const checklist = ok(await step(preflight!, home), "eoa-mcp preflight");
      expect(checklist).toContain("Ready for autonomous operation.");
      expect(checklist).toContain("2 agent(s) online: dev-agent-1, dev-agent-2");
      expect(checklist).toContain(
        "can push: dev-agent-1 (acme-agent1): write, dev-agent-2 (acme-agent2): maintain",
      );
      expect(checklist).not.toMatch(/\[ \]/);
      expect(existsSync(join(project, ".eoa"))).toBe(false);

      // 6. Register it with Claude Code: the server starts from the project and connects.
      const listed = ok(await step(register!, home), "claude mcp add / list");
      expect(listed).toContain(`eoa: eoa-mcp --config ${project}/eoa.config.json - ✓ Connected`);
      expect(existsSync(join(project, ".eoa", "state.json"))).toBe(true);
    },
    SLOW,
  );

  it(
    "with the example config and roster and nobody registered yet, each agent is reported once, as unregistered",
    async () => {
      const dir = join(tmp, "examples");
      await mkdir(dir, { recursive: true });
      await copyFile(join(ROOT, "eoa.config.example.json"), join(dir, "eoa.config.json"));
      await copyFile(join(ROOT, "AGENT_ROSTER.example.md"), join(dir, "AGENT_ROSTER.md"));
      const hub = await startAiMaestroServer({ clock });
      try {
        const r = await runProcess(process.execPath, [join(ROOT, "dist", "cli.js"), "preflight"], {
          cwd: dir,
          env: {
            PATH: process.env.PATH ?? "",
            HOME: dir,
            AIMAESTRO_API: hub.url,
            GITHUB_API_URL: github.url,
          },
        });
        expect(r.code, r.stderr).toBe(1);
        const line = (item: string) => r.stdout.split("\n").find((l) => l.slice(6).startsWith(item)) ?? "";
        expect(line("All remote agents online")).toContain(
          'dev-agent-1, dev-agent-2 cannot be online before they are registered (see "AGENT_ROSTER.md up to date")',
        );
        expect(line("All remote agents online")).not.toContain("offline in AI Maestro");
        expect(line("AGENT_ROSTER.md up to date")).toContain(
          "not registered in AI Maestro: dev-agent-1, dev-agent-2",
        );
        expect(existsSync(join(dir, ".eoa"))).toBe(false);
      } finally {
        await hub.close();
      }
    },
    SLOW,
  );

  it(
    "registering before the roster exists is the failure the README's Troubleshooting explains",
    async () => {
      const home = join(tmp, "early");
      await mkdir(home, { recursive: true });
      const r = await runProcess(
        process.execPath,
        [join(ROOT, "dist", "cli.js"), "--config", join(ROOT, "eoa.config.example.json"), "preflight"],
        { cwd: home, env: { PATH: process.env.PATH ?? "", HOME: home } },
      );
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/invalid configuration: rosterFile: cannot read .*AGENT_ROSTER\.md: ENOENT/);
      const readme = await readFile(join(ROOT, "README.md"), "utf8");
      expect(readme).toContain("invalid configuration: rosterFile: cannot read …/AGENT_ROSTER.md: ENOENT");
    },
    SLOW,
  );
});
