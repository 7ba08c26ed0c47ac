import { z } from "zod";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import {
  CallToolRequestSchema,
  ListToolsRequestSchema,
  type CallToolResult,
  type ToolAnnotations,
} from "@modelcontextprotocol/sdk/types.js";
import { EoaError, errorMessage, isEoaError } from "../errors.js";
import { sourceStack } from "../stack.js";
import type { Runtime } from "../engine/runtime.js";
import { errorResult, redactValue, toolResult } from "../response.js";

/**
 * Every tool is declared once: name, title, description, kind, input and output shapes, handler.
 * The MCP annotations are derived from `kind`, never hand-written; errors become `isError`
 * results with a stable code and a next step; mutating tools get `idempotency_key` for free.
 */

export type ToolKind = "read" | "probe" | "action" | "irreversible";

const ANNOTATIONS: Record<ToolKind, Omit<ToolAnnotations, "title">> = {
  /** Reads local state only. */
  read: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  /** Reads AI Maestro / GitHub, changes nothing. */
  probe: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: true },
  /** Changes state and sends messages or labels; replays are safe with an idempotency key. */
  action: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
  /** May merge a pull request. */
  irreversible: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
};

export const ErrorShape = z.object({
  code: z.string(),
  message: z.string(),
  next_step: z.string(),
  details: z.record(z.string(), z.unknown()).optional(),
});

export interface ToolContext {
  rt: Runtime;
  signal: AbortSignal;
  /** Sends `notifications/progress` when the client asked for it; a no-op otherwise. */
  progress(message: string, progress?: number, total?: number): Promise<void>;
}

export interface ToolOutput<O> {
  data: O;
  text: string;
}

export interface ToolDefinition<I extends z.ZodRawShape, O extends z.ZodRawShape> {
  name: string;
  title: string;
  description: string;
  kind: ToolKind;
  input: I;
  output: O;
  handle(args: z.infer<z.ZodObject<I>>, ctx: ToolContext): Promise<ToolOutput<z.infer<z.ZodObject<O>>>>;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyTool = ToolDefinition<any, any>;

export function defineTool<I extends z.ZodRawShape, O extends z.ZodRawShape>(
  def: ToolDefinition<I, O>,
): ToolDefinition<I, O> {
  return def;
}

export const isMutating = (tool: AnyTool) => tool.kind === "action" || tool.kind === "irreversible";

export const IdempotencyKey = z
  .string()
  .min(1)
  .max(200)
  .describe(
    "Replaying a call with the same key (within 24 hours) returns its first success and repeats no side effect; a refused call records nothing, so it can be retried with the same key",
  );

/** The input schema as advertised: strict (unknown keys refused), with idempotency_key on mutating tools. */
export function inputSchemaOf(tool: AnyTool) {
  return z.strictObject(
    isMutating(tool) ? { ...tool.input, idempotency_key: IdempotencyKey.optional() } : tool.input,
  );
}

/**
 * The output schema as advertised. A failure carries only `error`, so every success field is
 * optional on the wire; the handler's result is still checked against the full shape before it
 * leaves the server.
 */
export function outputSchemaOf(tool: AnyTool) {
  return z.object(tool.output).partial().extend({ error: ErrorShape.optional() });
}

/** JSON Schemas as listed in `tools/list` (and kept in the schema snapshot). */
export function listedTool(tool: AnyTool) {
  return {
    name: tool.name,
    title: tool.title,
    description: tool.description,
    inputSchema: portable(z.toJSONSchema(inputSchemaOf(tool), { io: "input" })) as { type: "object" },
    outputSchema: portable(z.toJSONSchema(outputSchemaOf(tool), { io: "output" })) as { type: "object" },
    annotations: { title: tool.title, ...ANNOTATIONS[tool.kind] },
  };
}

/**
 * The schema in the spelling every client accepts (the Inspector's `--strict` checks it): a
 * nullable `type: ["string", "null"]` becomes `anyOf` branches of one type each, and an empty
 * schema for free-form values (`additionalProperties: {}`) says `true`, which is what it means.
 */
export function portable(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(portable);
  if (!schema || typeof schema !== "object") return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) {
    const isEmpty = v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 0;
    out[k] = k === "additionalProperties" && isEmpty ? true : portable(v);
  }
  if (Array.isArray(out.type)) {
    const { type, ...rest } = out;
    return { ...rest, anyOf: (type as string[]).map((t) => ({ type: t })) };
  }
  return out;
}

