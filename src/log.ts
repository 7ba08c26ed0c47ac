import { logLine } from "./response.js";
/**
 * Logging goes to stderr (stdout is the MCP channel) and, once a server is connected, to MCP
 * `notifications/message` as well. Every line passes through the redactor so that no token
 * configured in the process can reach a log.
 */
export type LogLevel = "debug" | "info" | "warning" | "error";

export type LogSink = (level: LogLevel, logger: string, data: unknown) => void;

const ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warning: 2, error: 3 };

export interface Logger {
  debug(msg: string, data?: Record<string, unknown>): void;
  info(msg: string, data?: Record<string, unknown>): void;
  warn(msg: string, data?: Record<string, unknown>): void;
  error(msg: string, data?: Record<string, unknown>): void;
  child(name: string): Logger;
}

export interface LoggerOptions {
  level?: LogLevel;
  redact?: (text: string) => string;
  /** Extra sinks (e.g. MCP logging notifications); stderr is always one. */
  sinks?: Set<LogSink>;
  stderr?: boolean;
}

export function createLogger(name: string, opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? ((process.env.EOA_LOG_LEVEL as LogLevel | undefined) || "info");
  const redact = opts.redact ?? ((t: string) => t);
  const sinks = opts.sinks ?? new Set<LogSink>();
  const stderr = opts.stderr ?? true;
  const emit = (lvl: LogLevel, msg: string, data?: Record<string, unknown>) => {
    if (ORDER[lvl] < ORDER[level]) return;
    // Value by value: a pattern over serialized JSON can eat a quote or miss a token behind an escape.
    const line = logLine(msg, data, redact);
    if (stderr) process.stderr.write(`[eoa-mcp] ${lvl} ${name}: ${line}\n`);
    for (const sink of sinks) {
      try {
        sink(lvl, name, line);
      } catch {
        // A broken sink (closed transport) must never break the caller.
      }
    }
  };
  return {
    debug: (m, d) => emit("debug", m, d),
    info: (m, d) => emit("info", m, d),
    warn: (m, d) => emit("warning", m, d),
    error: (m, d) => emit("error", m, d),
    child: (child) => createLogger(`${name}.${child}`, { ...opts, level, redact, sinks, stderr }),
  };
}

/** A logger that drops everything (tests that do not care). */
export const silentLogger: Logger = createLogger("silent", {
  stderr: false,
  level: "error",
  sinks: new Set(),
});
