import { setTimeout as sleep } from "node:timers/promises";
import { readFile } from "node:fs/promises";
import { ResourceUpdatedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { describe, expect, it } from "vitest";
import { untrustedInline } from "../src/protocol/text.js";
import { StateStore } from "../src/state/store.js";
import { isMutating, type ToolKind } from "../src/tools/define-tool.js";
import { tools } from "../src/tools/index.js";
import { FIXED_RESOURCES } from "./fixtures/resources.js";
import { stateBytes as stateBytesOf } from "./fixtures/state-files.js";
import { SEED_AGENTS } from "../src/sim/environment.js";
import { callTool, connectedNight, failure, okResult, useNight } from "./fixtures/tool-calls.js";

const night = useNight("each");

const call = (name: string, args: Record<string, unknown> = {}) => callTool(night.client, name, args);
const ok = <T = Record<string, unknown>>(name: string, args: Record<string, unknown> = {}) =>
  okResult<T>(night.client, name, args);

/** A refused call's error, shown to the client as its code, message and next step. */
async function refused(name: string, args: Record<string, unknown>) {
  const { error, text } = await failure(night.client, name, args);
  expect(error.next_step.length).toBeGreaterThan(10);
  expect(text).toBe(`${error.code}: ${error.message}\nNext step: ${error.next_step}`);
  return error;
}

async function resource(uri: string): Promise<string> {
  const r = await night.client.readResource({ uri });
  return (r.contents[0] as { text: string }).text;
}

const json = async <T = Record<string, unknown>>(uri: string) => JSON.parse(await resource(uri)) as T;
const stateBytes = async () => (await stateBytesOf(night.env.stateDir, night.env.rt)).toString("utf8");

interface Confirmation {
  session_id: string;
  status: string;
  tasks: Array<{
    task_id: string;
    title: string;
    priority: string;
    effort: string | null;
    depends_on: string[];
    required_capabilities: string[];
    source: string;
  }>;
  scope_estimate: string;
  available_agents: string[];
  warnings: string[];
  directive: string | null;
  escalation_policy: { immediate: string[]; source: string };
}

const SEED = ["GH-101", "GH-102", "GH-103"];

describe("tools/list", () => {
  const EXPECTED: Record<ToolKind, Record<string, boolean>> = {
    read: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    probe: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: true },
    action: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
    irreversible: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
  };

  it("lists every tool with a title and the annotations its kind implies", async () => {
    const listed = (await night.client.listTools()).tools;
    expect(listed.map((t) => t.name)).toEqual(tools.map((t) => t.name));
    for (const tool of tools) {
      const t = listed.find((l) => l.name === tool.name)!;
      expect(t.title, tool.name).toBe(tool.title);
      expect(t.title!.length, tool.name).toBeGreaterThan(5);
      expect(t.annotations, tool.name).toEqual({ title: tool.title, ...EXPECTED[tool.kind] });
      expect(t.inputSchema.additionalProperties, tool.name).toBe(false);
      expect(t.outputSchema, tool.name).toBeDefined();
      // Mutating tools take an idempotency_key; read-only ones do not.
      expect(Object.keys(t.inputSchema.properties ?? {}).includes("idempotency_key"), tool.name).toBe(
        isMutating(tool),
      );
    }
    expect(listed.find((t) => t.name === "preflight")!.annotations?.readOnlyHint).toBe(true);
    expect(listed.find((t) => t.name === "start_session")!.annotations?.readOnlyHint).toBe(false);
  });

  it("answers an unknown tool with UNKNOWN_TOOL naming the real ones", async () => {
    const error = await refused("start_night", {});
    expect(error.code).toBe("UNKNOWN_TOOL");
    expect(error.next_step).toContain("start_session");
  });
});

