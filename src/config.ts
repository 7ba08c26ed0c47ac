import { existsSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import { z } from "zod";
import { parseRosterMarkdown, type RosterAgent, RosterAgentSchema } from "./roster.js";

/**
 * Configuration, layered: defaults ← config file ← environment ← flags, validated once at start.
 * A bad value stops the server with a message naming the key and the layer it came from.
 */

const int = (min: number, max: number, def: number) => z.number().int().min(min).max(max).default(def);
const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, "letters, digits, '.', '_' or '-'");

export const ConfigSchema = z.strictObject({
  orchestrator: name.default("eoa-orchestrator"),
  aimaestro: z
    .strictObject({
      url: z.url({ protocol: /^https?$/ }).default("http://localhost:23000"),
      token: z.string().min(1).optional(),
      timeout_ms: int(100, 120_000, 10_000),
    })
    .prefault({}),
  github: z
    .strictObject({
      repo: z
        .string()
        .regex(/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/, "owner/name")
        .optional(),
      token: z.string().min(1).optional(),
      apiUrl: z.url({ protocol: /^https?$/ }).default("https://api.github.com"),
      project: z.number().int().positive().optional(),
    })
    .prefault({}),
  git: z.strictObject({ remote: z.string().min(1).optional() }).prefault({}),
  stateDir: z.string().min(1).default("./.eoa"),
  roster: z.array(RosterAgentSchema).optional(),
  rosterFile: z.string().min(1).optional(),
  limits: z
    .strictObject({
      /** A poll cycle counts (heartbeats, ack deadlines, CI polls) at most once per interval. */
      poll_interval_seconds: int(1, 3600, 300),
      heartbeat_missed_threshold: int(1, 100, 3),
      ci_poll_attempts: int(1, 100, 5),
      max_concurrent_tasks: int(1, 50, 3),
      max_retry_attempts: int(0, 20, 3),
      max_fix_rounds: int(1, 50, 5),
      ack_timeout_minutes: int(1, 1440, 5),
      /** Error reports from one agent within the ack window that make taking it offline due. */
      errors_before_offline: int(1, 100, 3),
    })
    .prefault({}),
  review: z
    .strictObject({
      commands: z
        .strictObject({
          test: z.string().min(1).optional(),
          lint: z.string().min(1).optional(),
          coverage: z.string().min(1).optional(),
        })
        .prefault({}),
      command_timeout_minutes: int(1, 240, 20),
      coverage_threshold: z.number().min(0).max(100).default(80),
      merge_method: z.enum(["merge", "squash", "rebase"]).default("squash"),
      auto_merge: z.boolean().default(true),
      protected_paths: z.array(z.string().min(1)).default([]),
      spare_worktree: z.boolean().default(true),
    })
    .prefault({}),
  escalation: z
    .strictObject({
      user_channel: name.default("user-notification-channel"),
      review_queue: name.default("orchestrator-queue"),
    })
    .prefault({}),
  http: z
    .strictObject({
      token: z.string().min(16, "at least 16 characters").optional(),
      port: int(0, 65535, 3333),
      /** Browser origins allowed to call the HTTP transport (a local web client); none by default. */
      allowed_origins: z.array(z.url({ protocol: /^https?$/ })).default([]),
    })
    .prefault({}),
});

export type Config = z.infer<typeof ConfigSchema> & { agents: RosterAgent[] };

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

export interface ConfigSources {
  argv?: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** The flags every command accepts; anything else is refused with the usage text. */
export const CONFIG_FLAGS = {
  config: { type: "string" },
  "state-dir": { type: "string" },
  repo: { type: "string" },
  orchestrator: { type: "string" },
  "aimaestro-url": { type: "string" },
  "github-api-url": { type: "string" },
  "roster-file": { type: "string" },
  port: { type: "string" },
} as const;

type Layer = Record<string, unknown>;

export function loadConfig(sources: ConfigSources = {}): Config {
  const env = sources.env ?? process.env;
  const cwd = sources.cwd ?? process.cwd();
  const flags = sources.argv
    ? (parseArgs({ args: sources.argv, options: CONFIG_FLAGS, strict: false }).values as Record<
        string,
        string | boolean | undefined
      >)
    : {};

  const fileLayer = readConfigFile(flags.config as string | undefined, env, cwd);
  const { layer: envLayer, names: envNames } = fromEnv(env);
  const flagLayer = fromFlags(flags);
  const merged = deepMerge(deepMerge(fileLayer.data, envLayer), flagLayer);

  const parsed = ConfigSchema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    // zod reports an unknown key at its parent object; name the key itself, and find it in its layer.
    const unknownKey = issue.code === "unrecognized_keys" ? issue.keys[0] : undefined;
    const path = unknownKey === undefined ? issue.path : [...issue.path, unknownKey];
    const key = path.join(".") || "(root)";
    const message =
      unknownKey === undefined ? issue.message : "unknown key (check its spelling, or remove it)";
    const from = originOf(path, { file: fileLayer, env: envLayer, envNames, flags: flagLayer });
    throw new ConfigError(`invalid configuration: ${key}: ${message}${from ? ` (from ${from})` : ""}`);
  }
  const cfg = parsed.data;
  cfg.stateDir = resolve(cwd, cfg.stateDir);
  return { ...cfg, agents: loadRoster(cfg, cwd) };
}

