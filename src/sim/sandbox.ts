import { renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ScriptedAgent } from "./agents.js";
import { commandFlags } from "./command-line.js";
import { CLI_PATH } from "../paths.js";
import { createSurroundings, SEED_AGENTS, SEED_ISSUES } from "./environment.js";
import { removeOnExit } from "./temp-dir.js";

/**
 * `eoa-mcp sandbox`: the rehearsal world of `eoa-mcp simulate`, started alone on loopback for a
 * real client (Claude Code, Claude Desktop, the MCP Inspector) to drive: the AI Maestro and
 * GitHub stand-ins, a real git remote, and the scripted agents, which take a step every minute
 * of the sandbox's clock. That clock runs at `--speed` times the wall clock from now, and reaches
 * eoa-mcp servers through EOA_FAKE_CLOCK_FILE. It prints the environment for such a server and
 * the lines that start one, and runs until Ctrl-C, which removes everything it made.
 */

export const SANDBOX_USAGE = `Usage: eoa-mcp sandbox [--speed N]

Starts the rehearsal world alone (the seed's issues GH-101, GH-102, GH-103 on a GitHub stand-in;
scripted agents dev-agent-1 and dev-agent-2 on an AI Maestro stand-in; a real git remote) and
prints how to point Claude Code, Claude Desktop or the MCP Inspector at it. Runs until Ctrl-C,
which removes its temporary directory.

  --speed N   the sandbox's clock runs N times as fast as the wall clock (default 1; e.g. 10 makes
              a 5-minute poll cycle 30 seconds); the scripted agents act once a sandbox minute`;

const CLOCK_TICK_MS = 200;
const AGENT_STEP_SANDBOX_MS = 60_000;

export async function sandbox(
  argv: string[],
  out: (line: string) => void = (l) => console.log(l),
): Promise<number> {
  const flags = commandFlags(
    argv,
    { speed: { type: "string" }, help: { type: "boolean", short: "h" } },
    SANDBOX_USAGE,
    out,
  );
  if ("exit" in flags) return flags.exit;
  const { values } = flags;
  const speed = Number(values.speed ?? "1");
  if (!Number.isFinite(speed) || speed < 0.1 || speed > 1000) {
    console.error(
      `--speed must be a number from 0.1 to 1000, not ${JSON.stringify(values.speed)}\n\n${SANDBOX_USAGE}`,
    );
    return 2;
  }

  const sur = await createSurroundings();
  const log = (line: string) => console.error(`${sur.clock.now().toISOString().slice(11, 19)}  ${line}`);
  // The night as the hub saw it, one line a message: what the orchestrator sent and what came back.
  let shown = 0;
  const feed = () => {
    for (const m of sur.aimaestro.sent.slice(shown) as Array<{ from: string; to: string; subject: string }>)
      log(`${m.from} → ${m.to}: ${m.subject}`);
    shown = sur.aimaestro.sent.length;
  };
  const loops: NodeJS.Timeout[] = [];
  let agents: ScriptedAgent[] = [];
  const stopWorld = async () => {
    for (const t of loops) clearInterval(t);
    for (const a of agents) await a.close();
    feed();
    await sur.close();
  };
  removeOnExit(sur.root, { signalExitCode: 0, beforeRemove: stopWorld });

  // The sandbox's time, shared with the stand-ins (its FakeClock) and with eoa-mcp servers (the file).
  const clockFile = join(sur.root, "clock.txt");
  const startWall = Date.now();
  const tickClock = () => {
    const now = new Date(startWall + (Date.now() - startWall) * speed);
    sur.clock.set(now);
    // Written whole and renamed into place: a server reading it mid-write must not see half a time.
    writeFileSync(`${clockFile}.tmp`, now.toISOString());
    renameSync(`${clockFile}.tmp`, clockFile);
  };
  tickClock();
  loops.push(setInterval(tickClock, CLOCK_TICK_MS));

  let prNumber = 146;
  const world = {
    aimaestro: sur.aimaestro,
    github: sur.github,
    repo: sur.repo,
    orchestrator: "eoa-orchestrator",
    faults: {
      silentAgent: false,
      ciFailure: false,
      mergeConflict: false,
      securityIssue: false,
      overlappingPrs: false,
      agentQuestion: false,
      agentError: false,
      bogusPr: false,
      allOffline: false,
    },
    nextPr: () => ++prNumber,
    outage: () => false,
    log,
  };
  agents = SEED_AGENTS.map((a) => new ScriptedAgent(a.id, sur.aimaestro.url, world));
  // One step at a time: a step that outlasts the interval (git pushes on a busy machine) is not doubled.
  let stepping = false;
  const step = async () => {
    if (stepping) return;
    stepping = true;
    for (const a of agents) {
      await a.tick().catch((err: unknown) => world.log(`${a.name}: ${(err as Error).message}`));
    }
    stepping = false;
    feed();
  };
  loops.push(setInterval(() => void step(), Math.max(50, AGENT_STEP_SANDBOX_MS / speed)));

  const cli = CLI_PATH;
  const env = { EOA_CONFIG: sur.configFile, EOA_FAKE_CLOCK_FILE: clockFile };
  const envArgs = (flag: string) => Object.entries(env).map(([k, v]) => `${flag} ${shellQuote(`${k}=${v}`)}`);
  const server = [process.execPath, cli].map(shellQuote).join(" ");
  out(`eoa-mcp sandbox: the rehearsal world is up, its clock at ${speed}x the wall clock`);
  out("");
  out(
    `  AI Maestro stand-in  ${sur.aimaestro.url}  (scripted agents ${SEED_AGENTS.map((a) => a.id).join(", ")})`,
  );
  out(
    `  GitHub stand-in      ${sur.github.url}  (acme/webapp, issues ${SEED_ISSUES.map((i) => `GH-${i.number}`).join(", ")})`,
  );
  out(`  git remote           ${sur.repo.bare}`);
  out(`  state directory      ${sur.stateDir}`);
  out("");
  out("Environment for an eoa-mcp server on this world:");
  for (const [k, v] of Object.entries(env)) out(`export ${k}=${shellQuote(v)}`);
  out("");
  out("Claude Code:");
  out(`  claude mcp add --transport stdio ${envArgs("--env").join(" ")} eoa-sandbox -- ${server}`);
  out("  (remove it afterwards with: claude mcp remove eoa-sandbox)");
  out("Claude Desktop (claude_desktop_config.json):");
  out(
    `  ${JSON.stringify({ mcpServers: { "eoa-sandbox": { command: process.execPath, args: [cli], env } } })}`,
  );
  out("MCP Inspector CLI:");
  out(
    `  npx @modelcontextprotocol/inspector --cli ${envArgs("-e").join(" ")} --method tools/call --tool-name preflight -- ${server}`,
  );
  out("");
  out('Then ask the model: "Complete features GH-101, GH-102, GH-103 autonomously."');
  out(`Ctrl-C stops the sandbox and removes ${sur.root}.`);
  return -1; // runs until a signal
}

/** A word as a POSIX shell reads it back unchanged. */
function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
