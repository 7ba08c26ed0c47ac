import { logLine, redactValue } from "./response.js";
/**
 * Logging goes to stderr (stdout is the MCP channel) and, once a server is connected, to MCP
 * `notifications/message` as well. Every line passes through the redactor so that no token
 * configured in the process can reach a log.
 */
export const LOG_LEVELS = ["debug", "info", "warning", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ["text", "json"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/**
 * The level and format asked for (flag, else environment, else the default), or an error naming the
 * allowed values: a misspelt level must not silently log everything or nothing.
 */
export function logSettings(
  flags: { level?: string | undefined; format?: string | undefined },
  env: NodeJS.ProcessEnv,
): { level: LogLevel; format: LogFormat } {
  const level = flags.level ?? (env.EOA_LOG_LEVEL || "info");
  const format = flags.format ?? (env.EOA_LOG_FORMAT || "text");
  if (!(LOG_LEVELS as readonly string[]).includes(level))
    throw new Error(
      `unknown log level "${level}" (EOA_LOG_LEVEL / --log-level): use ${LOG_LEVELS.join(", ")}`,
    );
  if (!(LOG_FORMATS as readonly string[]).includes(format))
    throw new Error(
      `unknown log format "${format}" (EOA_LOG_FORMAT / --log-format): use ${LOG_FORMATS.join(" or ")}`,
    );
  return { level: level as LogLevel, format: format as LogFormat };
}

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
  /** `json`: one JSON object a line on stderr, for log collectors (EOA_LOG_FORMAT). */
  format?: LogFormat;
  redact?: (text: string) => string;
  /** Extra sinks (e.g. MCP logging notifications); stderr is always one. */
  sinks?: Set<LogSink>;
  stderr?: boolean;
}

export function createLogger(name: string, opts: LoggerOptions = {}): Logger {
  // The CLI refuses a bad EOA_LOG_LEVEL at start; an embedder's falls back to the defaults.
  let settings: { level: LogLevel; format: LogFormat } = { level: "info", format: "text" };
  try {
    settings = logSettings({}, process.env);
  } catch {
    // keep the defaults
  }
  const level = opts.level ?? settings.level;
  const format = opts.format ?? settings.format;
  const redact = opts.redact ?? ((t: string) => t);
  const sinks = opts.sinks ?? new Set<LogSink>();
  const stderr = opts.stderr ?? true;
  const emit = (lvl: LogLevel, msg: string, data?: Record<string, unknown>) => {
    if (ORDER[lvl] < ORDER[level]) return;
    // Value by value: a pattern over serialized JSON can eat a quote or miss a token behind an escape.
    const line = logLine(msg, data, redact);
    if (stderr)
      process.stderr.write(
        format === "json" ? jsonLine(lvl, name, msg, data, redact) : `[eoa-mcp] ${lvl} ${name}: ${line}\n`,
      );
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
    child: (child) => createLogger(`${name}.${child}`, { ...opts, level, format, redact, sinks, stderr }),
  };
}

/** A logger that drops everything (tests that do not care). */
export const silentLogger: Logger = createLogger("silent", {
  stderr: false,
  level: "error",
  sinks: new Set(),
});

function jsonLine(
  level: LogLevel,
  logger: string,
  msg: string,
  data: Record<string, unknown> | undefined,
  redact: (text: string) => string,
): string {
  const fields = data ? (redactValue(data, redact) as Record<string, unknown>) : {};
  return `${JSON.stringify({ time: new Date().toISOString(), level, logger, msg: redact(msg), ...fields })}\n`;
}
