import {
  type Ctx,
  error,
  list,
  noPush,
  notFound,
  obj,
  type Reply,
  route,
  type Route,
  str,
  validation,
} from "./http.js";
import type { CommentRec, IssueRec } from "./records.js";
import type { SimState } from "./state.js";
import type { GitHubStandIn } from "./types.js";

/** Issues (a pull request is an issue too), their labels and comments, and the repository's labels. */

export function issueJson(s: SimState, base: string, i: IssueRec) {
  const url = `${s.repoUrl(base)}/issues/${i.number}`;
  return {
    id: i.id,
    node_id: i.node_id,
    url,
    repository_url: s.repoUrl(base),
    labels_url: `${url}/labels{/name}`,
    comments_url: `${url}/comments`,
    events_url: `${url}/events`,
    html_url: `${s.htmlRepo}/${i.pull ? "pull" : "issues"}/${i.number}`,
    number: i.number,
    state: i.state,
    state_reason: i.state_reason,
    title: i.title,
    body: i.body,
    user: s.user(base, i.user),
    labels: i.labels.map((l) => s.labelJson(base, l)),
    assignee: null,
    assignees: [],
    milestone: null,
    locked: false,
    active_lock_reason: null,
    comments: i.comments.length,
    created_at: i.created_at,
    updated_at: i.updated_at,
    closed_at: i.closed_at,
    author_association: s.association(i.user),
    ...(i.pull
      ? {
          pull_request: {
            url: `${s.repoUrl(base)}/pulls/${i.number}`,
            html_url: `${s.htmlRepo}/pull/${i.number}`,
            diff_url: `${s.htmlRepo}/pull/${i.number}.diff`,
            patch_url: `${s.htmlRepo}/pull/${i.number}.patch`,
            merged_at: i.pull.mergedAt,
          },
        }
      : {}),
  };
}

function commentJson(s: SimState, base: string, i: IssueRec, c: CommentRec) {
  return {
    id: c.id,
    node_id: c.node_id,
    body: c.body,
    user: s.user(base, c.user),
    created_at: c.created_at,
    updated_at: c.created_at,
    url: `${s.repoUrl(base)}/issues/comments/${c.id}`,
    html_url: `${s.htmlRepo}/issues/${i.number}#issuecomment-${c.id}`,
    issue_url: `${s.repoUrl(base)}/issues/${i.number}`,
    author_association: s.association(c.user),
  };
}

/** Adds an issue as a fixture or on `POST /issues`; returns its number. */
export function addIssue(s: SimState, spec: Parameters<GitHubStandIn["addIssue"]>[0]): number {
  const number = spec.number ?? s.nextNumber();
  if (s.issues.has(number)) throw new Error(`issue #${number} already exists`);
  const created = s.now();
  s.issues.set(number, {
    id: s.nextId(),
    number,
    node_id: `I_kwDOsim${String(number).padStart(6, "0")}`,
    title: spec.title,
    body: spec.body ?? "",
    state: spec.state ?? "open",
    state_reason: spec.state === "closed" ? "completed" : null,
    labels: s.uniqueLabels(spec.labels ?? []),
    comments: [],
    user: spec.author ?? s.login,
    created_at: created,
    updated_at: created,
    closed_at: spec.state === "closed" ? created : null,
  });
  return number;
}

