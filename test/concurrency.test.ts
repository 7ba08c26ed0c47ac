import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Surroundings } from "../src/sim/environment.js";
import {
  AgentSim,
  limitProblems,
  endOfNightProblems,
  nightSurroundings,
  ROSTER,
  taskSummary,
  type Success,
} from "./fixtures/night-checks.js";
import { readState, Rng, seedFrom, ServerProcess, type CallResult } from "./fixtures/server-process.js";

/**
 * Concurrency (SPEC §5, issue 6 part 2): four server processes (the built CLI over stdio, the same
 * --config, so one state directory) under a mixed load fired at once: the same task assigned from
 * several processes together (with different idempotency keys, and with the same one), different
 * tasks assigned in parallel, a poll cycle from every process while agents' messages arrive, the
 * odd escalation and its resolution, and resource reads. Each process also gets several calls at
 * once. Checked after every round and at the end: no lost update (every successful call is in the
 * state; poll cycles counted at most once per interval), no duplicate dispatch (one assignment
 * message per task and epoch; of the racing assigns, one dispatched and the others refused), no
 * agent over its limit, every inbound message applied exactly once, no side effect made twice.
 *
 * Replay a failure with CONCURRENCY_SEED=<seed> (printed at the start): the load follows the seed;
 * the interleaving is the operating system's.
 */

const SEED = seedFrom("CONCURRENCY_SEED");
const ROUNDS = Number(process.env.CONCURRENCY_ROUNDS ?? 6);
const PROCESSES = 4;

const TASKS = Array.from({ length: 18 }, (_, k) => {
  const i = k + 1;
  return {
    task_id: `C-${i}`,
    title: `Concurrent task ${i}`,
    required_capabilities: i % 5 === 0 ? ["api"] : ["ts"],
    ...(i <= 2 ? { issue_number: 100 + i } : {}),
  };
});

let sur: Surroundings;
let procs: ServerProcess[] = [];
beforeAll(async () => {
  sur = await nightSurroundings();
});
afterAll(async () => {
  await Promise.all(procs.map((p) => p.kill()));
  await sur?.close();
});

interface Fired {
  proc: number;
  name: string;
  args: Record<string, unknown>;
  result: CallResult;
}

