import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { afterEach, describe, expect, it } from "vitest";
import { Night, waitingForCi } from "../src/engine/night.js";
import type { EnvironmentOptions, NightEnvironment } from "../src/sim/environment.js";
import type { State } from "../src/state/schema.js";
import { ASSESS_OK, GREEN, LOGIN, pullFiles } from "./fixtures/pull-requests.js";
import { connectedNight, okResult, POLL_SECONDS } from "./fixtures/tool-calls.js";

/**
 * Issue 11: the night moves on the server's own clock. After the hand-over no tool is called, and
 * the server's cycles still read and apply the agents' messages, page the user, poll CI, see a
 * person's merge and dispatch what depended on it, and take a silent agent's work to its backup.
 */

const ORCH = "eoa-orchestrator";
let env: NightEnvironment | undefined;
let client: Client;
const nights: Night[] = [];

afterEach(async () => {
  for (const n of nights.splice(0)) await n.stop();
  await env?.close();
  env = undefined;
});

function e(): NightEnvironment {
  if (!env) throw new Error("no environment");
  return env;
}
const ok = <T>(name: string, args: Record<string, unknown> = {}) => okResult<T>(client, name, args);
const state = (): Promise<Readonly<State>> => e().rt.store.read();
const say = (from: string, subject: string) =>
  e().aimaestro.inject({ from, to: ORCH, subject, content: { type: "message", message: subject } });

/** One poll interval passes on the night's clock, and the server looks (no tool is called). */
async function interval(night: Night) {
  e().clock.advance(POLL_SECONDS / 60);
  return night.tick();
}

async function handedOver(opts: EnvironmentOptions = {}): Promise<Night> {
  ({ env, client } = await connectedNight(opts));
  const confirm = await ok<{ session_id: string }>("start_session", { tasks: ["GH-101", "GH-103"] });
  await ok("start_session", { session_id: confirm.session_id, approve: true });
  await ok("assign_task", { task_id: "GH-101", agent: "dev-agent-1" });
  await ok("assign_task", { task_id: "GH-103" }); // waits for GH-101 (blocked by #101)
  const night = new Night(e().rt);
  nights.push(night);
  return night;
}