describe("start_session (User Handoff Protocol)", () => {
  it("reads GitHub issues into the confirmation and leaves the session awaiting approval", async () => {
    const r = await call("start_session", { tasks: ["GH-102", "gh-103", "GH-101"] });
    expect(r.isError).toBeFalsy();
    const c = r.structuredContent as unknown as Confirmation;
    expect(c.session_id).toBe("2025-12-30-session-01");
    expect(c.status).toBe("awaiting_approval");
    // Highest priority first, then by id.
    expect(c.tasks).toEqual([
      {
        task_id: "GH-101",
        title: untrustedInline("GH-101 title", "User Authentication"),
        priority: "high",
        effort: "m",
        depends_on: [],
        required_capabilities: ["auth"],
        source: "github",
      },
      {
        task_id: "GH-102",
        title: untrustedInline("GH-102 title", "Password Reset"),
        priority: "normal",
        effort: "m",
        depends_on: ["GH-101"],
        required_capabilities: [],
        source: "github",
      },
      {
        task_id: "GH-103",
        title: untrustedInline("GH-103 title", "Session Management"),
        priority: "normal",
        effort: "m",
        depends_on: ["GH-101"],
        required_capabilities: [],
        source: "github",
      },
    ]);
    expect(c.scope_estimate).toContain("3 task(s) in 2 dependency wave(s)");
    expect(c.available_agents).toEqual(["dev-agent-1", "dev-agent-2"]);
    // The stand-in night runs with no token and no board: the handoff says what that costs.
    expect(c.warnings).toEqual([
      expect.stringMatching(/^no GitHub token configured \(GITHUB_TOKEN\)/),
      expect.stringMatching(/^no Projects v2 board configured \(EOA_PROJECT\)/),
    ]);
    expect(c.directive).toBeNull();
    expect(c.escalation_policy.immediate).toEqual(["security", "data_corruption", "infrastructure"]);

    const text = r.content[0]!.text;
    expect(text).toMatch(/^Confirming autonomous tasks:\n/);
    // Inside one untrusted block: titles are issue text.
    expect(text).toContain("- GH-101: User Authentication (high priority)\n");
    expect(text).toContain("- GH-102: Password Reset (normal priority) after GH-101\n");
    expect(text).toContain("- GH-103: Session Management (normal priority) after GH-101\n");
    expect(text).toContain("Scope estimate: 3 task(s) in 2 dependency wave(s)");
    expect(text).toContain("Available agents: dev-agent-1, dev-agent-2");
    expect(text).toContain("Proceed with autonomous operation?");
    expect(text).toContain('session_id: "2025-12-30-session-01", approve: true');

    // The issue's checklist became the completion criteria; its Scope and Tests sections were read.
    const task = await json<Record<string, unknown>>("eoa://tasks/GH-101");
    expect(task).toMatchObject({
      task_id: "GH-101",
      issue_number: 101,
      status: "backlog",
      session_id: c.session_id,
      completion_criteria: ["Users can log in with email and password", "Passwords are hashed"].map((c) =>
        untrustedInline("GH-101 criterion", c),
      ),
      test_requirements: [untrustedInline("GH-101 test requirement", "unit tests for login")],
      files_in_scope: ["src/auth/**", "tests/**"].map((f) => untrustedInline("GH-101 file in scope", f)),
      completion: { percent: 0, done: false },
    });
    const session = await json<{ session: Record<string, unknown> }>("eoa://session");
    expect(session.session).toMatchObject({ status: "awaiting_approval", task_count: 3 });
    const page = await json<{ tasks: Array<{ task_id: string }> }>("eoa://tasks");
    expect(page.tasks.map((t) => t.task_id)).toEqual(["GH-102", "GH-103", "GH-101"]);
    // Nothing was sent to any agent yet.
    expect(night.env.aimaestro.sent).toEqual([]);
  });

  it("approve: true with the directive starts the session with that escalation policy", async () => {
    const prepared = await ok<Confirmation>("start_session", { tasks: SEED });
    const r = await call("start_session", {
      session_id: prepared.session_id,
      approve: true,
      directive: "Escalate only for security issues",
    });
    expect(r.isError).toBeFalsy();
    const c = r.structuredContent as unknown as Confirmation;
    expect(c.status).toBe("running");
    expect(c.directive).toBe("Escalate only for security issues");
    expect(c.escalation_policy).toEqual({
      immediate: ["security"],
      source: "directive: Escalate only for security issues",
    });
    expect(r.content[0]!.text).toContain(
      `Autonomous operation initiated: session ${c.session_id} is running.`,
    );
    expect(r.content[0]!.text).toContain("Immediate escalation for: security (");

    const view = await json<{
      session: { status: string; directive: string; escalation_policy: unknown; started_at: string };
      task_counts: Record<string, number>;
    }>("eoa://session");
    expect(view.session).toMatchObject({
      status: "running",
      directive: "Escalate only for security issues",
      escalation_policy: { immediate: ["security"] },
      started_at: "2025-12-30T22:00:00.000Z",
    });
    expect(view.task_counts).toEqual({ todo: 3 });
    const decisions = await json<{ decisions: Array<{ action: string; inputs: Record<string, unknown> }> }>(
      "eoa://decisions",
    );
    expect(decisions.decisions.at(-1)).toMatchObject({
      action: "start-session",
      inputs: { tasks: SEED, directive: "Escalate only for security issues" },
    });

    // Approving twice is refused: the session is already running.
    const again = await refused("start_session", { session_id: c.session_id, approve: true });
    expect(again.code).toBe("SESSION_NOT_AWAITING_APPROVAL");
    // And a new batch cannot start while it runs.
    expect((await refused("start_session", { tasks: ["GH-101"] })).code).toBe("SESSION_ALREADY_RUNNING");
  });

  it("keeps the directive given with the confirmation when approve brings none", async () => {
    const prepared = await ok<Confirmation>("start_session", {
      tasks: ["GH-101"],
      directive: "Escalate only for security issues",
    });
    expect(prepared.escalation_policy.immediate).toEqual(["security"]);
    const started = await ok<Confirmation>("start_session", {
      session_id: prepared.session_id,
      approve: true,
    });
    expect(started.directive).toBe("Escalate only for security issues");
    expect(started.escalation_policy.immediate).toEqual(["security"]);
  });

  it("accepts inline task specs without asking GitHub", async () => {
    const before = night.env.github.calls.length;
    const c = await ok<Confirmation>("start_session", {
      tasks: [
        {
          task_id: "DOCS-1",
          title: "Write the API guide",
          priority: "low",
          completion_criteria: ["Every endpoint documented"],
          required_capabilities: ["api"],
        },
        { task_id: "DOCS-2", title: "Publish the guide", depends_on: ["DOCS-1"], effort: "s" },
      ],
    });
    expect(night.env.github.calls.length).toBe(before);
    expect(c.tasks).toEqual([
      {
        task_id: "DOCS-2",
        title: untrustedInline("DOCS-2 title", "Publish the guide"),
        priority: "normal",
        effort: "s",
        depends_on: ["DOCS-1"],
        required_capabilities: [],
        source: "inline",
      },
      {
        task_id: "DOCS-1",
        title: untrustedInline("DOCS-1 title", "Write the API guide"),
        priority: "low",
        effort: null,
        depends_on: [],
        required_capabilities: ["api"],
        source: "inline",
      },
    ]);
    const task = await json<{ completion_criteria: string[]; issue_number?: number }>("eoa://tasks/DOCS-1");
    expect(task.completion_criteria).toEqual([
      untrustedInline("DOCS-1 criterion", "Every endpoint documented"),
    ]);
    expect(task.issue_number).toBeUndefined();
  });

  it("refuses a dependency cycle, naming it, and changes nothing", async () => {
    // A confirmation already waiting: the refused call must not replace it.
    await ok("start_session", { tasks: SEED });
    night.env.github.addIssue({ number: 201, title: "Cache layer", body: "Depends on #202" });
    night.env.github.addIssue({ number: 202, title: "Cache invalidation", body: "Blocked by #201" });
    const sessionBefore = await resource("eoa://session");
    const tasksBefore = await resource("eoa://tasks");
    const bytes = await stateBytes();

    const error = await refused("start_session", { tasks: ["GH-201", "GH-202"] });
    expect(error.code).toBe("DEPENDENCY_CYCLE");
    expect(error.message).toContain("GH-201 → GH-202 → GH-201");
    expect(error.details).toEqual({ cycle: ["GH-201", "GH-202", "GH-201"] });

    expect(await resource("eoa://session")).toBe(sessionBefore);
    expect(await resource("eoa://tasks")).toBe(tasksBefore);
    expect(await stateBytes()).toBe(bytes);
  });

  it("refuses a cycle among inline specs too", async () => {
    const error = await refused("start_session", {
      tasks: [
        { task_id: "A-1", title: "a", depends_on: ["A-3"] },
        { task_id: "A-2", title: "b", depends_on: ["A-1"] },
        { task_id: "A-3", title: "c", depends_on: ["A-2"] },
      ],
    });
    expect(error.code).toBe("DEPENDENCY_CYCLE");
    expect(error.message).toContain("A-1 → A-3 → A-2 → A-1");
    expect((await json<{ session: unknown }>("eoa://session")).session).toBeNull();
  });

  it("refuses an issue that does not exist with UNKNOWN_TASK and writes nothing", async () => {
    const bytes = await stateBytes();
    const error = await refused("start_session", { tasks: ["GH-101", "GH-999"] });
    expect(error.code).toBe("UNKNOWN_TASK");
    expect(error.message).toContain("GH-999");
    expect(error.message).toContain("acme/webapp");
    expect(await stateBytes()).toBe(bytes);
    expect((await json<{ session: unknown }>("eoa://session")).session).toBeNull();
  });

  it("refuses approve without a session_id with CONFIRMATION_REQUIRED", async () => {
    await ok("start_session", { tasks: SEED });
    const bytes = await stateBytes();
    const error = await refused("start_session", { approve: true, directive: "go" });
    expect(error.code).toBe("CONFIRMATION_REQUIRED");
    expect(error.next_step).toMatch(/confirmation/);
    expect(await stateBytes()).toBe(bytes);
  });

  it("refuses unknown argument keys and wrong types with INVALID_ARGUMENTS, changing nothing", async () => {
    await ok("start_session", { tasks: SEED });
    const bytes = await stateBytes();
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ["start_session", { tasks: ["GH-101"], priority: "high" }, "priority"],
      ["start_session", { tasks: "GH-101" }, "tasks"],
      ["start_session", { approve: "yes", session_id: "2025-12-30-session-01" }, "approve"],
      ["start_session", { tasks: [{ task_id: "X-1", title: "x", owner: "me" }] }, "tasks"],
      ["start_session", { tasks: ["GH-101"], idempotency_key: 7 }, "idempotency_key"],
      ["preflight", { verbose: true }, "verbose"],
    ];
    for (const [tool, args, key] of cases) {
      const error = await refused(tool, args);
      expect(error.code, JSON.stringify(args)).toBe("INVALID_ARGUMENTS");
      expect(error.message, JSON.stringify(args)).toContain(key);
      expect(error.next_step).toContain(`call ${tool} again`);
      expect(error.details?.problems).toBeInstanceOf(Array);
    }
    expect(await stateBytes()).toBe(bytes);
  });

  it("replays a call with the same idempotency_key: the first result, no second session", async () => {
    const args = { tasks: SEED, idempotency_key: "handoff-1" };
    const first = await call("start_session", args);
    const githubCalls = night.env.github.calls.length;
    night.env.clock.advance(30);
    const second = await call("start_session", args);
    expect(second).toEqual(first);
    // The replay read no issue and wrote no new confirmation.
    expect(night.env.github.calls.length).toBe(githubCalls);
    const state = await night.env.rt.store.read();
    expect(state.sessions).toHaveLength(1);
    expect(state.sessions[0]!.created_at).toBe("2025-12-30T22:00:00.000Z");

    // The key is bound to its arguments.
    const reused = await refused("start_session", { tasks: ["GH-101"], idempotency_key: "handoff-1" });
    expect(reused.code).toBe("IDEMPOTENCY_KEY_REUSED");

    // A replayed approval answers as the first did instead of "already running".
    const id = (first.structuredContent as unknown as Confirmation).session_id;
    const approve = { session_id: id, approve: true, idempotency_key: "approve-1" };
    const started = await call("start_session", approve);
    expect(started.isError).toBeFalsy();
    expect(await call("start_session", approve)).toEqual(started);
  });

  it("does not record a refused call under its idempotency_key, so it can be retried", async () => {
    const error = await refused("start_session", { tasks: ["GH-999"], idempotency_key: "retry-me" });
    expect(error.code).toBe("UNKNOWN_TASK");
    night.env.github.addIssue({ number: 999, title: "Late issue" });
    const c = await ok<Confirmation>("start_session", { tasks: ["GH-999"], idempotency_key: "retry-me" });
    expect(c.tasks.map((t) => t.task_id)).toEqual(["GH-999"]);
  });
});