export function issueRoutes(s: SimState): Route[] {
  function editLabels(m: string[], ctx: Ctx, mode: "add" | "set"): Reply {
    const i = s.getIssue(m[3]);
    if (!i) return notFound();
    if (!s.permissions.push) return noPush("issues=write; pull_requests=write");
    // Both `{ labels: [...] }` and a bare array are accepted, as on GitHub.
    const raw = Array.isArray(ctx.body) ? ctx.body : obj(ctx.body).labels;
    if (
      !Array.isArray(raw) ||
      raw.some((l) => typeof l !== "string" && !(l && typeof l === "object" && "name" in l))
    ) {
      return validation(
        [{ resource: "Label", code: "invalid", field: "labels" }],
        "Invalid request.\n\nFor 'links/0/schema', nil is not an array.",
      );
    }
    const names = raw.map((l) => (typeof l === "string" ? l : String((l as { name: unknown }).name)));
    i.labels = s.uniqueLabels(mode === "set" ? names : [...i.labels, ...names]);
    i.updated_at = s.now();
    return { status: 200, body: i.labels.map((l) => s.labelJson(ctx.base, l)) };
  }

  return [
    route("GET", "{repo}/labels", (_m, ctx) =>
      list(
        [...s.repoLabels.values()].map((l) => s.labelJson(ctx.base, l.name)),
        ctx,
      ),
    ),
    route("POST", "{repo}/labels", (_m, ctx) => {
      if (!s.permissions.push) return noPush("issues=write");
      const b = obj(ctx.body);
      const name = str(b.name);
      if (!name) return validation([{ resource: "Label", code: "missing_field", field: "name" }]);
      if (s.repoLabels.has(name.toLowerCase()))
        return validation([{ resource: "Label", code: "already_exists", field: "name" }]);
      const color = str(b.color) ?? "ededed";
      if (!/^[0-9a-fA-F]{6}$/.test(color))
        return validation([{ resource: "Label", code: "invalid", field: "color" }]);
      const id = s.nextId();
      s.repoLabels.set(name.toLowerCase(), {
        id,
        node_id: `LA_${id}`,
        name,
        color,
        description: str(b.description) ?? null,
        default: false,
      });
      return { status: 201, body: s.labelJson(ctx.base, name) };
    }),
    route("POST", "{repo}/issues", (_m, ctx) => {
      const b = obj(ctx.body);
      const title = str(b.title);
      if (!title) return validation([{ resource: "Issue", code: "missing_field", field: "title" }]);
      const n = addIssue(s, {
        title,
        body: str(b.body) ?? "",
        labels: Array.isArray(b.labels) ? b.labels.map(String) : [],
        author: s.login,
      });
      return { status: 201, body: issueJson(s, ctx.base, s.issues.get(n)!) };
    }),
    route("GET", "{repo}/issues/(\\d+)", (m, ctx) => {
      const i = s.getIssue(m[3]);
      return i ? { status: 200, body: issueJson(s, ctx.base, i) } : notFound();
    }),
    route("PATCH", "{repo}/issues/(\\d+)", (m, ctx) => {
      const i = s.getIssue(m[3]);
      if (!i) return notFound();
      const b = obj(ctx.body);
      if (b.state !== undefined && b.state !== "open" && b.state !== "closed")
        return validation([{ resource: "Issue", code: "invalid", field: "state" }]);
      if (typeof b.title === "string") i.title = b.title;
      if (b.body === null || typeof b.body === "string") i.body = b.body;
      if (Array.isArray(b.labels)) i.labels = s.uniqueLabels(b.labels.map(String));
      if (b.state === "closed") s.closeIssue(i, str(b.state_reason) ?? "completed");
      if (b.state === "open" && i.state === "closed" && !i.pull?.merged) {
        i.state = "open";
        i.state_reason = "reopened";
        i.closed_at = null;
      }
      i.updated_at = s.now();
      return { status: 200, body: issueJson(s, ctx.base, i) };
    }),
    route("GET", "{repo}/issues/(\\d+)/labels", (m, ctx) => {
      const i = s.getIssue(m[3]);
      return i
        ? list(
            i.labels.map((l) => s.labelJson(ctx.base, l)),
            ctx,
          )
        : notFound();
    }),
    route("POST", "{repo}/issues/(\\d+)/labels", (m, ctx) => editLabels(m, ctx, "add")),
    route("PUT", "{repo}/issues/(\\d+)/labels", (m, ctx) => editLabels(m, ctx, "set")),
    route("DELETE", "{repo}/issues/(\\d+)/labels/([^/]+)", (m, ctx) => {
      const i = s.getIssue(m[3]);
      if (!i) return notFound();
      if (!s.permissions.push) return noPush("issues=write; pull_requests=write");
      const name = decodeURIComponent(m[4]!).toLowerCase();
      if (!i.labels.some((l) => l.toLowerCase() === name)) return error(404, "Label does not exist");
      i.labels = i.labels.filter((l) => l.toLowerCase() !== name);
      i.updated_at = s.now();
      return { status: 200, body: i.labels.map((l) => s.labelJson(ctx.base, l)) };
    }),
    route("GET", "{repo}/issues/(\\d+)/comments", (m, ctx) => {
      const i = s.getIssue(m[3]);
      return i
        ? list(
            i.comments.map((c) => commentJson(s, ctx.base, i, c)),
            ctx,
          )
        : notFound();
    }),
    route("POST", "{repo}/issues/(\\d+)/comments", (m, ctx) => {
      const i = s.getIssue(m[3]);
      if (!i) return notFound();
      const body = str(obj(ctx.body).body);
      if (!body) return validation([{ resource: "IssueComment", code: "missing_field", field: "body" }]);
      const id = s.nextId();
      const c: CommentRec = { id, node_id: `IC_${id}`, body, user: s.login, created_at: s.now() };
      i.comments.push(c);
      i.updated_at = s.now();
      return { status: 201, body: commentJson(s, ctx.base, i, c) };
    }),
  ];
}
