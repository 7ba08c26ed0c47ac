import { afterEach, describe, expect, it } from "vitest";
import { ConfigSchema } from "../src/config.js";
import { handoffWarnings } from "../src/protocol/handoff.js";
import { callTool, connectedNight, okResult } from "./fixtures/tool-calls.js";

/**
 * Issue 17, items 3 and 7: the handoff names every capability the night will lack, and inline
 * tasks are labelled and sent as what they are.
 */

type Night = Awaited<ReturnType<typeof connectedNight>>;
let night: Night | undefined;
afterEach(async () => {
  await night?.client.close();
  await night?.env.close();
  night = undefined;
});

const config = (c: unknown) => ConfigSchema.parse(c);

describe("handoffWarnings", () => {
  it("names each missing capability: GitHub, git remote, review commands, project board", () => {
    const warnings = handoffWarnings(config({}));
    expect(warnings).toEqual([
      expect.stringMatching(
        /^no GitHub repository configured \(EOA_REPO, GITHUB_TOKEN\): no PR can be reviewed or merged/,
      ),
      expect.stringMatching(/^no git remote to fetch PRs from/),
      expect.stringMatching(/^no review\.commands\.test or lint configured/),
      expect.stringMatching(/^no Projects v2 board configured \(EOA_PROJECT\)/),
    ]);
  });

  it("a repository without a token, and one review command missing", () => {
    const warnings = handoffWarnings(
      config({ github: { repo: "acme/webapp", project: 3 }, review: { commands: { test: "npm test" } } }),
    );
    expect(warnings).toEqual([
      expect.stringMatching(/^no GitHub token configured \(GITHUB_TOKEN\)/),
      expect.stringMatching(/^no review\.commands\.lint configured/),
    ]);
  });

  it("nothing when the night has everything", () => {
    expect(
      handoffWarnings(
        config({
          github: { repo: "acme/webapp", token: "ghp_x", project: 3 },
          review: { commands: { test: "npm test", lint: "npm run lint" } },
        }),
      ),
    ).toEqual([]);
  });
});

describe("start_session without GitHub, with inline tasks", () => {
  it("warns at handoff, labels the tasks inline and sends no reference to an issue that does not exist", async () => {
    night = await connectedNight({
      config: { github: { repo: undefined }, review: { commands: undefined } },
    });
    const { client, env } = night;
    const c = await okResult<{ session_id: string; warnings: string[]; tasks: Array<{ source: string }> }>(
      client,
      "start_session",
      { tasks: [{ task_id: "GH-1", title: "Add a health endpoint", required_capabilities: ["api"] }] },
    );
    expect(c.tasks).toEqual([expect.objectContaining({ task_id: "GH-1", source: "inline" })]);
    expect(c.warnings).toEqual(
      expect.arrayContaining([
        expect.stringContaining("no GitHub repository configured"),
        expect.stringContaining("no review.commands.test or lint configured"),
        expect.stringContaining("no Projects v2 board configured"),
      ]),
    );
    const approved = await okResult<{ warnings: string[] }>(client, "start_session", {
      session_id: c.session_id,
      approve: true,
    });
    expect(approved.warnings).toEqual(
      expect.arrayContaining([expect.stringContaining("no GitHub repository")]),
    );

    const assigned = await callTool(client, "assign_task", { task_id: "GH-1" });
    expect(assigned.isError, assigned.content[0]?.text).toBeFalsy();
    const sent = env.aimaestro.messagesFor("dev-agent-1").find((m) => m.content.type === "task")!;
    expect(sent.content.message).not.toContain("see the issue");
    expect(sent.content.message).toContain("Instructions:\n(none beyond the title above)");
    expect(sent.content.context).not.toHaveProperty("issue_number");
  });
});
