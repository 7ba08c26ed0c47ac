import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { afterEach, describe, expect, it } from "vitest";
import { createEnvironment, SEED_ISSUES, type NightEnvironment } from "../src/sim/environment.js";
import { walk } from "./fixtures/file-tree.js";
import { ASSESS_OK, GREEN, LOGIN, pullFiles } from "./fixtures/pull-requests.js";
import { callTool, type ToolResult } from "./fixtures/tool-calls.js";

/**
 * Issue 14, item 3: configured tokens planted in what comes in (an issue's title and body, a PR's
 * title and body, an agent's message) are redacted where the text enters, so they reach no
 * message sent through AI Maestro, no request to GitHub, no file in the state directory and no
 * tool answer. The tokens have no recognisable format: only knowing them can redact them.
 */

const tail = () => randomBytes(18).toString("hex");
const TOKENS = { github: `plainGH${tail()}`, aimaestro: `plainAIM${tail()}`, http: `plainHTTP${tail()}` };
const PLANTED = `creds ${TOKENS.github} / ${TOKENS.aimaestro} / ${TOKENS.http} end`;

const envs: NightEnvironment[] = [];
afterEach(async () => {
  for (const e of envs.splice(0)) await e.close();
});

/** Where each token shows up in `sinks` (sink name → texts). */
function leaks(sinks: Record<string, string[]>): string[] {
  const out: string[] = [];
  for (const [sink, texts] of Object.entries(sinks))
    for (const [name, token] of Object.entries(TOKENS))
      if (texts.some((t) => t.includes(token))) out.push(`${name} token in ${sink}`);
  return out;
}

describe("configured tokens planted in issues, PRs and agents' messages", () => {
  it("reach no message, no GitHub request, no state file and no tool answer", async () => {
    const issues = SEED_ISSUES.map((i) =>
      i.number === 101 ? { ...i, title: `${i.title} ${TOKENS.http}`, body: `${i.body}\n\n${PLANTED}` } : i,
    );
    const env = await createEnvironment({
      issues,
      tokens: { github: TOKENS.github, aimaestro: TOKENS.aimaestro },
      config: { http: { token: TOKENS.http } },
    });
    envs.push(env);
    const { client } = await env.connect();
    const answers: ToolResult[] = [];
    const call = async (name: string, args: Record<string, unknown>) => {
      const r = await callTool(client, name, args);
      answers.push(r);
      expect(r.isError, r.content[0]?.text).toBeFalsy();
      return r;
    };

    const first = await call("start_session", { tasks: ["GH-101"] });
    await call("start_session", { session_id: first.structuredContent?.session_id, approve: true });
    await call("assign_task", { task_id: "GH-101", agent: "dev-agent-1" });
    env.aimaestro.inject({
      from: "dev-agent-1",
      to: "eoa-orchestrator",
      subject: `[PROGRESS] GH-101 50% ${TOKENS.github}`,
      content: { type: "notification", message: `[PROGRESS] GH-101 50% ${PLANTED}` },
    });
    await call("check_messages", {});

    const sha = await env.repo.pushPullRequest(147, "feature/auth", LOGIN);
    env.github.addPull({
      number: 147,
      title: `GH-101: User Authentication ${TOKENS.aimaestro}`,
      body: `Implements GH-101. ${PLANTED}`,
      headSha: sha,
      headRef: "feature/auth",
      files: pullFiles(LOGIN),
    });
    env.github.setCheckRuns(sha, GREEN);
    env.aimaestro.inject({
      from: "dev-agent-1",
      to: "eoa-orchestrator",
      subject: "[DONE] GH-101 PR #147",
      content: { type: "notification", message: `[DONE] GH-101 PR #147 ${PLANTED}` },
    });
    await call("check_messages", {});
    await call("review_pr", { pr_number: 147 });
    const merged = await call("review_pr", { pr_number: 147, spec_assessment: ASSESS_OK });
    expect(merged.structuredContent?.decision).toBe("merge");
    await call("write_report", {});

    const files = await walk(env.config.stateDir, (e) => e.isFile() && !e.parentPath.includes("worktrees"));
    expect(files.some((f) => f.endsWith("state.journal") || f.endsWith("state.json"))).toBe(true);
    expect(files.some((f) => f.includes("reports"))).toBe(true);
    const sinks: Record<string, string[]> = {
      "AI Maestro sends": env.aimaestro.sent.map((m) => JSON.stringify(m)),
      "AI Maestro inboxes": ["dev-agent-1", "user-notification-channel", "orchestrator-queue"].flatMap((a) =>
        env.aimaestro.messagesFor(a).map((m) => JSON.stringify(m)),
      ),
      "GitHub requests": env.github.calls.map((c) => JSON.stringify(c.body ?? null)),
      "state directory": await Promise.all(files.map((f) => readFile(f, "utf8"))),
      "tool answers": answers.map((r) => JSON.stringify([r.content, r.structuredContent])),
    };
    // The scan can fail: the planted text itself is visible to it.
    expect(leaks({ planted: [PLANTED] })).toHaveLength(3);
    expect(leaks(sinks)).toEqual([]);
  });
});
