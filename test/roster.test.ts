import { describe, expect, it } from "vitest";
import { parseRosterMarkdown, renderRosterMarkdown } from "../src/roster.js";

/** An AGENT_ROSTER.md as a person writes it: prose around the table, loose headers, backticks, bold. */
const REALISTIC = `# AGENT_ROSTER

Remote developer agents available for autonomous operation. Updated 2025-12-30.

| **Agent ID** | AI Maestro | Skills | Max_Concurrent_Tasks | Backup Agents | Status |
|:-------------|------------|--------|:--------------------:|---------------|--------|
| \`dev-agent-1\` | \`dev-agent-1\` | python, auth, api | 2 | dev-agent-2, dev-agent-3 | active |
| dev-agent-2 | dev2-tmux | python; api | - | dev-agent-1 | Active |
| dev-agent-3 | - | frontend , react ,  css | 1 | none | Onboarding (starts Jan 2) |

Notes: dev-agent-3 is still onboarding and gets no task yet.
`;

describe("parseRosterMarkdown", () => {
  it("reads a realistic AGENT_ROSTER.md", () => {
    expect(parseRosterMarkdown(REALISTIC)).toEqual([
      {
        id: "dev-agent-1",
        session: "dev-agent-1",
        capabilities: ["python", "auth", "api"],
        max_concurrent_tasks: 2,
        backup: ["dev-agent-2", "dev-agent-3"],
      },
      { id: "dev-agent-2", session: "dev2-tmux", capabilities: ["python", "api"], backup: ["dev-agent-1"] },
      {
        id: "dev-agent-3",
        capabilities: ["frontend", "react", "css"],
        max_concurrent_tasks: 1,
        onboarding: true,
      },
    ]);
  });

  it("reads an optional GitHub column (the agent's login, an @ allowed), and refuses a login GitHub could not have", () => {
    const md = (login: string) =>
      `| Agent | Capabilities | GitHub Login |\n|---|---|---|\n| dev-agent-1 | api | ${login} |\n| dev-agent-2 | api | - |\n`;
    expect(parseRosterMarkdown(md("@alice-dev"))).toEqual([
      { id: "dev-agent-1", capabilities: ["api"], github: "alice-dev" },
      { id: "dev-agent-2", capabilities: ["api"] },
    ]);
    expect(() => parseRosterMarkdown(md("alice_dev"))).toThrow(/github: a GitHub login/);
  });

  it("finds the agent table among other tables in the file", () => {
    const md = [
      "## Capabilities",
      "| Capability | Meaning |",
      "|---|---|",
      "| auth | login, sessions, tokens |",
      "",
      "## Agents",
      "| Agent | Capabilities |",
      "|---|---|",
      "| dev-agent-1 | auth |",
      "",
      "## Changes",
      "| Date | Change |",
      "|---|---|",
      "| 2025-12-30 | added dev-agent-1 |",
    ].join("\n");
    expect(parseRosterMarkdown(md)).toEqual([{ id: "dev-agent-1", capabilities: ["auth"] }]);
  });

  it("needs only the Agent and Capabilities columns, in any order, with CRLF line ends", () => {
    const md = "| Capabilities | Name |\r\n| --- | --- |\r\n| go, grpc | backend-1 |\r\n";
    expect(parseRosterMarkdown(md)).toEqual([{ id: "backend-1", capabilities: ["go", "grpc"] }]);
  });

  it("refuses text without a table", () => {
    expect(() => parseRosterMarkdown("# Agents\n\ndev-agent-1: python\n")).toThrow(/no agent table found/);
    expect(() => parseRosterMarkdown("| Agent | Capabilities |\n")).toThrow(/no agent table found/);
  });

  it("refuses a table without an Agent or a Capabilities column, quoting the header", () => {
    expect(() => parseRosterMarkdown("| Who | Capabilities |\n|---|---|\n| a | b |\n")).toThrow(
      /no Agent column \(header: \| Who \| Capabilities \|\)/,
    );
    expect(() => parseRosterMarkdown("| Agent | Languages |\n|---|---|\n| a | b |\n")).toThrow(
      /no Capabilities column/,
    );
  });

  it("refuses a header without a separator row, and a table without rows", () => {
    expect(() => parseRosterMarkdown("| Agent | Capabilities |\n| a | python |\n")).toThrow(/separator row/);
    expect(() => parseRosterMarkdown("| Agent | Capabilities |\n|---|---|\n")).toThrow(/no rows/);
  });

  it("refuses a bad row, naming the row and the field", () => {
    const header = "| Agent | Capabilities | Max Tasks |\n|---|---|---|\n| ok-agent | python | 2 |\n";
    expect(() => parseRosterMarkdown(`${header}| bad agent! | python | 2 |\n`)).toThrow(
      /row 2 \(.*bad agent!.*\): id:/,
    );
    expect(() => parseRosterMarkdown(`${header}| no-skills | - | 2 |\n`)).toThrow(
      /row 2 .*capabilities: an agent needs at least one capability/,
    );
    expect(() => parseRosterMarkdown(`${header}| greedy | python | three |\n`)).toThrow(
      /row 2 .*max_concurrent_tasks/,
    );
    expect(() => parseRosterMarkdown(`${header}| greedy | python | 0 |\n`)).toThrow(
      /row 2 .*max_concurrent_tasks/,
    );
  });
});

describe("renderRosterMarkdown", () => {
  const agents = [
    {
      id: "dev-agent-1",
      session: "dev-agent-1",
      capabilities: ["python", "auth", "api"],
      max_concurrent_tasks: 3,
      backup: ["dev-agent-2"],
      availability: "busy",
      load: 3,
      missed_heartbeats: 0,
      last_seen: "2025-12-30T22:10:00.000Z",
    },
    {
      id: "dev-agent-2",
      session: "dev2-tmux",
      capabilities: ["python"],
      max_concurrent_tasks: 1,
      backup: [],
      availability: "onboarding",
      load: 0,
      missed_heartbeats: 2,
    },
  ];

  it("renders one row per agent with load and heartbeat columns", () => {
    const md = renderRosterMarkdown(agents);
    expect(md).toContain(
      "| dev-agent-1 | dev-agent-1 | python, auth, api | 3 | dev-agent-2 | busy | 3/3 | 0 |",
    );
    expect(md).toContain("| dev-agent-2 | dev2-tmux | python | 1 | - | onboarding | 0/1 | 2 | - |");
  });

  it("round-trips through the parser", () => {
    expect(parseRosterMarkdown(renderRosterMarkdown(agents))).toEqual([
      {
        id: "dev-agent-1",
        session: "dev-agent-1",
        capabilities: ["python", "auth", "api"],
        max_concurrent_tasks: 3,
        backup: ["dev-agent-2"],
      },
      {
        id: "dev-agent-2",
        session: "dev2-tmux",
        capabilities: ["python"],
        max_concurrent_tasks: 1,
        onboarding: true,
      },
    ]);
  });
});
