// Temporary profiling script (not committed).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { createSurroundings } from "./src/sim/environment.js";
import { StateStore } from "./src/state/store.js";
import type { TaskRecord } from "./src/state/schema.js";

const N = Number(process.argv[2] ?? 10000);
const agents = 50;
const SESSION = "s1";
const roster = Array.from({ length: agents }, (_, i) => ({ id: `agent-${i}`, capabilities: ["python"], max_concurrent_tasks: 50, backup: [`agent-${(i + 1) % agents}`] }));
const sur = await createSurroundings({ agents: roster, config: { limits: { max_concurrent_tasks: 50, poll_interval_seconds: 3600 } } });
const store = await StateStore.open(sur.stateDir);
const now = new Date().toISOString();
const busy = Math.min(200, Math.floor(N / 2));
const task = (id: string, assignee?: string): TaskRecord => ({
  task_id: id, session_id: SESSION, title: `Task ${id}`, priority: "normal", required_capabilities: ["python"], depends_on: [],
  instructions: "Implement the thing described in the issue, with tests.", completion_criteria: ["it works"], test_requirements: ["unit"], files_in_scope: ["src/**"],
  escalation_rules: { on_blocked: "report", on_security_concern: "stop", on_architecture_question: "decide" },
  status: assignee ? "in-progress" : "todo", ...(assignee ? { assignee, assigned_at: now, acked_at: now } : {}),
  assignment_epoch: assignee ? 1 : 0, previous_assignees: [], fix_rounds: 0, ci_polls: 0, ci_failures: 0, created_at: now, updated_at: now, history: [{ at: now, event: "created" }],
} as TaskRecord);
await store.transact((d) => {
  const ids: string[] = [];
  for (let i = 0; i < N; i++) { const id = `T-${i}`; ids.push(id); d.tasks[id] = task(id, i < busy ? `agent-${i % agents}` : undefined); }
  d.sessions.push({ id: SESSION, status: "running", escalation_policy: { immediate: ["security"], source: "bench" }, task_ids: ids, created_at: now, started_at: now } as never);
  d.current_session_id = SESSION;
});
await store.compact();
const transport = new StdioClientTransport({ command: process.execPath, args: ["--cpu-prof", "--cpu-prof-dir=/tmp/prof", "dist/cli.js", "--config", sur.configFile], env: { PATH: process.env.PATH!, HOME: sur.root, EOA_LOG_LEVEL: "error" }, stderr: "pipe" });
const client = new Client({ name: "p", version: "1" });
await client.connect(transport);
await client.callTool({ name: "check_messages", arguments: {} });
const times: number[] = [];
for (let i = 0; i < 60; i++) {
  const t = performance.now();
  const r = await client.callTool({ name: "assign_task", arguments: { task_id: `T-${busy + i}`, agent: `agent-${(i * 7) % agents}` } });
  times.push(performance.now() - t);
  if (r.isError) { console.log(JSON.stringify(r.content)); break; }
}
times.sort((a, b) => a - b);
console.log("assign p50", times[30]?.toFixed(2), "ms");
const c: number[] = [];
for (let i = 0; i < 20; i++) { const t = performance.now(); await client.callTool({ name: "check_messages", arguments: {} }); c.push(performance.now() - t); }
c.sort((a, b) => a - b);
console.log("check p50", c[10]?.toFixed(2));
await client.close();
await sur.close();
