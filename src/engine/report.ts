import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { EoaError, errorMessage, isEoaError } from "../errors.js";
import {
  type Attention,
  renderReport,
  reportFigures,
  type ReportFigures,
  type ReportModel,
  type TaskRow,
} from "../protocol/report.js";
import type { TaskRecord } from "../state/schema.js";
import { wholeHistory } from "./history.js";
import type { Runtime } from "./runtime.js";

/** Phase 5: gathers the report's figures from state and GitHub, renders it, writes it under the state directory. */

export interface ReportResult {
  session_id: string;
  path: string;
  markdown: string;
  figures: ReportFigures;
  session_complete: boolean;
  warnings: string[];
}

export async function writeReport(rt: Runtime, sessionId?: string): Promise<ReportResult> {
  const state = await rt.store.read();
  const id = sessionId ?? state.current_session_id;
  const session = state.sessions.find((s) => s.id === id);
  if (!session) {
    throw new EoaError(
      "SESSION_NOT_FOUND",
      id ? `no session ${id}` : "there is no session yet",
      id ? "read eoa://session for the current session id" : "start one with start_session",
    );
  }
  const tasks = session.task_ids.map((t) => state.tasks[t]).filter((t): t is TaskRecord => !!t);
  if (!tasks.length) {
    throw new EoaError(
      "NO_TASKS",
      `session ${session.id} has no tasks to report on`,
      "start a session with tasks (start_session)",
    );
  }
  const warnings: string[] = [];
  // A record without a task belongs to the session it happened in: from this session's creation
  // to the next one's (sessions run one after the other), so an old session's report stays put.
  const next = state.sessions[state.sessions.indexOf(session) + 1]?.created_at;
  const during = (at: string) => at >= session.created_at && (!next || at < next);
  const inSession = (taskId: string | undefined, at: string) =>
    taskId ? session.task_ids.includes(taskId) : during(at);
  const rows: TaskRow[] = [];
  for (const task of tasks) {
    const reviews = Object.values(state.reviews)
      .filter((r) => r.task_id === task.task_id && (!task.pr_number || r.pr_number === task.pr_number))
      .sort((a, b) => a.at.localeCompare(b.at));
    const last = reviews.at(-1);
    const tested = [...reviews].reverse().find((r) => r.tests);
    let pr: TaskRow["pr"] = null;
    if (task.pr_number) {
      // The scope git measured on the head last reviewed; GitHub's own count only when never reviewed.
      const reviewed = last
        ? { files: last.files_changed, additions: last.additions, deletions: last.deletions }
        : undefined;
      try {
        const p = await rt.github.getPull(task.pr_number);
        pr = {
          number: p.number,
          merged: p.merged,
          state: p.state,
          scope: reviewed ?? { files: p.changedFiles, additions: p.additions, deletions: p.deletions },
        };
      } catch (err) {
        warnings.push(`PR #${task.pr_number} not read from GitHub (${errorMessage(err)})`);
        pr = {
          number: task.pr_number,
          merged: task.status === "done" && !!task.merged_at,
          state: task.status === "done" ? "closed" : "open",
          scope: reviewed ?? `the PR was never reviewed and GitHub could not be read: ${errorMessage(err)}`,
        };
      }
    }
    const branch = !pr && task.branch ? await branchOnRemote(rt, task.branch) : undefined;
    // The timeline needs every review round and the last block, archived or not.
    const history = await wholeHistory(rt, task).catch((err: unknown) => {
      warnings.push(
        `${task.task_id}: archived history not read (${errorMessage(err)}); only the latest shown`,
      );
      return task.history;
    });
    rows.push({
      task: { ...task, history },
      pr,
      tests: tested?.tests ?? null,
      ...(branch ? { branch } : {}),
    });
  }
  const model: ReportModel = {
    sessionId: session.id,
    generatedAt: rt.now(),
    directive: session.directive ?? null,
    rows,
    incidents: state.incidents.filter((i) => inSession(i.task_id, i.at)),
    escalations: state.escalations.filter((e) => inSession(e.task_id, e.created_at)),
    decisions: state.decisions.filter((d) =>
      d.task_id ? session.task_ids.includes(d.task_id) && d.at >= session.created_at : during(d.at),
    ),
    agents: Object.keys(state.agents),
    attention: {
      last_cycle_at: state.cycle.last_at ?? null,
      interval_seconds: rt.config.limits.poll_interval_seconds,
      gaps: (state.cycle.gaps ?? []).filter((g) => g.to >= session.created_at),
      unread: await unreadNow(rt, state.cycle.unread ?? null),
    },
  };
  // The file outlives the process: no secret may reach it, whatever the state holds.
  const markdown = rt.redact(renderReport(model));
  const dir = join(rt.config.stateDir, "reports");
  const path = join(dir, `${session.id}.md`);
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    await mkdir(dir, { recursive: true });
    await writeFile(tmp, markdown);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new EoaError(
      "REPORT_WRITE_FAILED",
      `the report could not be written to ${path}: ${errorMessage(err)}`,
      "fix the permissions or free space in the state directory's reports/ folder and call write_report again (nothing in state was changed)",
    );
  }
  const { result } = await rt.step({ type: "report-written", session_id: session.id, path });
  const complete = result.complete;
  rt.notifyExtra("eoa://reports/latest");
  return {
    session_id: session.id,
    path,
    markdown,
    figures: reportFigures(model),
    session_complete: complete,
    warnings,
  };
}

/** Whether the branch an agent named is on the remote, as git finds it after a fetch. */
async function branchOnRemote(rt: Runtime, name: string): Promise<NonNullable<TaskRow["branch"]>> {
  if (!rt.hasGit) return { name, unknown: "no git remote is configured" };
  try {
    await rt.git.ensureMirror();
  } catch (err) {
    return { name, unknown: `git could not fetch the remote: ${errorMessage(err)}` };
  }
  try {
    await rt.git.branchSha(name);
    return { name, exists: true };
  } catch (err) {
    // Not a branch name git accepts, or not on the remote: either way no such branch exists.
    if (isEoaError(err) && (err.code === "GIT_REF_NOT_FOUND" || err.code === "GIT_BAD_REF"))
      return { name, exists: false };
    return { name, unknown: errorMessage(err) };
  }
}

/** The inbox counted as the report is written: a message nobody read is a fact the user must see. */
async function unreadNow(rt: Runtime, atLastCycle: number | null): Promise<Attention["unread"]> {
  try {
    return { now: (await rt.aimaestro.listUnread(rt.config.orchestrator, 0)).length };
  } catch (err) {
    return { unknown: `AI Maestro not reached: ${errorMessage(err)}`, at_last_cycle: atLastCycle };
  }
}
