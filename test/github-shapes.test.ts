import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ajv, type ValidateFunction } from "ajv";
import formats from "ajv-formats";
import {
  buildSchema,
  execute,
  type GraphQLResolveInfo,
  type GraphQLSchema,
  Kind,
  parse,
  validate,
} from "graphql";
import { schema as githubSchema } from "@octokit/graphql-schema";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GitHubClient } from "../src/clients/github.js";
import { LocalRepo } from "../src/sim/git-repo.js";
import { type GitHubStandIn, startGitHubServer } from "../src/sim/github/index.js";

/**
 * Issue 15, item 2: the GitHub stand-in answers in GitHub's documented shapes. Every operation the
 * product's client uses is called over real HTTP, through a recording proxy; each REST answer
 * (status and body) is validated against the operation's response schema in GitHub's published
 * description (`@octokit/openapi`, api.github.com), each request body against its request schema,
 * and each GraphQL answer is re-derived by executing the client's own query on GitHub's schema
 * (`@octokit/graphql-schema`) over the answer: only the selected fields, with the schema's types.
 */

const require = createRequire(import.meta.url);
const DESCRIPTION = JSON.parse(
  readFileSync(require.resolve("@octokit/openapi/generated/api.github.com.json"), "utf8"),
) as { paths: Record<string, Record<string, Operation>> };
// The published SDL repeats two enterprise fields; the rest of it is what GitHub serves.
const SCHEMA: GraphQLSchema = buildSchema(githubSchema.idl, { assumeValidSDL: true });

interface Response {
  $ref?: string;
  content?: Record<string, { schema: unknown }>;
}

interface Operation {
  operationId: string;
  parameters?: { $ref?: string; name?: string; in?: string }[];
  requestBody?: { content: Record<string, { schema: unknown }> };
  responses: Record<string, Response>;
}

/** A documented response and the JSON pointer of its body's schema, following a shared response's `$ref`. */
function documented(template: string, method: string, status: number, op: Operation) {
  const response = op.responses[String(status)];
  if (!response) return undefined;
  if (!response.$ref) return { response, at: ["paths", template, method, "responses", String(status)] };
  const at = response.$ref.slice(2).split("/");
  return { response: resolve(response.$ref) as Response, at };
}

/** What a local `$ref` ("#/components/...") of the description points at. */
const resolve = (ref: string): unknown =>
  ref
    .slice(2)
    .split("/")
    .reduce<unknown>((node, key) => (node as Record<string, unknown>)[key], DESCRIPTION);

/** The query parameters an operation documents. */
function queryParameters(op: Operation): string[] {
  return (op.parameters ?? [])
    .map((p) => (p.$ref ? (resolve(p.$ref) as { name: string; in: string }) : p))
    .filter((p) => p.in === "query")
    .map((p) => p.name!);
}

interface Exchange {
  method: string;
  path: string;
  query: string[];
  requestBody: unknown;
  status: number;
  responseBody: unknown;
}

/** OpenAPI 3.0's `nullable: true` as JSON Schema: with a `type`, null joins it; without, an anyOf. */
function jsonSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(jsonSchema);
  if (!node || typeof node !== "object") return node;
  const { nullable, ...rest } = node as Record<string, unknown>;
  const out = Object.fromEntries(Object.entries(rest).map(([k, v]) => [k, jsonSchema(v)]));
  if (nullable !== true) return nullable === undefined ? out : { ...out, nullable: jsonSchema(nullable) };
  if (Array.isArray(out.enum) && !out.enum.includes(null)) out.enum = [...out.enum, null];
  if (typeof out.type === "string") return { ...out, type: [out.type, "null"] };
  return { anyOf: [out, { type: "null" }] };
}

const ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false });
// ajv-formats is CommonJS: its function is the default export's `default`.
(formats as unknown as { default: (a: Ajv) => void }).default(ajv);
ajv.addSchema(jsonSchema(DESCRIPTION) as object, "gh");

