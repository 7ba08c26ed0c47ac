#!/usr/bin/env node
import { parseArgs } from "node:util";
import { setFlagsFromString } from "node:v8";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { CONFIG_FLAGS, ConfigError, loadConfig } from "./config.js";
import { buildRuntime, closeRuntime, prepareRuntime, recover } from "./deps.js";
import { errorMessage, isEoaError } from "./errors.js";
import type { LogSink } from "./log.js";
import { createServer } from "./server.js";
import { VERSION } from "./version.js";
import { FileClock } from "./clock.js";

const USAGE = `eoa-mcp ${VERSION}: MCP server for autonomous operation of developer agents (AI Maestro + GitHub)

Usage:
  eoa-mcp [options]              serve MCP on stdio (what Claude Code / Claude Desktop run)
  eoa-mcp --http [--port N]      serve Streamable HTTP on 127.0.0.1 (needs EOA_HTTP_TOKEN)
  eoa-mcp simulate [faults]      rehearse a whole night against local stand-ins (see: eoa-mcp simulate --help)
  eoa-mcp preflight [options]    print the Prerequisites Checklist and exit (1 when an item fails)
  eoa-mcp report [options]       write the current session's report and print it
  eoa-mcp --help | --version

Options:
  --config FILE          config file (default ./eoa.config.json when present; or EOA_CONFIG)
  --state-dir DIR        state directory (EOA_STATE_DIR, default ./.eoa)
  --repo OWNER/NAME      GitHub repository (EOA_REPO)
  --orchestrator NAME    AI Maestro name of the orchestrator (EOA_ORCHESTRATOR)
  --aimaestro-url URL    AI Maestro base URL (AIMAESTRO_API)
  --github-api-url URL   GitHub API base URL (GITHUB_API_URL)
  --roster-file FILE     AGENT_ROSTER.md (EOA_ROSTER_FILE)
  --port N               HTTP port (default 3333; 0 picks a free one)

stdout carries only the MCP protocol; logs go to stderr (EOA_LOG_LEVEL=debug|info|warning|error).`;

const COMMANDS = new Set(["serve", "preflight", "report"]);

// undici parses HTTP with WebAssembly (llhttp). V8's optimising tier recompiles it in the background
// a few seconds after the first request, and that compilation alone lifted a server's peak memory
// by about 35 MB (VmHWM 102 vs 66 MB for a bare undici request loop). At a handful of requests a
// minute the baseline compiler's code is fast enough. Set before undici is first imported.
setFlagsFromString("--liftoff-only");

async function main(argv: string[]): Promise<number> {
  // Loaded on demand: a plain stdio start should not pay for the simulator or the HTTP stack.
  if (argv[0] === "simulate") return (await import("./sim/simulate.js")).simulate(argv.slice(1));
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        ...CONFIG_FLAGS,
        help: { type: "boolean", short: "h" },
        version: { type: "boolean" },
        http: { type: "boolean" },
      },
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
  // Rehearsals (eoa-mcp simulate) run the server on the simulation's clock.
  const clockFile = process.env.EOA_FAKE_CLOCK_FILE;
  const stdio = command === "serve" && !parsed.values.http;
  const rt = await buildRuntime(config, {
    logSinks: sinks,
    ...(clockFile ? { clock: new FileClock(clockFile), fast: true } : {}),
    deferPrepare: stdio,
  });

  if (command === "preflight") {
    const { preflight, renderPreflight } = await import("./engine/preflight.js");
    const result = await preflight(rt);
    process.stdout.write(`${renderPreflight(result)}\n`); // stdout-ok: a terminal command
    await closeRuntime(rt);
    return result.ready ? 0 : 1;
  }

  if (command === "report") {
    const { writeReport } = await import("./engine/report.js");
    const r = await writeReport(rt);
    process.stdout.write(r.markdown); // stdout-ok: a terminal command
    process.stderr.write(`written to ${r.path}\n`);
    await closeRuntime(rt);
    return 0;
  }

  let closing = false;
  if (parsed.values.http) {
    const { serveHttp } = await import("./http.js");
    const http = await serveHttp(rt, { port: config.http.port, logSinks: sinks });
    void recover(rt);
    rt.logger.info("serving MCP over Streamable HTTP", { url: http.url });
    process.stderr.write(`eoa-mcp: listening on ${http.url}\n`);
    const stop = async () => {
      if (closing) return;
      closing = true;
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
  const ready = () =>
    (preparing ??= prepareRuntime(rt).then(
      () => void recover(rt),
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
