import { collectGarbage } from "./v8-flags.js";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { CONFIG_FLAGS, type Config, ConfigError, loadConfig, secretsOf } from "./config.js";
import { buildClients, buildRuntime, closeRuntime, prepareRuntime, recover } from "./deps.js";
import { type Night, startNight } from "./engine/night.js";
import { EoaError, errorMessage, isEoaError } from "./errors.js";
import { redactSecrets } from "./protocol/secrets.js";
import { emptyState } from "./state/schema.js";
import { readStateDir } from "./state/store.js";
import { logSettings, type LogSink } from "./log.js";
import { createServer } from "./server.js";
import { VERSION } from "./version.js";
import { FileClock, systemClock } from "./clock.js";

const USAGE = `eoa-mcp ${VERSION}: MCP server for autonomous operation of developer agents (AI Maestro + GitHub)

Usage:
  eoa-mcp [options]              serve MCP on stdio (what Claude Code / Claude Desktop run)
  eoa-mcp serve [--port N]       the daemon for unattended nights: Streamable HTTP on 127.0.0.1 (needs
                                 EOA_HTTP_TOKEN), running the night's poll cycles with no client attached
  eoa-mcp --http [--port N]      the same as serve
  eoa-mcp simulate [faults]      rehearse a whole night against local stand-ins (see: eoa-mcp simulate --help)
  eoa-mcp sandbox [--speed N]    start that rehearsal world alone for a real client to drive (until Ctrl-C)
  eoa-mcp preflight [options]    print the Prerequisites Checklist and exit (1 when an item fails)
  eoa-mcp report [options]       write the current session's report and print it
  eoa-mcp status [--watch [--interval S]]
                                 the current session at a glance (tasks, agents, last poll cycle,
                                 what waits for you, the last decisions), read-only; --watch redraws
  eoa-mcp --help | --version

Options:
  --config FILE          config file (EOA_CONFIG; default eoa.config.json in the current directory, if any)
  --state-dir DIR        state directory (EOA_STATE_DIR; default .eoa in the current directory)
  --repo OWNER/NAME      GitHub repository (EOA_REPO)
  --orchestrator NAME    AI Maestro name of the orchestrator (EOA_ORCHESTRATOR)
  --aimaestro-url URL    AI Maestro base URL (AIMAESTRO_API)
  --github-api-url URL   GitHub API base URL (GITHUB_API_URL)
  --roster-file FILE     AGENT_ROSTER.md (EOA_ROSTER_FILE)
  --port N               HTTP port (default 3333; 0 picks a free one)

  --log-level LEVEL      debug, info (default), warning or error (EOA_LOG_LEVEL)
  --log-format FORMAT    text (default) or json: one JSON object a line (EOA_LOG_FORMAT)

stdout carries only the MCP protocol; logs go to stderr. At info, every decision, message sent,
review verdict and escalation is one line.`;

const COMMANDS = new Set(["stdio", "serve", "preflight", "report", "status"]);