const pointer = (...parts: string[]) =>
  parts.map((p) => p.replace(/~/g, "~0").replace(/\//g, "~1")).join("/");
const compiled = new Map<string, ValidateFunction>();
function validator(...parts: string[]): ValidateFunction {
  const ref = `gh#/${pointer(...parts)}`;
  let v = compiled.get(ref);
  if (!v) compiled.set(ref, (v = ajv.compile({ $ref: ref })));
  return v;
}

/** The documented operation a request is an instance of. */
function operationOf(method: string, path: string): { template: string; op: Operation } | undefined {
  for (const [template, ops] of Object.entries(DESCRIPTION.paths)) {
    const re = new RegExp(`^${template.replace(/\{[^}]+\}/g, "[^/]+")}$`);
    const op = ops[method.toLowerCase()];
    if (op && re.test(path)) return { template, op };
  }
  return undefined;
}

/** A proxy in front of the stand-in that keeps each request and answer as they crossed the wire. */
async function recordingProxy(
  target: string,
): Promise<{ url: string; exchanges: Exchange[]; server: Server }> {
  const exchanges: Exchange[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      void (async () => {
        const raw = Buffer.concat(chunks).toString("utf8");
        const headers = Object.fromEntries(
          Object.entries(req.headers).filter(
            ([k, v]) => typeof v === "string" && k !== "host" && k !== "content-length",
          ),
        ) as Record<string, string>;
        const answer = await fetch(`${target}${req.url ?? "/"}`, {
          method: req.method ?? "GET",
          headers,
          ...(raw ? { body: raw } : {}),
        });
        const text = await answer.text();
        const url = new URL(req.url ?? "/", target);
        exchanges.push({
          method: req.method ?? "GET",
          path: url.pathname,
          query: [...url.searchParams.keys()],
          requestBody: raw ? JSON.parse(raw) : undefined,
          status: answer.status,
          responseBody: text ? JSON.parse(text) : undefined,
        });
        res.writeHead(answer.status, Object.fromEntries(answer.headers));
        res.end(text);
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, exchanges, server };
}

/**
 * An answer carries no `__typename` unless asked; its type is the one whose inline fragment in the
 * query selected exactly the fields it holds (the first such, when several would do).
 */
function fragmentType(value: unknown, _ctx: unknown, info: GraphQLResolveInfo): string | undefined {
  const keys = Object.keys(value as object).sort();
  for (const node of info.fieldNodes) {
    for (const sel of node.selectionSet?.selections ?? []) {
      if (sel.kind !== Kind.INLINE_FRAGMENT || !sel.typeCondition) continue;
      const selected = sel.selectionSet.selections
        .filter((f) => f.kind === Kind.FIELD)
        .map((f) => (f.alias ?? f.name).value)
        .sort();
      if (JSON.stringify(selected) === JSON.stringify(keys)) return sel.typeCondition.name.value;
    }
  }
  return undefined;
}

let root: string;
let gh: GitHubStandIn;
let proxy: Awaited<ReturnType<typeof recordingProxy>>;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "eoa-gh-shapes-"));
  const repo = await LocalRepo.create(join(root, "git"));
  gh = await startGitHubServer({
    gitDir: repo.bare,
    scopes: ["repo", "project"],
    permissions: { push: true, admin: true },
  });
  proxy = await recordingProxy(gh.url);
  const client = new GitHubClient({
    repo: "acme/webapp",
    token: "t",
    apiUrl: proxy.url,
    retries: 0,
    throttle: false,
  });

  // A night's worth of calls: every method of the client, each operation at least once.
  gh.addWorkflow({ name: "CI", path: ".github/workflows/ci.yml" });
  gh.protectBranch("main", { requiredChecks: ["build"], requiredApprovals: 0 });
  gh.addIssue({ number: 101, title: "User Authentication", labels: ["priority:high"] });
  gh.setProject({ owner: "acme", number: 1, title: "Night", statuses: ["Todo", "Done"] });
  await client.getAuth();
  await client.getRepo();
  await client.getBranchPermission("main");
  await client.getBranchPermission("release");
  gh.setCollaborator("dev-agent-1", "maintain");
  await client.getCollaboratorPermission("dev-agent-1");
  await client.listWorkflows();
  await client.getIssue(101);
  await client.comment(101, "Assigned to dev-agent-1.");
  expect(await client.listCommentBodies(101)).toEqual(["Assigned to dev-agent-1."]);
  await client.markLabel(101, "eoa:blocked", true);
  await client.markLabel(101, "eoa:blocked", false);
  await client.markLabel(101, "eoa:blocked", false); // removing a label it lacks is done already
  await client.setLabels(101, ["status:in-progress", "priority:high"]);
  await client.closeIssue(101);

  const head = await repo.pushPullRequest(147, "feature/auth", {
    "src/auth/core.py": "def login():\n    return True\n",
  });
  gh.addPull({
    number: 147,
    title: "GH-101: auth",
    body: "Closes #101",
    headSha: head,
    headRef: "feature/auth",
  });
  // Cut from the same main as #147 and changing the same line: it conflicts once #147 is merged.
  const conflicting = await repo.pushPullRequest(148, "feature/other", {
    "src/auth/core.py": "def login():\n    return False\n",
  });
  gh.addPull({ number: 148, title: "GH-102: other", headSha: conflicting, headRef: "feature/other" });
  gh.scriptChecks(head, [
    [
      { name: "build", status: "completed", conclusion: "failure" },
      { name: "lint", status: "completed", conclusion: "failure", workflow: null },
    ],
    [
      { name: "build", status: "completed", conclusion: "success" },
      { name: "lint", status: "completed", conclusion: "success", workflow: null },
    ],
  ]);
  await client.getPull(147);
  await client.listCheckRuns(head);
  await client.listWorkflowRuns(head);
  const failed = (await client.listCheckRuns(head)).filter((c) => c.conclusion === "failure");
  await client.rerunChecks(
    head,
    failed.map((c) => c.id),
  );
  const rerun = (await client.listWorkflowRuns(head))[0]!;
  await client.getWorkflowRunAttempt(rerun.id, 1);
  await client.getWorkflowRunAttempt(rerun.id, rerun.runAttempt ?? 1);
  await client.listBranchWorkflowRuns("feature/auth");
  await client.createReview(147, { event: "APPROVE", body: "Both gates passed.", commitId: head });
  await client.merge(147, { method: "squash", sha: head, title: "GH-101: auth (#147)" });
  await client.getPull(147);

  // And the refusals the client meets on a night: each must be a documented status and body.
  const refused = (p: Promise<unknown>, what: string) =>
    p.then(
      () => expect.fail(`expected a refusal: ${what}`),
      () => undefined,
    );
  await refused(client.getIssue(9999), "unknown issue");
  await refused(client.getPull(9999), "unknown pull");
  await refused(client.merge(148, { method: "squash", sha: conflicting }), "conflict");
  await refused(client.merge(148, { method: "squash", sha: head }), "stale head");
  await refused(
    client.createReview(148, { event: "REQUEST_CHANGES", body: "", commitId: conflicting }),
    "review without a body",
  );

  const project = await client.getProject("acme", 1);
  const issueNode = (await client.getIssue(101)).nodeId;
  const item = await client.addIssueToProject(project.id, issueNode);
  await client.setProjectStatus(
    project.id,
    item,
    project.statusField!.id,
    project.statusField!.options[1]!.id,
  );
}, 60_000);

