import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import type { Surroundings } from "../src/sim/environment.js";
import { nightSurroundings, ORCHESTRATOR } from "./fixtures/night-checks.js";
import { readState, ServerProcess } from "./fixtures/server-process.js";

/**
 * Issue 11 through the built CLI: three server processes over stdio on one state directory, on a
 * clock the test moves (EOA_FAKE_CLOCK_FILE). After the hand-over no tool is called: exactly one
 * process runs the night's cycles under the lease; SIGKILL it and another takes over within two
 * intervals; no cycle's side effect is made twice.
 */

const ChannelNotification = z.object({
  method: z.literal("notifications/claude/channel"),
  params: z.object({ content: z.string(), meta: z.record(z.string(), z.string()) }),
});

let sur: Surroundings;
let procs: ServerProcess[] = [];
let clockFile: string;

beforeAll(async () => {
  sur = await nightSurroundings();
  clockFile = join(sur.root, "clock.txt");
  await writeFile(clockFile, sur.clock.now().toISOString());
});
afterAll(async () => {
  await Promise.all(procs.map((p) => p.kill()));
  await sur?.close();
});

/** Moves the night's clock (the processes read it from the file). */
async function advance(minutes: number): Promise<void> {
  sur.clock.advance(minutes);
  await writeFile(clockFile, sur.clock.now().toISOString());
}

/** Waits until `check` holds on the state directory (a condition, not a duration). */
async function until<T>(what: string, check: () => Promise<T | undefined | false>): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await sleep(25);
  }
}

const pidOf = (holder: string) => Number(holder.split(":").at(-2));

describe("three server processes, one night", () => {
  it(
    "one runs the cycles under the lease; SIGKILL it and another takes over within two intervals; nothing sent twice",
    { timeout: 120_000 },
    async () => {
      const env = { EOA_FAKE_CLOCK_FILE: clockFile, EOA_LOG_LEVEL: "info" };
      procs = await Promise.all(
        [0, 1, 2].map((i) => ServerProcess.spawn(`p${i}`, sur.configFile, sur.root, env)),
      );
      await Promise.all(procs.map((p) => p.ready()));
      // Every client hears what needs the model, whichever process's cycle found it.
      const heard = procs.map(() => [] as Array<{ content: string; meta: Record<string, string> }>);
      procs.forEach((p, i) =>
        p.client.setNotificationHandler(ChannelNotification, (n) => void heard[i]!.push(n.params)),
      );
      const [p0] = procs;
      const confirm = await p0!.call("start_session", { tasks: [{ task_id: "N-1", title: "Night task" }] });
      if (confirm.kind !== "ok") throw new Error(JSON.stringify(confirm));
      const approved = await p0!.call("start_session", {
        session_id: confirm.data.session_id,
        approve: true,
      });
      expect(approved.kind).toBe("ok");
      const assigned = await p0!.call("assign_task", { task_id: "N-1", agent: "dev-a" });
      expect(assigned).toMatchObject({ kind: "ok", data: { status: "dispatched" } });

      // From here on no tool is called. The night's first cycle runs as soon as the session does;
      // the clock moves only once it is over (a real clock never jumps over a whole cycle).
      const cyclesBefore = (
        await until("the first cycle", async () => {
          const s = await readState(sur.stateDir);
          return s.cycle.last_at === sur.clock.now().toISOString() ? s : undefined;
        })
      ).cycle.count;
      sur.aimaestro.inject({
        from: "dev-a",
        to: ORCHESTRATOR,
        subject: "[ACK] N-1 - RECEIVED",
        content: { type: "message", message: "[ACK] N-1 - RECEIVED" },
      });
      await advance(1);
      const first = await until("a cycle at this time applies the ack", async () => {
        const s = await readState(sur.stateDir);
        return s.tasks["N-1"]?.acked_at && s.cycle.last_at === sur.clock.now().toISOString() ? s : undefined;
      });
      expect(first.cycle.count).toBeGreaterThan(cyclesBefore);
      // Marked read in AI Maestro once the cycle has committed what it applied.
      await until(
        "the ack marked read in AI Maestro",
        async () => sur.aimaestro.messagesFor(ORCHESTRATOR).every((m) => m.status === "read") || undefined,
      );
      const holder = first.night_lease!.holder;
      const pids = procs.map((p) => p.pid);
      expect(pids).toContain(pidOf(holder));

      // Several intervals: the same process holds the lease throughout, one counted cycle each.
      for (let i = 0; i < 3; i++) {
        const before = (await readState(sur.stateDir)).cycle.count;
        await advance(1);
        const s = await until("the next cycle", async () => {
          const st = await readState(sur.stateDir);
          return st.cycle.count > before ? st : undefined;
        });
        expect(s.cycle.count).toBe(before + 1);
        expect(s.night_lease?.holder, procs.map((p) => `${p.pid}: ${p.stderr}`).join("\n")).toBe(holder);
      }

      // The holder dies; another takes over within two intervals.
      const dead = procs.find((p) => p.pid === pidOf(holder))!;
      await dead.kill();
      const before = (await readState(sur.stateDir)).cycle.count;
      sur.aimaestro.inject({
        from: "dev-a",
        to: ORCHESTRATOR,
        subject: "[SECURITY] N-1 a committed credential in the config loader",
        content: { type: "message", message: "[SECURITY] N-1 a committed credential in the config loader" },
      });
      await advance(2);
      const after = await until("another process runs the next cycle", async () => {
        const st = await readState(sur.stateDir);
        return st.cycle.count > before && st.night_lease?.holder !== holder ? st : undefined;
      });
      expect(pids.filter((p) => p !== dead.pid)).toContain(pidOf(after.night_lease!.holder));
      await until("the user is paged", async () =>
        sur.aimaestro.messagesFor("user-notification-channel").length ? true : undefined,
      );
      // Let a few more intervals pass: the page and the assignment were each sent once.
      for (let i = 0; i < 3; i++) {
        const c = (await readState(sur.stateDir)).cycle.count;
        await advance(1);
        await until("a cycle", async () => (await readState(sur.stateDir)).cycle.count > c || undefined);
      }
      expect(sur.aimaestro.messagesFor("user-notification-channel")).toHaveLength(1);
      // The security escalation reached every live client as a channel event, once each.
      for (const [i, p] of procs.entries()) {
        if (p === dead) continue;
        const told = heard[i]!.filter((ev) => ev.meta.kind === "escalation");
        expect(told, p.name).toHaveLength(1);
        expect(told[0]!.content).toMatch(/<untrusted source="esc-\d+ issue">/);
      }
      expect(sur.aimaestro.messagesFor("dev-a").filter((m) => m.subject.includes("N-1"))).toHaveLength(1);
    },
  );
});