describe("a night on the server's own clock", () => {
  it("with no tool called: messages applied and marked read in AI Maestro, the user paged, CI polled", async () => {
    const night = await handedOver();
    const ack = say("dev-agent-1", "[ACK] GH-101 - RECEIVED");
    const sec = say("dev-agent-2", "[SECURITY] SQL injection in the legacy admin query");
    const c1 = await interval(night);
    expect(c1?.cycle.read.map((m) => m.kind)).toEqual(["ack", "escalation"]);
    const inbox = e().aimaestro.messagesFor(ORCH);
    expect(inbox.find((m) => m.id === ack.id)?.status).toBe("read");
    expect(inbox.find((m) => m.id === sec.id)?.status).toBe("read");
    expect((await state()).tasks["GH-101"]!.acked_at).toBeDefined();
    const paged = e().aimaestro.messagesFor("user-notification-channel");
    expect(paged.map((m) => `${m.subject}\n${m.content.message}`).join("\n")).toMatch(/SQL injection/);

    // The PR arrives with CI still running; the model judges it once (Gate 1 is its call).
    const sha = await e().repo.pushPullRequest(147, "feature/auth", LOGIN);
    e().github.addPull({
      number: 147,
      title: "GH-101: User Authentication",
      body: "Implements GH-101.",
      headSha: sha,
      headRef: "feature/auth",
      files: pullFiles(LOGIN),
    });
    e().github.setCheckRuns(sha, [{ name: "build", status: "in_progress" }]);
    say("dev-agent-1", "[DONE] GH-101 PR #147");
    await interval(night);
    const first = await ok<{ decision: string }>("review_pr", {
      pr_number: 147,
      spec_assessment: ASSESS_OK,
      merge: false,
    });
    expect(first.decision).toBe("ci_pending");
    expect(waitingForCi(await state())).toEqual([{ task_id: "GH-101", pr_number: 147 }]);

    // CI finishes; the server's next cycle polls it and approves (merge left to a person).
    e().github.setCheckRuns(sha, GREEN);
    const c3 = await interval(night);
    expect(c3?.ci).toEqual([{ pr_number: 147, task_id: "GH-101", decision: "awaiting_assessment" }]);
  });

  it("an approved PR a person merges on GitHub is seen by the next cycle: done, and the dependent dispatched", async () => {
    const night = await handedOver();
    say("dev-agent-1", "[ACK] GH-101 - RECEIVED");
    const sha = await e().repo.pushPullRequest(147, "feature/auth", LOGIN);
    e().github.addPull({
      number: 147,
      title: "GH-101: User Authentication",
      body: "Implements GH-101.",
      headSha: sha,
      headRef: "feature/auth",
      files: pullFiles(LOGIN),
    });
    e().github.setCheckRuns(sha, GREEN);
    say("dev-agent-1", "[DONE] GH-101 PR #147");
    await interval(night);
    const judged = await ok<{ decision: string }>("review_pr", {
      pr_number: 147,
      spec_assessment: ASSESS_OK,
      merge: false,
    });
    expect(judged.decision).toBe("approve");
    expect((await state()).tasks["GH-103"]!.assignee).toBeUndefined();

    // A person merges on GitHub, through its API; no tool is called.
    const res = await fetch(`${e().github.url}/repos/acme/webapp/pulls/147/merge`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ merge_method: "squash" }),
    });
    expect(res.status).toBe(200);
    await interval(night);
    const s = await state();
    expect(s.tasks["GH-101"]!.status).toBe("done");
    expect(s.tasks["GH-103"]).toMatchObject({ status: "in-progress" });
    const to = s.tasks["GH-103"]!.assignee!;
    expect(
      e()
        .aimaestro.messagesFor(to)
        .some((m) => m.subject.includes("GH-103")),
    ).toBe(true);
  });

  it("a silent agent goes offline after threshold × interval and its work moves to its backup", async () => {
    const night = await handedOver({
      agents: [
        { id: "dev-agent-1", capabilities: ["python", "auth"], backup: ["dev-agent-2"] },
        { id: "dev-agent-2", capabilities: ["python", "auth"], backup: ["dev-agent-1"] },
      ],
    });
    say("dev-agent-1", "[ACK] GH-101 - RECEIVED");
    await interval(night);
    e().aimaestro.setOnline("dev-agent-1", false);
    const threshold = e().config.limits.heartbeat_missed_threshold;
    for (let i = 1; i < threshold; i++) await interval(night);
    expect((await state()).agents["dev-agent-1"]!.availability).toBe("active");
    await interval(night);
    const s = await state();
    expect(s.agents["dev-agent-1"]!.availability).toBe("offline");
    expect(s.tasks["GH-101"]).toMatchObject({ assignee: "dev-agent-2", status: "in-progress" });
    expect(
      e()
        .aimaestro.messagesFor("dev-agent-2")
        .some((m) => /handoff/i.test(m.subject)),
    ).toBe(true);
  });

  it("looks only when a cycle is due, and only while a session runs", async () => {
    ({ env, client } = await connectedNight());
    const idle = new Night(e().rt);
    nights.push(idle);
    expect(await interval(idle)).toBeNull(); // no session: nothing to run
    const night = await handedOver();
    expect(await interval(night)).not.toBeNull();
    expect(await night.tick()).toBeNull(); // the same interval: not due yet
  });

  it("of two servers on one state directory, one holds the lease and runs the cycles; the other takes over when it stops", async () => {
    const a = await handedOver();
    const b = new Night(e().rt);
    nights.push(b);
    // Two runtimes would share the directory; the lease is what decides, so one runtime is enough
    // to show that only the holder runs: the other process id is simulated by the lease record.
    await e().rt.store.transact((d) => {
      d.night_lease = {
        holder: "elsewhere:1:abcd",
        expires_at: new Date(e().clock.now().getTime() + 60_000).toISOString(),
      };
    });
    expect(await interval(a)).toBeNull();
    expect(await interval(b)).toBeNull();
    e().clock.advance(1); // the lease lapses: its holder stopped renewing it
    expect(await a.tick()).not.toBeNull();
    expect((await state()).night_lease?.holder).not.toBe("elsewhere:1:abcd");
  });
});