afterAll(async () => {
  await new Promise((resolve) => proxy?.server.close(resolve));
  await gh?.close();
  await rm(root, { recursive: true, force: true });
});

const rest = () => proxy.exchanges.filter((e) => e.path !== "/graphql");
const graphql = () => proxy.exchanges.filter((e) => e.path === "/graphql");

describe("the GitHub stand-in answers in GitHub's documented shapes", () => {
  it("exercises every REST operation the client uses", () => {
    const used = new Set(
      [...readFileSync("src/clients/github.ts", "utf8").matchAll(/octokit\.rest\.(\w+)\.(\w+)/g)].map(
        (m) => `${m[1]}.${m[2]}`,
      ),
    );
    const seen = new Set(
      rest().map((e) => {
        const id = operationOf(e.method, e.path)?.op.operationId ?? `undocumented ${e.method} ${e.path}`;
        // Octokit names each method after its operation id: "pulls/list-files" is pulls.listFiles.
        const [scope, name] = id.split("/") as [string, string];
        return `${scope}.${name.replace(/-(\w)/g, (_m, c: string) => c.toUpperCase())}`;
      }),
    );
    expect([...used].filter((u) => !seen.has(u))).toEqual([]);
    expect([...seen].filter((s) => !used.has(s))).toEqual([]);
  });

  it("every REST request is a documented operation, with documented query parameters and body", () => {
    const problems = rest().flatMap((e) => {
      const found = operationOf(e.method, e.path);
      if (!found) return [`${e.method} ${e.path}: no such operation`];
      const documentedQuery = queryParameters(found.op);
      const undocumented = e.query.filter((q) => !documentedQuery.includes(q));
      if (undocumented.length)
        return [`${found.op.operationId}: undocumented query ${undocumented.join(", ")}`];
      const schema = found.op.requestBody?.content["application/json"];
      if (e.requestBody === undefined || !schema) return [];
      const v = validator(
        "paths",
        found.template,
        e.method.toLowerCase(),
        "requestBody",
        "content",
        "application/json",
        "schema",
      );
      return v(e.requestBody) ? [] : [`${found.op.operationId} request: ${ajv.errorsText(v.errors)}`];
    });
    expect(problems).toEqual([]);
  });

  it("every REST answer has a documented status and a body of the documented shape", () => {
    // The refusals as well as the successes.
    expect([...new Set(rest().map((e) => e.status))].sort()).toEqual([200, 201, 404, 405, 409, 422]);
    const problems = rest().flatMap((e) => {
      const found = operationOf(e.method, e.path);
      if (!found) return [];
      const id = found.op.operationId;
      const method = e.method.toLowerCase();
      const doc = documented(found.template, method, e.status, found.op);
      if (!doc)
        return [
          `${id}: status ${e.status} is not documented (${Object.keys(found.op.responses).join(", ")})`,
        ];
      if (!doc.response.content?.["application/json"])
        return e.responseBody === undefined ? [] : [`${id}: ${e.status} has a body GitHub does not send`];
      const v = validator(...doc.at, "content", "application/json", "schema");
      return v(e.responseBody)
        ? []
        : [
            `${id} ${e.status}: ${(v.errors ?? [])
              .slice(0, 8)
              .map((x) => `${x.instancePath} ${x.message}`)
              .join("; ")}`,
          ];
    });
    expect(problems).toEqual([]);
  });

  it("every GraphQL query is valid on GitHub's schema and every answer holds exactly the selected fields", async () => {
    // The board (organization and user), adding an item, setting its status.
    expect(graphql().length).toBeGreaterThanOrEqual(3);
    for (const e of graphql()) {
      const { query, variables } = e.requestBody as { query: string; variables: Record<string, unknown> };
      const document = parse(query);
      expect(validate(SCHEMA, document).map((x) => x.message)).toEqual([]);
      expect(e.status).toBe(200);
      const answer = e.responseBody as { data: unknown; errors?: unknown[] };
      expect(answer.errors).toBeUndefined();
      // Executing the query over the answer keeps only what it selects, in the schema's types.
      const derived = await execute({
        schema: SCHEMA,
        document,
        variableValues: variables,
        rootValue: answer.data,
        fieldResolver: (source: Record<string, unknown>, _args, _ctx, info) =>
          source[info.path.key as string],
        typeResolver: fragmentType,
      });
      expect(derived.errors?.map((x) => x.message)).toBeUndefined();
      expect(JSON.parse(JSON.stringify(derived.data))).toEqual(answer.data);
    }
  });
});