function readConfigFile(flagPath: string | undefined, env: NodeJS.ProcessEnv, cwd: string) {
  const explicit = flagPath ?? env.EOA_CONFIG;
  const path = explicit ? resolve(cwd, explicit) : resolve(cwd, "eoa.config.json");
  if (!explicit && !existsSync(path)) return { path: undefined, data: {} as Layer };
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(
      `config file ${path} is not valid JSON: ${jsonErrorAt(text, (err as Error).message)}`,
    );
  }
  if (!data || typeof data !== "object" || Array.isArray(data))
    throw new ConfigError(`config file ${path} is not valid: it must hold a JSON object ({ ... })`);
  // Paths in a config file are relative to the file: clients may start the server anywhere.
  const layer = data as Layer;
  for (const key of ["stateDir", "rosterFile"]) {
    if (typeof layer[key] === "string") layer[key] = resolve(dirname(path), layer[key]);
  }
  return { path, data: layer };
}

/** JSON.parse names a character offset ("at position 14"); an editor wants a line and a column. */
function jsonErrorAt(text: string, message: string): string {
  const m = / at position (\d+)(?: \(line \d+ column \d+\))?/.exec(message);
  if (!m) return message;
  const before = text.slice(0, Number(m[1]));
  const line = before.split("\n").length;
  const column = before.length - before.lastIndexOf("\n");
  return `${message.replace(m[0], "")} at line ${line}, column ${column}`;
}

/** A comma-separated variable as a list (EOA_HTTP_ALLOWED_ORIGINS). */
const list = (value: string) =>
  value
    .split(",")
    .map((o) => o.trim())
    .filter(Boolean);

/** The environment's layer, and which variable set each key (an error names the variable to fix). */
function fromEnv(env: NodeJS.ProcessEnv): { layer: Layer; names: Map<string, string> } {
  const layer: Layer = {};
  const names = new Map<string, string>();
  const set = (path: string, ...variables: string[]) => {
    const variable = variables.find((v) => env[v] !== undefined && env[v] !== "");
    if (!variable) return;
    const value = env[variable]!;
    setPath(
      layer,
      path,
      path === "github.project" ? numeric(value) : path.endsWith("_origins") ? list(value) : value,
    );
    names.set(path, variable);
  };
  set("orchestrator", "EOA_ORCHESTRATOR");
  set("aimaestro.url", "AIMAESTRO_API");
  set("aimaestro.token", "AIMAESTRO_TOKEN");
  set("github.repo", "EOA_REPO");
  set("github.token", "GITHUB_TOKEN", "GH_TOKEN");
  set("github.apiUrl", "GITHUB_API_URL");
  set("github.project", "EOA_PROJECT");
  set("git.remote", "EOA_GIT_REMOTE");
  set("stateDir", "EOA_STATE_DIR");
  set("rosterFile", "EOA_ROSTER_FILE");
  set("http.token", "EOA_HTTP_TOKEN");
  set("http.allowed_origins", "EOA_HTTP_ALLOWED_ORIGINS");
  return { layer, names };
}

function fromFlags(flags: Record<string, string | boolean | undefined>): Layer {
  const layer: Layer = {};
  const str = (k: string) => (typeof flags[k] === "string" ? (flags[k] as string) : undefined);
  const pairs: Array<[string, unknown]> = [
    ["stateDir", str("state-dir")],
    ["github.repo", str("repo")],
    ["orchestrator", str("orchestrator")],
    ["aimaestro.url", str("aimaestro-url")],
    ["github.apiUrl", str("github-api-url")],
    ["rosterFile", str("roster-file")],
    ["http.port", numeric(str("port"))],
  ];
  for (const [path, value] of pairs) if (value !== undefined) setPath(layer, path, value);
  return layer;
}

