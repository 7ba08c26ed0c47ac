#!/usr/bin/env node
import { parseArgs } from "node:util";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { CONFIG_FLAGS, ConfigError, loadConfig } from "./config.js";
import { buildRuntime, closeRuntime } from "./deps.js";
import { preflight, renderPreflight } from "./engine/preflight.js";
import { errorMessage, isEoaError } from "./errors.js";
import type { LogSink } from "./log.js";
import { createServer } from "./server.js";
import { VERSION } from "./version.js";

const USAGE = `eoa-mcp ${VERSION}: MCP server for autonomous operation of developer agents (AI Maestro + GitHub)

Usage:
  eoa-mcp [options]              serve MCP on stdio (what Claude Code / Claude Desktop run)
  eoa-mcp preflight [options]    print the Prerequisites Checklist and exit (1 when an item fails)
  eoa-mcp --help | --version

Options:
  --config FILE          config file (default ./eoa.config.json when present; or EOA_CONFIG)
  --state-dir DIR        state directory (EOA_STATE_DIR, default ./.eoa)
  --repo OWNER/NAME      GitHub repository (EOA_REPO)
  --orchestrator NAME    AI Maestro name of the orchestrator (EOA_ORCHESTRATOR)
  --aimaestro-url URL    AI Maestro base URL (AIMAESTRO_API)
  --github-api-url URL   GitHub API base URL (GITHUB_API_URL)
  --roster-file FILE     AGENT_ROSTER.md (EOA_ROSTER_FILE)

stdout carries only the MCP protocol; logs go to stderr (EOA_LOG_LEVEL=debug|info|warning|error).`;

const COMMANDS = new Set(["serve", "preflight"]);

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...CONFIG_FLAGS, help: { type: "boolean", short: "h" }, version: { type: "boolean" } },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    process.stderr.write(`${errorMessage(err)}\n\n${USAGE}\n`);
    return 2;
  }
  if (parsed.values.help) {
    process.stdout.write(`${USAGE}\n`); // stdout-ok: --help is not an MCP session
    return 0;
  }
  if (parsed.values.version) {
    process.stdout.write(`${VERSION}\n`); // stdout-ok
    return 0;
  }
  const command = parsed.positionals[0] ?? "serve";
  if (!COMMANDS.has(command) || parsed.positionals.length > 1) {
    process.stderr.write(`unknown command: ${parsed.positionals.join(" ")}\n\n${USAGE}\n`);
    return 2;
  }

  const config = loadConfig({ argv });
  const sinks = new Set<LogSink>();
  const rt = await buildRuntime(config, { logSinks: sinks });

  if (command === "preflight") {
    const result = await preflight(rt);
    process.stdout.write(`${renderPreflight(result)}\n`); // stdout-ok: a terminal command
    await closeRuntime(rt);
    return result.ready ? 0 : 1;
  }

  const eoa = createServer(rt, { logSinks: sinks });
  const transport = new StdioServerTransport();
  let closing = false;
  const shutdown = async (why: string) => {
    if (closing) return;
    closing = true;
    rt.logger.info("shutting down", { why });
    await eoa.close().catch(() => undefined);
    await closeRuntime(rt);
    process.exit(0);
  };
  // The stdio transport does not end the process on EOF while sockets or timers are open.
  process.stdin.on("end", () => void shutdown("stdin closed"));
  process.stdin.on("close", () => void shutdown("stdin closed"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  await eoa.server.connect(transport);
  rt.logger.info("serving MCP on stdio", {
    version: VERSION,
    stateDir: config.stateDir,
    repo: config.github.repo ?? null,
  });
  return -1; // keep running
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError) process.stderr.write(`eoa-mcp: ${err.message}\n`);
    else if (isEoaError(err)) process.stderr.write(`eoa-mcp: ${err.code}: ${err.message}\n${err.nextStep}\n`);
    else process.stderr.write(`eoa-mcp: ${errorMessage(err)}\n`);
    process.exitCode = 2;
  },
);