describe("four server processes on one state directory", () => {
  it(
    "lose no update, dispatch each task once, keep every agent within its limit, apply each message once",
    { timeout: 120_000 },
    async () => {
      console.log(`concurrency test: CONCURRENCY_SEED=${SEED} CONCURRENCY_ROUNDS=${ROUNDS}`);
      const rng = new Rng(SEED);
      const sim = new AgentSim(sur.aimaestro, ROSTER, rng);
      const ledger: Success[] = [];
      const fired: Fired[] = [];
      const problems: string[] = [];
      const started = Date.now();

      procs = await Promise.all(
        Array.from({ length: PROCESSES }, (_, i) => ServerProcess.spawn(`p${i}`, sur.configFile, sur.root)),
      );
      await Promise.all(procs.map((p) => p.ready()));

      const fire = async (proc: number, name: string, args: Record<string, unknown>): Promise<Fired> => {
        const result = await procs[proc]!.call(name, args);
        const f = { proc, name, args, result };
        fired.push(f);
        if (result.kind === "ok") ledger.push({ tool: name, args, data: result.data, by: `p${proc}` });
        return f;
      };

      // The session, from two processes at once: one confirmation wins or both are refused cleanly.
      const confirms = await Promise.all([0, 1].map((p) => fire(p, "start_session", { tasks: TASKS })));
      expect(
        confirms.some((c) => c.result.kind === "ok"),
        `seed ${SEED}: ${JSON.stringify(confirms)}`,
      ).toBe(true);
      const current = await readState(sur.stateDir);
      const sessionId = current.current_session_id!;
      const approvals = await Promise.all(
        [2, 3].map((p) => fire(p, "start_session", { session_id: sessionId, approve: true })),
      );
      expect(
        approvals.filter((a) => a.result.kind === "ok").length,
        `seed ${SEED}: ${JSON.stringify(approvals)}`,
      ).toBeGreaterThan(0);
      for (const a of approvals.filter((x) => x.result.kind === "refused"))
        expect((a.result as { code: string }).code, `seed ${SEED}`).toBe("SESSION_NOT_AWAITING_APPROVAL");

      let keys = 0;
      for (let round = 0; round < ROUNDS; round++) {
        const st = await readState(sur.stateDir);
        const todo = TASKS.filter((t) => st.tasks[t.task_id]?.status === "todo").map((t) => t.task_id);
        const pool = todo.length >= 4 ? todo : TASKS.map((t) => t.task_id);
        const batch: Array<Promise<Fired>> = [];
        const hotDifferentKeys = rng.pick(pool);
        const hotSameKey = rng.pick(pool.filter((t) => t !== hotDifferentKeys));
        const sameKey = `same-${SEED}-${round}`;
        // The same task from every process at once, each with its own key.
        const racingKeys = new Set<unknown>();
        for (let p = 0; p < PROCESSES; p++) {
          const key = `k-${++keys}`;
          racingKeys.add(key);
          batch.push(fire(p, "assign_task", { task_id: hotDifferentKeys, idempotency_key: key }));
        }
        // The same task and the same key from three processes: one runs, the others wait or replay it.
        for (const p of [0, 1, 2].map((i) => (i + round) % PROCESSES))
          batch.push(fire(p, "assign_task", { task_id: hotSameKey, idempotency_key: sameKey }));
        // Different tasks, some to a named agent.
        for (let i = 0; i < 4; i++) {
          const task = rng.pick(pool);
          batch.push(
            fire(rng.int(0, PROCESSES - 1), "assign_task", {
              task_id: task,
              ...(rng.chance(0.3) ? { agent: rng.pick(ROSTER).id } : {}),
            }),
          );
        }
        // A poll cycle from every process, while agents keep talking.
        for (let p = 0; p < PROCESSES; p++) batch.push(fire(p, "check_messages", {}));
        const talk = (async () => {
          for (let i = rng.int(3, 7); i > 0; i--) {
            sim.say();
            await sleep(rng.int(0, 15));
          }
        })();
        // Now and then an escalation, or the user's answer to one.
        const open = st.escalations.filter((e) => e.status === "open");
        if (open.length && rng.chance(0.6))
          batch.push(
            fire(rng.int(0, PROCESSES - 1), "resolve_escalation", {
              escalation_id: rng.pick(open).id,
              decision: `decision ${round}`,
            }),
          );
        if (rng.chance(0.5))
          batch.push(
            fire(rng.int(0, PROCESSES - 1), "escalate", {
              category: rng.pick(["security", "architecture", "blocker"] as const),
              issue: `concurrent issue ${round}`,
              task_id: rng.pick(TASKS).task_id,
            }),
          );
        // Resource reads beside the writes, in every process until the round's calls are answered:
        // each one a consistent snapshot.
        const readSnapshot = async (p: number) => {
          const roster = (await procs[p]!.readResource("eoa://roster")) as {
            agents: Array<{ id: string; load: number; max_concurrent_tasks: number }>;
          };
          for (const a of roster.agents)
            if (a.load > a.max_concurrent_tasks)
              problems.push(`round ${round}: p${p} read ${a.id} at ${a.load}/${a.max_concurrent_tasks}`);
          const tasks = (await procs[p]!.readResource("eoa://tasks")) as { tasks: unknown[] };
          if (tasks.tasks.length !== TASKS.length)
            problems.push(`round ${round}: p${p} read ${tasks.tasks.length} tasks`);
        };
        let writing = true;
        const reads = Array.from({ length: PROCESSES }, async (_, p) => {
          do {
            await readSnapshot(p);
            await sleep(5);
          } while (writing);
        });
        const results = await Promise.all(batch);
        writing = false;
        await Promise.all([talk, ...reads]);

        // The task raced for: dispatched at most once. The racing assigns (not the mixed batch's, which
        // may name an agent that cannot take it) are otherwise refused as already taken.
        const racing = results.filter((f) => racingKeys.has(f.args.idempotency_key));
        const dispatched = results.filter(
          (f) =>
            f.name === "assign_task" &&
            f.args.task_id === hotDifferentKeys &&
            f.result.kind === "ok" &&
            f.result.data.status === "dispatched",
        );
        if (dispatched.length > 1)
          problems.push(`round ${round}: ${hotDifferentKeys} dispatched ${dispatched.length} times at once`);
        for (const f of racing.filter((x) => x.result.kind === "refused")) {
          const code = (f.result as { code: string }).code;
          if (!["TASK_ALREADY_ASSIGNED", "TASK_PARKED", "TASK_BLOCKED"].includes(code))
            problems.push(`round ${round}: racing assign of ${hotDifferentKeys} refused with ${code}`);
        }
        // The same key: every success is the same answer. A refusal records nothing, so a later
        // call with the key runs again against the state as it is then (and may answer otherwise).
        const same = results.filter((f) => f.args.idempotency_key === sameKey);
        const answers = new Set(
          same.filter((f) => f.result.kind === "ok").map((f) => JSON.stringify(f.result)),
        );
        if (same.every((f) => f.result.kind === "refused" && f.result.code === "IDEMPOTENCY_IN_PROGRESS"))
          problems.push(`round ${round}: no call with key ${sameKey} ran`);
        if (answers.size > 1)
          problems.push(`round ${round}: key ${sameKey} gave different answers: ${[...answers].join(" / ")}`);
        for (const f of results.filter((x) => x.result.kind === "refused")) {
          const code = (f.result as { code: string }).code;
          if (code === "STATE_LOCKED" || code === "INTERNAL" || code === "STATE_WRITE_FAILED")
            problems.push(`round ${round}: p${f.proc} ${f.name} refused with ${code}`);
        }
        const after = await readState(sur.stateDir);
        problems.push(...limitProblems(after, ROSTER).map((p) => `after round ${round}: ${p}`));
      }

      // One last cycle picks up what the rounds left (messages that arrived after the last cycles).
      const last = await fire(rng.int(0, PROCESSES - 1), "check_messages", {});
      expect(last.result.kind, `seed ${SEED}`).toBe("ok");
      const exits = await Promise.all(procs.map((p) => p.close()));
      expect(exits, `seed ${SEED}`).toEqual(procs.map(() => ({ code: 0, signal: null })));
      for (const p of procs)
        for (const line of p.stderr.split("\n").filter((l) => /tool failed|INTERNAL/.test(l)))
          problems.push(`${p.name} logged: ${line.slice(0, 300)}`);

      const st = await readState(sur.stateDir);
      const cycles = ledger.filter((s) => s.tool === "check_messages").map((s) => Number(s.data.cycle));
      const byTool = Object.fromEntries(
        [...new Set(fired.map((f) => f.name))].map((n) => [
          n,
          fired
            .filter((f) => f.name === n)
            .reduce<Record<string, number>>((acc, f) => {
              const k = f.result.kind === "refused" ? f.result.code : f.result.kind;
              acc[k] = (acc[k] ?? 0) + 1;
              return acc;
            }, {}),
        ]),
      );
      console.log(
        `concurrency test summary (seed ${SEED}): ${JSON.stringify({
          seconds: (Date.now() - started) / 1000,
          calls: byTool,
          cycles: st.cycle.count,
          inbound: sim.injected.length,
          tasks: taskSummary(st),
        })}`,
      );
      const context = `seed ${SEED}`;
      expect(await endOfNightProblems(sur, st, ledger, sim.injected), context).toEqual([]);
      expect([...new Set(problems)], context).toEqual([]);
      // Time, not calls: however many processes ask, a cycle counts at most once per poll interval
      // (the night's own cycles included), and no answer reports a count the state does not have.
      const config = JSON.parse(await readFile(sur.configFile, "utf8")) as {
        limits: { poll_interval_seconds: number };
      };
      const intervalMs = config.limits.poll_interval_seconds * 1000;
      const intervals = Math.floor((Date.now() - started) / intervalMs) + 1;
      expect(st.cycle.count, context).toBeGreaterThanOrEqual(1);
      expect(st.cycle.count, context).toBeLessThanOrEqual(intervals);
      expect(Math.max(...cycles), context).toBeLessThanOrEqual(st.cycle.count);
      // Ids handed out under the lock are unique.
      for (const list of [st.escalations, st.decisions, st.incidents, st.outbox])
        expect(new Set(list.map((x) => x.id)).size, context).toBe(list.length);
      // Each dispatch the clients were told about is a distinct (task, epoch); only a replay of the
      // same idempotency key may report one twice.
      const dispatches = new Map<string, string>();
      ledger.forEach((s, i) => {
        if (s.tool !== "assign_task" || s.data.status !== "dispatched") return;
        const at = `${String(s.data.task_id)}@${String(s.data.assignment_epoch)}`;
        const call = String(s.args.idempotency_key ?? `call-${i}`);
        if (dispatches.has(at) && dispatches.get(at) !== call)
          problems.push(`${at} was reported dispatched to two different calls`);
        dispatches.set(at, call);
      });
      expect([...new Set(problems)], context).toEqual([]);
      expect(dispatches.size, context).toBeGreaterThan(0);
    },
  );
});
