import { McpServer, ResourceTemplate } from "@modelcontextprotocol/sdk/server/mcp.js";
import {
  ErrorCode,
  McpError,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";
import { UriTemplate } from "@modelcontextprotocol/sdk/shared/uriTemplate.js";
import { AttentionTracker, channelEvent } from "./engine/attention.js";
import { Runtime, type RuntimeDeps } from "./engine/runtime.js";
import type { LogLevel, LogSink } from "./log.js";
import { prompts, SERVER_INSTRUCTIONS } from "./prompts/index.js";
import type { ResourceDefinition } from "./resources/define-resource.js";
import { resources } from "./resources/index.js";
import type { StateChange } from "./state/store.js";
import { resourceText } from "./response.js";
import { registerTools } from "./tools/define-tool.js";
import { VERSION } from "./version.js";

/** How long a burst of state changes is gathered before the channel is told what needs the model. */
const ATTENTION_MS = 100;

export interface ServerOptions {
  /** Log sinks shared with the runtime's logger; the server adds one that forwards to MCP logging. */
  logSinks?: Set<LogSink>;
  /** How often to look for writes by other processes sharing the state directory (ms). */
  externalPollMs?: number;
  /**
   * Work every tool call and resource read waits for (the state's first load and the roster sync),
   * started once the client has its `initialize` answer: see `prepareRuntime`.
   */
  ready?: () => Promise<void>;
}

export interface EoaServer {
  server: McpServer;
  rt: Runtime;
  close(): Promise<void>;
}

/** Builds one MCP server from injected dependencies (store, clients, clock); transports live elsewhere. */
export function createServer(deps: RuntimeDeps | Runtime, opts: ServerOptions = {}): EoaServer {
  const rt = deps instanceof Runtime ? deps : new Runtime(deps);
  const server = new McpServer(
    { name: "eoa-mcp", title: "EOA autonomous operation", version: VERSION },
    {
      // Claude Code channels: events that need the model arrive in its session (issue 11).
      capabilities: { logging: {}, experimental: { "claude/channel": {} } },
      instructions: SERVER_INSTRUCTIONS,
    },
  );

  const ready = opts.ready ?? (() => Promise.resolve());
  const loadTools = registerTools(
    server,
    () => Promise.all([import("./tools/index.js"), ready()]).then(([m]) => m.tools),
    rt,
  );
  // Loaded while the client sends `initialized`, so that its first tools/list does not wait.
  server.server.oninitialized = () => void loadTools().catch(() => undefined);
  for (const def of resources) registerResource(server, rt, def, ready);
  for (const p of prompts) {
    server.registerPrompt(
      p.name,
      { title: p.title, description: p.description, argsSchema: p.args },
      (args) => ({
        description: p.description,
        messages: [
          {
            role: "user",
            content: { type: "text", text: p.render(args as Record<string, string | undefined>) },
          },
        ],
      }),
    );
  }

  // Subscriptions: McpServer does not track them, so the low-level server does.
  // Other server processes may write the same state directory: while this session has
  // subscriptions, the store looks for their writes (one timer however many sessions watch) and
  // tells every listener through onChange.
  const subscribed = new Set<string>();
  let unwatch: (() => void) | undefined;
  server.server.registerCapabilities({ resources: { subscribe: true, listChanged: true } });
  server.server.setRequestHandler(SubscribeRequestSchema, (req) => {
    subscribed.add(req.params.uri);
    unwatch ??= rt.store.watch(opts.externalPollMs ?? 1000);
    return {};
  });
  server.server.setRequestHandler(UnsubscribeRequestSchema, (req) => {
    subscribed.delete(req.params.uri);
    if (subscribed.size === 0) {
      unwatch?.();
      unwatch = undefined;
    }
    return {};
  });
  const notify = (uri: string) => {
    if (subscribed.has(uri)) server.server.sendResourceUpdated({ uri }).catch(() => undefined);
  };
  const offChange = rt.store.onChange((change) => {
    for (const uri of subscribed) if (affects(uri, change)) notify(uri);
  });
  const onExtra = (uri: string) => notify(uri);
  rt.extraUpdates.add(onExtra);

  // What needs the model is pushed as it happens, whichever process's cycle caused it: the store
  // is watched for other processes' writes while a client is connected.
  let tracker: AttentionTracker | undefined;
  let unwatchAttention: (() => void) | undefined;
  // Looked at once per burst of changes (at most every ATTENTION_MS), after the call that made them
  // has answered: what needs the model is a walk over every task, which must cost no call its
  // latency, and a burst of calls one walk, not one each.
  let looking: NodeJS.Timeout | undefined;
  const look = async () => {
    looking = undefined;
    if (!tracker || !server.isConnected()) return;
    for (const e of tracker.news(await rt.store.read())) {
      server.server
        .notification({
          method: "notifications/claude/channel",
          params: channelEvent(e, (t) => rt.redact(t)),
        })
        .catch(() => undefined);
    }
  };
  const offAttention = rt.store.onChange(() => {
    if (tracker && !looking) looking = setTimeout(() => void look().catch(() => undefined), ATTENTION_MS);
  });
  const previousInitialized = server.server.oninitialized;
  server.server.oninitialized = () => {
    previousInitialized?.();
    void ready()
      .then(() => rt.store.read())
      .then((state) => {
        tracker = new AttentionTracker(state);
        unwatchAttention = rt.store.watch(opts.externalPollMs ?? 1000);
      })
      .catch(() => undefined);
  };

  const sink: LogSink = (level: LogLevel, logger: string, data: unknown) => {
    // Nothing may precede the initialize answer; getClientVersion is set by initialize.
    if (!server.isConnected() || !server.server.getClientVersion()) return;
    server.server.sendLoggingMessage({ level, logger, data }).catch(() => undefined);
  };
  opts.logSinks?.add(sink);

  return {
    server,
    rt,
    async close() {
      unwatch?.();
      unwatchAttention?.();
      offAttention();
      clearTimeout(looking);
      offChange();
      rt.extraUpdates.delete(onExtra);
      opts.logSinks?.delete(sink);
      await server.close();
    },
  };
}

function registerResource(
  server: McpServer,
  rt: Runtime,
  def: ResourceDefinition,
  ready: () => Promise<void>,
): void {
  const meta = { title: def.title, description: def.description, mimeType: def.mimeType };
  const read = async (uri: URL, params: Record<string, string>) => {
    await ready();
    const state = await rt.store.read();
    const text = await def.read(rt, state, params);
    if (text === null) {
      throw new McpError(
        ErrorCode.InvalidParams,
        `resource not found: ${uri.href}; list resources for the known ones`,
      );
    }
    return {
      contents: [{ uri: uri.href, mimeType: def.mimeType, text: resourceText(text, (t) => rt.redact(t)) }],
    };
  };
  if (def.uri.includes("{")) {
    // Not enumerated in resources/list, which must not grow with the night (issue 16): templates
    // are in resources/templates/list, and the pages of eoa://tasks name every task.
    const template = new ResourceTemplate(def.uri, { list: undefined });
    server.registerResource(def.name, template, meta, (uri, variables) =>
      read(
        uri,
        Object.fromEntries(Object.entries(variables).map(([k, v]) => [k, decodeURIComponent(String(v))])),
      ),
    );
  } else {
    server.registerResource(def.name, def.uri, meta, (uri) => read(uri, {}));
  }
}

const templated = resources
  .filter((def) => def.uri.includes("{"))
  .map((def) => ({ def, template: new UriTemplate(def.uri) }));

/** Whether a change to the state touches what a subscribed URI shows. */
function affects(uri: string, change: StateChange): boolean {
  if (change.external) return true;
  const task = /^eoa:\/\/tasks\/([^/]+)$/.exec(uri);
  if (task) return change.taskIds.has(decodeURIComponent(task[1]!)) || change.keys.has("reviews");
  const def = resources.find((r) => r.uri === uri) ?? templated.find((r) => r.template.match(uri))?.def;
  if (!def) return false;
  return def.dependsOn.includes("*") || def.dependsOn.some((k) => change.keys.has(k));
}