describe("preflight", () => {
  interface Preflight {
    ready: boolean;
    summary: { pass: number; fail: number; unknown: number };
    items: Array<{ id: string; section: string; item: string; status: string; evidence: string }>;
  }
  const item = (p: Preflight, id: string) => p.items.find((i) => i.id === id)!;

  it("checks every item for real when everything is up", async () => {
    await ok("start_session", { tasks: SEED });
    const r = await call("preflight");
    expect(r.isError).toBeFalsy();
    const p = r.structuredContent as unknown as Preflight;
    const ids = p.items.map((i) => i.id);
    const checked = [
      "review_git",
      "aimaestro_running",
      "agents_online",
      "escalation_channels",
      "github_token",
      "branch_permissions",
      "project_board",
      "issues_exist",
      "dependencies_documented",
      "roster_up_to_date",
      "roster_names_exact",
      "capabilities_cover_tasks",
      "backups_identified",
      "ci_workflows",
      "test_suite_stable",
      "linting_configured",
    ];
    expect(ids).toEqual(expect.arrayContaining(checked));
    // The stand-in has no project board (unknown, checked below); the rest all pass.
    const passing = checked.filter((id) => id !== "project_board");
    for (const id of passing) expect(item(p, id).status, `${id}: ${item(p, id).evidence}`).toBe("pass");
    expect(item(p, "aimaestro_running").evidence).toContain("healthy");
    expect(item(p, "agents_online").evidence).toContain("dev-agent-1, dev-agent-2");
    expect(item(p, "ci_workflows").evidence).toMatch(/^latest run on main: CI success on [0-9a-f]{7}$/);
    expect(item(p, "test_suite_stable").evidence).toContain("no workflow result flipped on one commit");
    expect(item(p, "review_git").evidence).toMatch(/^git \d+\.\d+(\.\d+)?; PRs are fetched from \//);
    expect(item(p, "issues_exist").evidence).toContain("3 issue(s)");
    expect(item(p, "dependencies_documented").evidence).toContain("GH-102 after GH-101");
    expect(item(p, "project_board").status).toBe("unknown");
    for (const i of p.items) {
      expect(["pass", "fail", "unknown"]).toContain(i.status);
      expect(i.evidence.length, i.id).toBeGreaterThan(0);
    }
    expect(p.summary.pass + p.summary.fail + p.summary.unknown).toBe(p.items.length);
    expect(p.summary.pass).toBe(p.items.filter((i) => i.status === "pass").length);
    expect(r.content[0]!.text).toMatch(/^Prerequisites Checklist: \d+ pass, \d+ fail, \d+ unknown/);
  });

  it("fails the AI Maestro items with evidence naming the URL when the hub is down, and still answers", async () => {
    await night.env.aimaestro.setFault({ down: true });
    const r = await call("preflight");
    expect(r.isError).toBeFalsy();
    const p = r.structuredContent as unknown as Preflight;
    expect(p.ready).toBe(false);
    expect(item(p, "aimaestro_running").status).toBe("fail");
    expect(item(p, "aimaestro_running").evidence).toContain(night.env.aimaestro.url);
    expect(item(p, "agents_online").status).toBe("fail");
    // The GitHub side is checked regardless.
    expect(item(p, "ci_workflows").status).toBe("pass");
    expect(item(p, "github_token").status).toBe("pass");
    expect(r.content[0]!.text).toContain("Not ready");
  });

  it("fails the roster items when an agent is offline", async () => {
    night.env.aimaestro.setOnline("dev-agent-2", false);
    const p = await ok<Preflight>("preflight");
    expect(item(p, "agents_online")).toMatchObject({
      status: "fail",
      evidence: expect.stringContaining("dev-agent-2"),
    });
    expect(item(p, "issues_exist").status).toBe("unknown");
  });

  it("says how an agent shows online, and reports an unregistered agent once, as unregistered", async () => {
    await night.client.close();
    await night.env.close();
    Object.assign(
      night,
      await connectedNight({
        config: { roster: [...SEED_AGENTS, { id: "dev-agent-3", capabilities: ["api"] }] },
      }),
    );
    night.env.aimaestro.setOnline("dev-agent-2", false);
    const p = await ok<Preflight>("preflight");
    const online = item(p, "agents_online");
    expect(online.status).toBe("fail");
    expect(online.evidence).toMatch(
      /^offline in AI Maestro: dev-agent-2 \(.*POST \/api\/agents\/<name>\/heartbeat/,
    );
    expect(online.evidence).not.toMatch(/offline in AI Maestro: [^(]*dev-agent-3/);
    expect(item(p, "roster_up_to_date").evidence).toContain("not registered in AI Maestro: dev-agent-3");
    expect(item(p, "roster_up_to_date").evidence).toContain("POST /api/agents");
  });

  it("CI on the base branch: its latest run decides, and a result that flipped on one commit is flaky", async () => {
    const gh = night.env.github;
    const sha = await night.env.repo.commitToMain({ "src/new.txt": "x" });
    const test = (conclusion: "success" | "failure") => [
      { name: "test", workflow: "CI", status: "completed" as const, conclusion },
    ];
    gh.scriptChecks(sha, [test("failure"), test("success")]);
    let p = await ok<Preflight>("preflight");
    expect(item(p, "ci_workflows")).toMatchObject({
      status: "fail",
      evidence: expect.stringMatching(
        new RegExp(`^latest run on main: CI failure on ${sha.slice(0, 7)} \\(https://`),
      ),
    });
    expect(item(p, "test_suite_stable").status).toBe("pass");

    // Rerun, and it passes on the same commit: CI is green, and the suite is flaky.
    const [run] = await night.env.rt.github.listWorkflowRuns(sha);
    await night.env.rt.github.rerunFailedJobs(run!.id);
    p = await ok<Preflight>("preflight");
    expect(item(p, "ci_workflows").status).toBe("pass");
    expect(item(p, "test_suite_stable")).toEqual(
      expect.objectContaining({
        status: "fail",
        evidence: `passed and failed on the same commit (flaky): CI on ${sha.slice(0, 7)}`,
      }),
    );
  });

  it("the agents' GitHub access, from the logins on the roster", async () => {
    await night.client.close();
    await night.env.close();
    const logins = { "dev-agent-1": "alice", "dev-agent-2": "bob" } as Record<string, string>;
    Object.assign(
      night,
      await connectedNight({ config: { roster: SEED_AGENTS.map((a) => ({ ...a, github: logins[a.id] })) } }),
    );
    night.env.github.setCollaborator("alice", "maintain");
    night.env.github.setCollaborator("bob", "read");
    let p = await ok<Preflight>("preflight");
    expect(item(p, "agents_github_access")).toMatchObject({
      status: "fail",
      evidence:
        "cannot push to acme/webapp: dev-agent-2 (bob): read; can push: dev-agent-1 (alice): maintain",
    });
    night.env.github.setCollaborator("bob", "write");
    p = await ok<Preflight>("preflight");
    expect(item(p, "agents_github_access")).toMatchObject({ status: "pass" });
  });

  it("the agents' GitHub access is unknown while the roster names no login", async () => {
    const p = await ok<Preflight>("preflight");
    expect(item(p, "agents_github_access")).toMatchObject({
      status: "unknown",
      evidence: expect.stringContaining("a GitHub column in AGENT_ROSTER.md"),
    });
  });
});

describe("resources", () => {
  it("lists the resources and the task template", async () => {
    const listed = (await night.client.listResources()).resources.map((r) => r.uri);
    expect(listed).toEqual(expect.arrayContaining(FIXED_RESOURCES));
    const templates = (await night.client.listResourceTemplates()).resourceTemplates.map(
      (t) => t.uriTemplate,
    );
    expect(templates).toContain("eoa://tasks/{task_id}");
    // Tasks do not add to resources/list (issue 16): each is read through the template.
    await ok("start_session", { tasks: SEED });
    const after = (await night.client.listResources()).resources.map((r) => r.uri);
    expect(after).toEqual(listed);
    expect(await json("eoa://tasks/GH-102")).toMatchObject({ task_id: "GH-102" });
  });

  it("pages what grows with the night: eoa://tasks by cursor, eoa://decisions by the oldest shown; resources/list stays bounded (issue 16)", async () => {
    const ids = Array.from({ length: 200 }, (_, i) => `P-${i}`);
    const confirm = await ok("start_session", {
      tasks: ids.map((id) => ({ task_id: id, title: `Task ${id}` })),
    });
    await ok("start_session", { session_id: confirm.session_id, approve: true });
    type TasksPage = { total: number; from: number; tasks: Array<{ task_id: string }>; next: string | null };
    const seen: string[] = [];
    let uri: string | null = "eoa://tasks";
    let pages = 0;
    while (uri) {
      const text = await resource(uri);
      expect(text.length).toBeLessThan(256 * 1024);
      const p: TasksPage = JSON.parse(text);
      expect(p.total).toBe(200);
      expect(p.from).toBe(seen.length);
      seen.push(...p.tasks.map((t) => t.task_id));
      uri = p.next;
      pages++;
    }
    expect(seen).toEqual(ids);
    expect(pages).toBe(2);
    // The session names how many, not which: the ids are the pages' to list.
    const session = await json<{ session: Record<string, unknown> }>("eoa://session");
    expect(session.session.task_count).toBe(200);
    expect(session.session).not.toHaveProperty("task_ids");
    for (const bad of ["eoa://tasks/page/200", "eoa://tasks/page/-1", "eoa://tasks/page/x"])
      await expect(night.client.readResource({ uri: bad })).rejects.toThrow(/not found/);

    // Each assignment decides (dispatched, or queued once the agents are full).
    for (const id of ids.slice(0, 110)) await ok("assign_task", { task_id: id });
    type DecisionsPage = { total: number; decisions: Array<{ id: string }>; older: string | null };
    const all = (await night.env.rt.store.read()).decisions.map((d) => d.id);
    expect(all.length).toBeGreaterThan(100);
    const back: string[][] = [];
    uri = "eoa://decisions";
    while (uri) {
      const p: DecisionsPage = await json(uri);
      expect(p.total).toBe(all.length);
      back.unshift(p.decisions.map((d) => d.id));
      uri = p.older;
    }
    expect(back.flat()).toEqual(all);
    await expect(night.client.readResource({ uri: "eoa://decisions/before/dec-nope" })).rejects.toThrow(
      /not found/,
    );

    const listed = (await night.client.listResources()).resources.map((r) => r.uri);
    expect(listed.filter((u) => u.startsWith("eoa://tasks/"))).toEqual([]);
    expect(await json("eoa://tasks/P-199")).toMatchObject({ task_id: "P-199" });
  });

  it("pages eoa://escalations: open ones by urgency and resolved ones latest first, each by a cursor that outlives new escalations (issue 16)", async () => {
    type Esc = { id: string; category: string };
    type OpenPage = { open_total: number; open: Esc[]; more_open: string | null };
    type ResolvedPage = { resolved_total: number; resolved: Esc[]; older_resolved: string | null };
    const raise = async (i: number) =>
      (
        await ok<{ escalation: Esc }>("escalate", {
          category: "dependency",
          issue: `Which library for ${i}?`,
        })
      ).escalation.id;
    const raised: string[] = [];
    for (let i = 0; i < 120; i++) raised.push(await raise(i));
    const security = (
      await ok<{ escalation: Esc }>("escalate", { category: "security", issue: "A key in a log" })
    ).escalation.id;
    const answered = raised.filter((_, i) => i % 2 === 0);
    // Each answer a moment after the one before, as the user gives them.
    const answer = async (id: string) => {
      night.env.clock.advance(0.001);
      await ok("resolve_escalation", { escalation_id: id, decision: "the usual one" });
    };
    for (const id of answered) await answer(id);

    const first = await json<OpenPage & ResolvedPage>("eoa://escalations");
    expect(first).toMatchObject({ open_total: 61, resolved_total: 60 });
    expect(first.open).toHaveLength(50);
    expect(first.open[0]!.id).toBe(security);
    // Raised and answered while the first page is being read: the cursor still leads on from where it was.
    const late = await raise(999);
    await answer(raised[1]!);
    const open = first.open.map((e) => e.id);
    for (let uri = first.more_open; uri;) {
      const p = await json<OpenPage>(uri);
      open.push(...p.open.map((e) => e.id));
      uri = p.more_open;
    }
    const stillOpen = raised.filter((_, i) => i % 2 === 1 && i !== 1);
    expect(open).toEqual([security, raised[1], ...stillOpen, late]);

    const resolved = first.resolved.map((e) => e.id);
    for (let uri = first.older_resolved; uri;) {
      const text = await resource(uri);
      expect(text.length).toBeLessThan(256 * 1024);
      const p: ResolvedPage = JSON.parse(text);
      resolved.push(...p.resolved.map((e) => e.id));
      uri = p.older_resolved;
    }
    expect(resolved).toEqual([...answered].reverse());
    expect((await json<ResolvedPage>("eoa://escalations")).resolved[0]!.id).toBe(raised[1]);
    for (const bad of [
      "eoa://escalations/open/after/esc-999",
      `eoa://escalations/resolved/before/${security}`,
      "eoa://escalations/resolved/before/x",
    ])
      await expect(night.client.readResource({ uri: bad })).rejects.toThrow(/not found/);
  });

  it("names at most 20 of the tasks an agent holds on the roster, those it works on first, and how many it holds (issue 16)", async () => {
    const ids = Array.from({ length: 30 }, (_, i) => `R-${i}`);
    await ok("start_session", { tasks: ids.map((id) => ({ task_id: id, title: `Task ${id}` })) });
    // A night's blocked tasks keep their holder; the last two are the ones it works on.
    await night.env.rt.store.transact((d) => {
      for (const [i, id] of ids.entries())
        Object.assign(d.tasks[id]!, { assignee: "dev-agent-1", status: i < 28 ? "blocked" : "in-progress" });
    });
    const roster = await json<{
      agents: Array<{ id: string; load: number; tasks: string[]; tasks_held: number }>;
    }>("eoa://roster");
    const agent = roster.agents.find((a) => a.id === "dev-agent-1")!;
    expect(agent).toMatchObject({ load: 2, tasks_held: 30 });
    expect(agent.tasks).toHaveLength(20);
    expect(agent.tasks.slice(0, 3)).toEqual(["R-28 (in-progress)", "R-29 (in-progress)", "R-0 (blocked)"]);
  });

  it("caps a task's history in the state: older entries archived durably in pages, still reachable, nothing lost or doubled (issue 16)", async () => {
    await ok("start_session", { tasks: SEED });
    const { archiveHistories, wholeHistory } = await import("../src/engine/history.js");
    const rt = night.env.rt;
    // A chatty agent: 1,000 progress reports on GH-101, a review round every 100 of them.
    await rt.store.transact((d) => {
      const t = d.tasks["GH-101"]!;
      for (let i = 0; i < 1000; i++)
        t.history.push({
          at: new Date(Date.UTC(2026, 0, 1, 0, i)).toISOString(),
          event: i % 100 === 50 ? "review" : "progress",
          detail: `${i}%`,
        });
    });
    const before = (await rt.store.read()).tasks["GH-101"]!.history;
    // Before a poll cycle archives them, the resource shows what stays and counts the rest.
    const waiting = await json<{ history: unknown[]; history_archiving: number }>("eoa://tasks/GH-101");
    expect(waiting.history_archiving).toBe(700);
    expect(waiting.history.length + 700).toBe(before.length);
    expect(await archiveHistories(rt)).toBe(700);
    expect(await archiveHistories(rt)).toBe(0); // nothing left past the cap
    type Archive = { entries: number; pages: number; first: string; latest: string };
    const task = await json<{ history: unknown[]; history_archived: number; history_archive: Archive }>(
      "eoa://tasks/GH-101",
    );
    // At least the latest 200, fewer than a page more, and the first of each kind.
    expect(task.history.length).toBeGreaterThanOrEqual(200);
    expect(task.history.length).toBeLessThan(310);
    expect(task.history).toEqual(waiting.history);
    expect(task).toMatchObject({ history_archiving: 0 });
    expect(task.history_archive).toEqual({
      entries: 700,
      pages: 7,
      first: "eoa://tasks/GH-101/history/1",
      latest: "eoa://tasks/GH-101/history/7",
    });
    // The archive and the state together are the history as it was, each entry once.
    const archived: Array<{ at: string; event: string }> = [];
    for (let uri: string | null = task.history_archive.first; uri;) {
      const text = await resource(uri);
      expect(text.length).toBeLessThan(256 * 1024);
      const p: { page: number; pages: number; history: typeof archived; next: string | null } =
        JSON.parse(text);
      expect(p).toMatchObject({ page: archived.length / 100 + 1, pages: 7 });
      archived.push(...p.history);
      uri = p.next;
    }
    expect(archived).toHaveLength(task.history_archived);
    const key = (h: { at: string; event: string }) => `${h.at} ${h.event}`;
    const kept = (await rt.store.read()).tasks["GH-101"]!.history;
    expect([...archived, ...kept].map(key).sort()).toEqual(before.map(key).sort());
    // The first entry of each kind stays in the state: when the task was created is still known there.
    expect(kept[0]).toEqual(before[0]);
    // Whoever needs all of it (the report) reads it whole, in order.
    expect(await wholeHistory(rt, (await rt.store.read()).tasks["GH-101"]!)).toEqual(before);
    for (const bad of ["0", "8", "x"])
      await expect(night.client.readResource({ uri: `eoa://tasks/GH-101/history/${bad}` })).rejects.toThrow(
        /not found/,
      );
    expect((await json<{ history_archive: null }>("eoa://tasks/GH-102")).history_archive).toBeNull();
  });

  it("the report's timeline shows every review round of a task whose history was archived (issue 16)", async () => {
    const { archiveHistories } = await import("../src/engine/history.js");
    const c = await ok<Confirmation>("start_session", { tasks: ["GH-101"] });
    await ok("start_session", { session_id: c.session_id, approve: true });
    await ok("assign_task", { task_id: "GH-101", agent: "dev-agent-1" });
    const rt = night.env.rt;
    await rt.store.transact((d) => {
      const t = d.tasks["GH-101"]!;
      for (let i = 0; i < 1000; i++)
        t.history.push({
          at: new Date(Date.UTC(2025, 11, 30, 23, 0, i)).toISOString(),
          event: i % 100 === 50 ? "review" : "progress",
        });
    });
    expect(await archiveHistories(rt)).toBeGreaterThan(0);
    const { markdown } = await ok<{ markdown: string }>("write_report");
    const rounds = markdown.match(/^ {2}review \d+ :milestone/gm) ?? [];
    expect(rounds).toHaveLength(10);
  });

  it("a long report comes in pages: write_report answers the first, eoa://reports/latest and each page name the next (issue 16)", async () => {
    const ids = Array.from({ length: 200 }, (_, i) => `L-${i}`);
    const c = await ok<Confirmation>("start_session", {
      tasks: ids.map((id) => ({
        task_id: id,
        title: `Task ${id}: ${"a title as long as some issues have, ".repeat(4)}`,
      })),
    });
    await ok("start_session", { session_id: c.session_id, approve: true });
    const r = await call("write_report");
    expect(JSON.stringify(r).length).toBeLessThan(256 * 1024);
    const out = r.structuredContent as { path: string; markdown: string; pages: number; next: string };
    const whole = await readFile(out.path, "utf8");
    expect(whole.length).toBeGreaterThan(64 * 1024);
    expect(out.pages).toBeGreaterThan(1);
    expect(out.next).toBe(`eoa://reports/${c.session_id}/page/2`);
    expect(r.content[0]!.text).toContain(`Page 1 of ${out.pages}: read ${out.next} for the next.`);
    // Read page by page, the report is the file, in order.
    const footer =
      /\n\n---\n\(Page (\d+) of (\d+) of the report of [^;]+; (?:next: (\S+)|the last page)\.\)\n$/;
    const read: string[] = [];
    for (let uri: string | undefined = "eoa://reports/latest"; uri;) {
      const text = await resource(uri);
      expect(text.length).toBeLessThan(256 * 1024);
      const m = footer.exec(text)!;
      expect(Number(m[1])).toBe(read.length + 1);
      read.push(text.slice(0, m.index));
      uri = m[3];
    }
    expect(read).toHaveLength(out.pages);
    expect(read[0]).toBe(out.markdown);
    expect(read.join("")).toBe(whole);
    for (const bad of [0, out.pages + 1])
      await expect(
        night.client.readResource({ uri: `eoa://reports/${c.session_id}/page/${bad}` }),
      ).rejects.toThrow(/not found/);
  });

  it("cuts a record too large for one reply rather than sending it whole: a task with the largest spec the tools accept", async () => {
    const long = (n: number, c: string) => Array.from({ length: n }, (_, i) => `${i} ${c.repeat(990)}`);
    await ok("start_session", {
      tasks: [
        {
          task_id: "BIG-1",
          title: "Everything at once",
          instructions: "i".repeat(20_000),
          completion_criteria: long(100, "c"),
          test_requirements: long(100, "t"),
          files_in_scope: Array.from({ length: 200 }, (_, i) => `src/${i}/${"f".repeat(290)}`),
        },
      ],
    });
    const text = await resource("eoa://tasks/BIG-1");
    expect(text.length).toBeLessThan(256 * 1024 + 100);
    expect(text).toMatch(/\n… \(\d+ more characters cut: a reply holds no more\)$/);
  });

  it("reads every resource", async () => {
    await ok("start_session", { tasks: SEED });

    const roster = await json<{ agents: Array<Record<string, unknown>> }>("eoa://roster");
    expect(roster.agents).toEqual([
      expect.objectContaining({
        id: "dev-agent-1",
        capabilities: ["python", "auth", "api"],
        backup: ["dev-agent-2"],
        availability: "active",
        load: 0,
        max_concurrent_tasks: 3,
      }),
      expect.objectContaining({ id: "dev-agent-2", backup: ["dev-agent-1"] }),
    ]);

    const md = await night.client.readResource({ uri: "eoa://roster.md" });
    expect(md.contents[0]!.mimeType).toBe("text/markdown");
    expect((md.contents[0] as { text: string }).text).toContain(
      "| dev-agent-1 | dev-agent-1 | python, auth, api | 3 |",
    );

    const session = await json<{ session: { id: string }; task_counts: Record<string, number> }>(
      "eoa://session",
    );
    expect(session.session.id).toBe("2025-12-30-session-01");
    expect(session.task_counts).toEqual({ backlog: 3 });

    const tasks = await json<{ session_id: string; tasks: Array<{ task_id: string; status: string }> }>(
      "eoa://tasks",
    );
    expect(tasks.tasks.map((t) => [t.task_id, t.status])).toEqual([
      ["GH-101", "backlog"],
      ["GH-102", "backlog"],
      ["GH-103", "backlog"],
    ]);

    const task = await json<{ completion: { criteria: Array<{ criterion: string; verified: boolean }> } }>(
      "eoa://tasks/GH-102",
    );
    expect(task.completion.criteria).toEqual([
      {
        criterion: untrustedInline("GH-102 criterion", "Reset link expires after one hour"),
        verified: false,
      },
    ]);
    await expect(night.client.readResource({ uri: "eoa://tasks/GH-404" })).rejects.toThrow(
      /resource not found/,
    );

    expect(await json("eoa://escalations")).toEqual({
      open_total: 0,
      open: [],
      more_open: null,
      resolved_total: 0,
      resolved: [],
      older_resolved: null,
    });
    expect(await json("eoa://decisions")).toMatchObject({
      total: expect.any(Number),
      decisions: expect.any(Array),
    });
    expect(await json("eoa://config")).toMatchObject({ github: { repo: "acme/webapp" } });
  });

  it("sends notifications/resources/updated for subscribed URIs after a change, and only for them", async () => {
    const updated: string[] = [];
    night.client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
      updated.push(n.params.uri);
    });
    for (const uri of [
      "eoa://session",
      "eoa://tasks",
      "eoa://tasks/GH-101",
      "eoa://escalations",
      // A further page changes with its listing.
      "eoa://escalations/open/after/esc-001",
      "eoa://decisions",
    ])
      await night.client.subscribeResource({ uri });

    const c = await ok<Confirmation>("start_session", { tasks: SEED });
    await until(() => updated.includes("eoa://session") && updated.includes("eoa://tasks/GH-101"));
    expect(updated).toContain("eoa://tasks");

    await ok("start_session", { session_id: c.session_id, approve: true });
    await until(() => updated.includes("eoa://decisions"));
    // Nothing touched the escalations, and nothing unsubscribed was announced.
    expect(updated.filter((u) => u.startsWith("eoa://escalations"))).toEqual([]);
    expect(updated.every((u) => u !== "eoa://roster" && u !== "eoa://config")).toBe(true);

    // After unsubscribing, no more updates for that URI.
    await night.client.unsubscribeResource({ uri: "eoa://session" });
    updated.length = 0;
    await ok("escalate", {
      category: "architecture",
      issue: "Which session store to use?",
      task_id: "GH-103",
    });
    await until(
      () => updated.includes("eoa://escalations") && updated.includes("eoa://escalations/open/after/esc-001"),
    );
    expect(updated).not.toContain("eoa://session");
  });

  it("announces a change written by another process sharing the state directory", async () => {
    const updated: string[] = [];
    night.client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
      updated.push(n.params.uri);
    });
    await night.client.subscribeResource({ uri: "eoa://session" });
    const other = await StateStore.open(night.env.stateDir);
    await other.transact((draft) => {
      draft.cycle.count += 1;
    });
    await until(() => updated.includes("eoa://session"));
    expect((await night.env.rt.store.read()).cycle.count).toBe(1);
  });
});

/** Waits for a condition the server brings about asynchronously; fails after a generous bound. */
async function until(cond: () => boolean, what = "condition"): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (cond()) return;
    await sleep(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}