async function main(argv: string[]): Promise<number> {
  // Loaded on demand: a plain stdio start should not pay for the simulator or the HTTP stack.
  if (argv[0] === "simulate") return (await import("./sim/simulate.js")).simulate(argv.slice(1));
  if (argv[0] === "sandbox") return (await import("./sim/sandbox.js")).sandbox(argv.slice(1));
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        ...CONFIG_FLAGS,
        help: { type: "boolean", short: "h" },
        version: { type: "boolean" },
        http: { type: "boolean" },
        "log-level": { type: "string" },
        watch: { type: "boolean" },
        interval: { type: "string" },
        "log-format": { type: "string" },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    process.stderr.write(`${argumentError(err)}\n\n${USAGE}\n`);
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
  try {
    // Read by every logger: checked once here, so that a misspelt level stops the server at start.
    const log = logSettings(
      { level: parsed.values["log-level"], format: parsed.values["log-format"] },
      process.env,
    );
    process.env.EOA_LOG_LEVEL = log.level;
    process.env.EOA_LOG_FORMAT = log.format;
  } catch (err) {
    process.stderr.write(`eoa-mcp: ${errorMessage(err)}\n`);
    return 2;
  }
  const command = parsed.positionals[0] ?? "stdio";
  if (!COMMANDS.has(command) || parsed.positionals.length > 1) {
    process.stderr.write(`unknown command: ${parsed.positionals.join(" ")}\n\n${USAGE}\n`);
    return 2;
  }

  const config = loadConfig({ argv });
  const sinks = new Set<LogSink>();
  // Rehearsals (eoa-mcp simulate) run the server on the simulation's clock.
  const clockFile = process.env.EOA_FAKE_CLOCK_FILE;
  const clockOpts = clockFile ? { clock: new FileClock(clockFile), fast: true } : {};
  // The terminal commands read the state directory the server uses; neither creates one.
  const hasState = existsSync(join(config.stateDir, "state.json"));

  if (command === "preflight") {
    const { runPreflight, renderPreflight } = await import("./engine/preflight.js");
    const { aimaestro, github } = buildClients(config, { logSinks: sinks, ...clockOpts });
    const secrets = secretsOf(config);
    const result = await runPreflight({
      config,
      aimaestro,
      github,
      state: hasState ? await readStateDir(config.stateDir) : emptyState(),
      redact: (t) => redactSecrets(t, secrets),
    });
    process.stdout.write(`${renderPreflight(result)}\n`); // stdout-ok: a terminal command
    await aimaestro.close().catch(() => undefined);
    return result.ready ? 0 : 1;
  }

  if (command === "status") {
    if (!hasState) throw noSession(config.stateDir, "status");
    const { renderStatus } = await import("./status.js");
    const clock = clockOpts.clock ?? systemClock;
    const show = async () => renderStatus(await readStateDir(config.stateDir), clock.now(), config.stateDir);
    if (!parsed.values.watch) {
      process.stdout.write(await show()); // stdout-ok: a terminal command
      return 0;
    }
    const seconds = Number(parsed.values.interval ?? 5);
    if (!Number.isFinite(seconds) || seconds < 1 || seconds > 3600) {
      process.stderr.write("eoa-mcp: --interval takes seconds between 1 and 3600\n");
      return 2;
    }
    // Redrawn until Ctrl-C; on a terminal the screen is cleared first, in a pipe frames follow.
    for (;;) {
      const frame = await show();
      process.stdout.write(process.stdout.isTTY ? `\x1b[2J\x1b[H${frame}` : `${frame}\n`); // stdout-ok
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    }
  }

  if (command === "report") {
    if (!hasState) throw noSession(config.stateDir, "report");
    const rt = await buildRuntime(config, { logSinks: sinks, ...clockOpts });
    const { writeReport } = await import("./engine/report.js");
    try {
      const r = await writeReport(rt);
      process.stdout.write(r.markdown); // stdout-ok: a terminal command
      process.stderr.write(`written to ${r.path}\n`);
      return 0;
    } catch (err) {
      throw isEoaError(err) && err.code === "SESSION_NOT_FOUND" ? noSession(config.stateDir, "report") : err;
    } finally {
      await closeRuntime(rt);
    }
  }

  const daemon = command === "serve" || !!parsed.values.http;
  const rt = await buildRuntime(config, {
    logSinks: sinks,
    ...clockOpts,
    deferPrepare: !daemon,
    afterLargeLoad: collectGarbage,
  });
  let closing = false;
  if (daemon) {
    const { serveHttp } = await import("./http.js");
    const http = await serveHttp(rt, { port: config.http.port, logSinks: sinks }).catch(
      async (err: unknown) => {
        await closeRuntime(rt);
        throw err;
      },
    );
    void recover(rt);
    const night = startNight(rt, nightTick(config, clockFile));
    rt.logger.info("serving MCP over Streamable HTTP", { url: http.url });
    process.stderr.write(`eoa-mcp: listening on ${http.url}\n`);
    const stop = async () => {
      if (closing) return;
      closing = true;
      await night.stop();
      await http.close();
      await closeRuntime(rt);
      process.exit(0);
    };
    process.on("SIGINT", () => void stop());
    process.on("SIGTERM", () => void stop());
    return -1;
  }

  // The state is loaded once `initialize` is answered (the first tool call, resource read or the
  // client's `initialized` starts it); start-up recovery follows it. A state that cannot be read
  // ends the process, as it would have before the answer.
  let preparing: Promise<void> | undefined;
  let night: Night | undefined;
  const ready = () =>
    (preparing ??= prepareRuntime(rt).then(
      () => {
        void recover(rt);
        // The night goes on between tool calls (and with none): rule 4.
        night = startNight(rt, nightTick(config, clockFile));
      },
      (err: unknown) => {
        process.stderr.write(`eoa-mcp: ${isEoaError(err) ? `${err.code}: ` : ""}${errorMessage(err)}\n`);
        process.exit(2);
      },
    ));
  const eoa = createServer(rt, { logSinks: sinks, ready });
  const transport = new StdioServerTransport();
  const shutdown = async (why: string) => {
    if (closing) return;
    closing = true;
    rt.logger.info("shutting down", { why });
    await night?.stop();
    await eoa.close().catch(() => undefined);
    await closeRuntime(rt);
    process.exit(0);
  };
  // The stdio transport does not end the process on EOF while sockets or timers are open.
  process.stdin.on("end", () => void shutdown("stdin closed"));
  process.stdin.on("close", () => void shutdown("stdin closed"));
  // A client that goes away mid-answer closes the pipe: that is the end of the session, not a crash.
  process.stdout.on(
    "error",
    (err: NodeJS.ErrnoException) => void shutdown(`stdout: ${err.code ?? err.message}`),
  );
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

/** `report` and `status` are run in a terminal: the next step is a command, not a tool name. */
function noSession(stateDir: string, command: "report" | "status"): EoaError {
  return new EoaError(
    "SESSION_NOT_FOUND",
    `there is no session to ${command === "report" ? "report on" : "show"} in ${stateDir}`,
    `hand a batch over first (ask Claude to complete some issues autonomously), or point eoa-mcp ${command} at the ` +
      "state directory your MCP server uses: run it from the same directory, or pass --state-dir DIR (EOA_STATE_DIR)",
  );
}

/**
 * parseArgs' own text for an unknown option suggests `-- "--bogus"` (quoted unevenly), which is
 * no use here: no command takes a positional argument starting with '-'.
 */
function argumentError(err: unknown): string {
  const unknown = /^Unknown option '([^']+)'/.exec(errorMessage(err));
  return unknown ? `unknown option: ${unknown[1]}` : errorMessage(err);
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

/**
 * How often the night looks whether a cycle is due: a quarter interval, at most a second; a
 * rehearsal's clock jumps, so it looks often.
 */
function nightTick(config: Config, clockFile: string | undefined): { tickMs: number } {
  if (clockFile) return { tickMs: 50 };
  return { tickMs: Math.min(1000, (config.limits.poll_interval_seconds * 1000) / 4) };
}