/** Keeps a non-number as the raw string so zod names the key instead of it vanishing. */
function numeric(v: string | undefined): number | string | undefined {
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : v;
}

function loadRoster(cfg: z.infer<typeof ConfigSchema>, cwd: string): RosterAgent[] {
  if (cfg.roster && cfg.rosterFile) {
    throw new ConfigError("invalid configuration: roster: give either roster or rosterFile, not both");
  }
  let agents: RosterAgent[] = cfg.roster ?? [];
  if (cfg.rosterFile) {
    const path = resolve(cwd, cfg.rosterFile);
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (err) {
      throw new ConfigError(
        `invalid configuration: rosterFile: cannot read ${path}: ${(err as Error).message}`,
      );
    }
    try {
      agents = parseRosterMarkdown(text);
    } catch (err) {
      throw new ConfigError(`invalid configuration: rosterFile: ${path}: ${(err as Error).message}`);
    }
  }
  const ids = new Set<string>();
  for (const a of agents) {
    if (ids.has(a.id)) throw new ConfigError(`invalid configuration: roster: agent ${a.id} is listed twice`);
    ids.add(a.id);
  }
  for (const a of agents) {
    for (const b of a.backup ?? []) {
      if (!ids.has(b)) {
        throw new ConfigError(`invalid configuration: roster: backup ${b} of ${a.id} is not on the roster`);
      }
      if (b === a.id)
        throw new ConfigError(`invalid configuration: roster: ${a.id} cannot be its own backup`);
    }
  }
  return agents;
}

function originOf(
  path: PropertyKey[],
  layers: {
    file: { path?: string; data: Layer };
    env: Layer;
    envNames: Map<string, string>;
    flags: Layer;
  },
): string | undefined {
  if (path.length === 0) return undefined;
  const has = (layer: Layer) => getPath(layer, path) !== undefined;
  if (has(layers.flags)) return "command-line flags";
  if (has(layers.env)) {
    const variable = [...layers.envNames].find(([key]) => path.join(".").startsWith(key))?.[1];
    return variable ? `environment variable ${variable}` : "environment";
  }
  if (layers.file.path && has(layers.file.data)) return layers.file.path;
  return undefined;
}

function setPath(obj: Layer, path: string, value: unknown): void {
  const parts = path.split(".");
  let cur = obj;
  for (const p of parts.slice(0, -1)) cur = (cur[p] ??= {}) as Layer;
  cur[parts.at(-1)!] = value;
}

function getPath(obj: unknown, path: PropertyKey[]): unknown {
  let cur = obj;
  for (const p of path) {
    if (!cur || typeof cur !== "object") return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[p];
  }
  return cur;
}

export function deepMerge(base: Layer, over: Layer): Layer {
  const out: Layer = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] =
      v && typeof v === "object" && !Array.isArray(v) && b && typeof b === "object" && !Array.isArray(b)
        ? deepMerge(b as Layer, v as Layer)
        : v;
  }
  return out;
}

/** Every secret the process knows, for the log and output redactor. */
export function secretsOf(cfg: Config): string[] {
  return [cfg.aimaestro.token, cfg.github.token, cfg.http.token].filter(
    (s): s is string => typeof s === "string" && s.length >= 4,
  );
}

/** The effective configuration as shown to clients: secrets replaced, their presence kept. */
export function redactedConfig(cfg: Config): Record<string, unknown> {
  const mark = (s: string | undefined) => (s ? "[redacted]" : null);
  return {
    ...cfg,
    aimaestro: { ...cfg.aimaestro, token: mark(cfg.aimaestro.token) },
    github: { ...cfg.github, token: mark(cfg.github.token) },
    git: { remote: cfg.git.remote ? redactUrl(cfg.git.remote) : null },
    http: { ...cfg.http, token: mark(cfg.http.token) },
  };
}

/** The git remote, defaulting to GitHub's HTTPS URL of the repository. */
export function gitRemoteOf(cfg: Pick<Config, "git" | "github">): string | undefined {
  return cfg.git.remote ?? (cfg.github.repo ? `https://github.com/${cfg.github.repo}.git` : undefined);
}

export function redactUrl(url: string): string {
  return url.replace(/\/\/[^/@\s]*@/, "//[redacted]@");
}