/**
 * Serves `tools/list` and `tools/call` on the low-level server instead of `McpServer.registerTool`,
 * so that bad input is answered like every other failure: an `isError` result with a stable code
 * (`INVALID_ARGUMENTS`) and a next step, not the SDK's bare text.
 *
 * The tools come from `load`, called once, on the first request that needs them (or earlier, via
 * the returned function): they and the engine behind them are most of the code, and a client's
 * `initialize` should not wait for them to load.
 */
export function registerTools(
  server: McpServer,
  load: () => Promise<readonly AnyTool[]>,
  rt: Runtime,
): () => Promise<unknown> {
  interface Toolset {
    byName: Map<string, AnyTool>;
    // One schema object per tool and direction: zod compiles a schema on its first parse, so a fresh
    // one per call would pay that again on every call (a third of a small call's allocations).
    inputs: Map<AnyTool, ReturnType<typeof inputSchemaOf>>;
    strictOutputs: Map<AnyTool, z.ZodObject>;
    // Built on the first tools/list: converting the schemas is work no other request needs.
    listed?: ReturnType<typeof listedTool>[];
  }
  let loaded: Promise<Toolset> | undefined;
  const toolset = () =>
    (loaded ??= load().then((tools): Toolset => ({
      byName: new Map(tools.map((t) => [t.name, t])),
      inputs: new Map(tools.map((t) => [t, inputSchemaOf(t)])),
      strictOutputs: new Map(tools.map((t) => [t, z.object(t.output)])),
    })));
  server.server.registerCapabilities({ tools: { listChanged: false } });
  server.server.setRequestHandler(ListToolsRequestSchema, async () => {
    const set = await toolset();
    return { tools: (set.listed ??= [...set.byName.values()].map(listedTool)) };
  });
  server.server.setRequestHandler(CallToolRequestSchema, async (request, extra): Promise<CallToolResult> => {
    const { byName, inputs, strictOutputs } = await toolset();
    const tool = byName.get(request.params.name);
    if (!tool) {
      return toErrorResult(
        new EoaError(
          "UNKNOWN_TOOL",
          `there is no tool named ${JSON.stringify(request.params.name)}`,
          `call tools/list; the tools are ${[...byName.keys()].join(", ")}`,
        ),
        rt,
      );
    }
    const parsed = inputs.get(tool)!.safeParse(request.params.arguments ?? {});
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `${i.path.join(".") || "(arguments)"}: ${i.message}`);
      return toErrorResult(
        new EoaError(
          "INVALID_ARGUMENTS",
          `invalid arguments for ${tool.name}: ${problems.join("; ")}`,
          `call ${tool.name} again with arguments that match its inputSchema (nothing was changed)`,
          { problems },
        ),
        rt,
      );
    }
    const progressToken = request.params._meta?.progressToken;
    let step = 0;
    const ctx: ToolContext = {
      rt,
      signal: extra.signal,
      progress: async (message, progress, total) => {
        if (progressToken === undefined) return;
        step++;
        await extra
          .sendNotification({
            method: "notifications/progress",
            params: { progressToken, progress: progress ?? step, ...(total ? { total } : {}), message },
          })
          .catch(() => undefined);
      },
    };
    // Arguments are text entering the process too: a secret in them is never stored or sent.
    const { idempotency_key: key, ...args } = redactValue(parsed.data, (t) => rt.redact(t)) as {
      idempotency_key?: string;
    };
    const strictOutput = strictOutputs.get(tool)!;
    const run = async (): Promise<CallToolResult> => {
      const out = await tool.handle(args, ctx);
      // What a call cost the state file: one transaction for a call that changes something.
      rt.logger.debug(`tool ${tool.name}: ${rt.transactionsInCall()} transaction(s)`);
      const checked = strictOutput.safeParse(out.data);
      if (!checked.success) {
        throw new Error(`tool ${tool.name} produced output that breaks its schema: ${checked.error.message}`);
      }
      return toolResult(out, (t) => rt.redact(t));
    };
    try {
      return key && isMutating(tool)
        ? await rt.idempotent(tool.name, key, args, run, (err) => toErrorResult(err, rt))
        : await rt.inCall(run);
    } catch (err) {
      return toErrorResult(err, rt);
    }
  });
  return toolset;
}

export function toErrorResult(err: unknown, rt: Pick<Runtime, "redact" | "logger">): CallToolResult {
  if (!isEoaError(err))
    rt.logger.error("tool failed", {
      error: errorMessage(err),
      stack: err instanceof Error && err.stack ? sourceStack(err.stack) : undefined,
    });
  return errorResult(err, (t) => rt.redact(t));
}
