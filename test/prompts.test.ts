import { describe, expect, it } from "vitest";
import { tools } from "../src/tools/index.js";
import { useNight } from "./fixtures/tool-calls.js";

/** Issue 5, part 2: the prompts and the server instructions an orchestrator agent learns the loop from. */

const night = useNight("all");

function textOf(r: { messages: Array<{ role: string; content: { type: string } }> }): string {
  expect(r.messages.length).toBeGreaterThan(0);
  return r.messages
    .map((m) => {
      expect(m.content.type).toBe("text");
      return (m.content as unknown as { text: string }).text;
    })
    .join("\n");
}

describe("prompts", () => {
  it("lists autonomous-operation and handoff with titles, descriptions and arguments", async () => {
    const { prompts } = await night.client.listPrompts();
    expect(prompts.map((p) => p.name).sort()).toEqual(["autonomous-operation", "handoff"]);
    for (const p of prompts) {
      expect(p.title, p.name).toBeTruthy();
      expect(p.description, p.name).toBeTruthy();
    }
    const handoff = prompts.find((p) => p.name === "handoff")!;
    expect(handoff.arguments).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: "tasks", required: true }),
        expect.objectContaining({ name: "directive", required: false }),
      ]),
    );
    const loop = prompts.find((p) => p.name === "autonomous-operation")!;
    expect(loop.arguments?.every((a) => !a.required)).toBe(true);
  });

  it("renders the monitoring loop in terms of the server's own tools", async () => {
    const text = textOf(await night.client.getPrompt({ name: "autonomous-operation", arguments: {} }));
    for (const tool of [
      "check_messages",
      "review_pr",
      "assign_task",
      "escalate",
      "mark_agent_offline",
      "write_report",
    ])
      expect(text, tool).toContain(tool);
    expect(text).toContain("spec_assessment");
    expect(text).toMatch(/untrusted/i);
    // Every tool name the prompt mentions exists.
    const known = new Set(tools.map((t) => t.name));
    const mentioned = text.match(/\b[a-z]+(?:_[a-z]+)+\b/g) ?? [];
    const toolLike = mentioned.filter((w) =>
      /^(check|review|assign|escalate|mark|write|start|resolve)_/.test(w),
    );
    for (const w of toolLike) expect(known.has(w), w).toBe(true);

    const withSession = textOf(
      await night.client.getPrompt({
        name: "autonomous-operation",
        arguments: { session_id: "2025-12-30-session-01" },
      }),
    );
    expect(withSession).toContain("2025-12-30-session-01");
  });

  it("renders the handoff for the user's tasks: preflight, start_session, approve", async () => {
    const text = textOf(
      await night.client.getPrompt({
        name: "handoff",
        arguments: { tasks: "GH-101, GH-102", directive: "Escalate only for security issues" },
      }),
    );
    expect(text).toContain("GH-101, GH-102");
    expect(text).toContain('tasks: ["GH-101", "GH-102"]');
    expect(text).toContain("preflight");
    expect(text).toContain("start_session");
    expect(text).toContain("approve");
    expect(text).toContain("Escalate only for security issues");
    expect(text.indexOf("preflight")).toBeLessThan(text.indexOf("start_session"));
    expect(text.indexOf("start_session")).toBeLessThan(text.lastIndexOf("approve"));
  });

  it("refuses a handoff without tasks", async () => {
    await expect(night.client.getPrompt({ name: "handoff", arguments: {} })).rejects.toThrow(/tasks/);
  });
});

describe("server instructions", () => {
  it("tell the client the loop in brief", () => {
    const instructions = night.client.getInstructions();
    expect(instructions).toBeTruthy();
    for (const word of ["check_messages", "start_session", "review_pr", "write_report", "preflight"])
      expect(instructions, word).toContain(word);
  });
});
