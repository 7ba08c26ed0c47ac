import { error, notFound, route, type Route } from "./http.js";
import type { SimState } from "./state.js";

/** Repository roles from least to most, each with the permissions of those before it. */
const ROLES = ["none", "read", "triage", "write", "maintain", "admin"];

/** The authenticated user, the repository and its branch protection. */
export function repoRoutes(s: SimState): Route[] {
  return [
    route("GET", "/user", (_m, ctx) => ({
      status: 200,
      // The public profile (GitHub's `public-user`): nothing on it but the login and this repository.
      body: {
        ...s.user(ctx.base, s.login),
        name: s.login,
        company: null,
        blog: "",
        location: null,
        email: null,
        hireable: null,
        bio: null,
        public_repos: s.owner === s.login && !s.opts.private ? 1 : 0,
        public_gists: 0,
        followers: 0,
        following: 0,
        created_at: s.startedAt,
        updated_at: s.startedAt,
      },
    })),
    route("GET", "{repo}", (_m, ctx) => ({ status: 200, body: s.repoJson(ctx.base) })),
    route("GET", "{repo}/collaborators/([^/]+)/permission", (m, ctx) => {
      const name = decodeURIComponent(m[3]!);
      const role = s.collaborators.get(name.toLowerCase());
      if (role === undefined) return notFound();
      // `permission` is the legacy level (maintain reads as write, triage as read); role_name the role.
      const permission = role === "maintain" ? "write" : role === "triage" ? "read" : role;
      const at = (level: number) => ROLES.indexOf(role) >= level;
      const user = {
        ...s.user(ctx.base, name),
        permissions: { pull: at(1), triage: at(2), push: at(3), maintain: at(4), admin: at(5) },
        role_name: role,
      };
      return { status: 200, body: { permission, role_name: role, user } };
    }),
    route("GET", "{repo}/branches/([^/]+)/protection", (m, ctx) => {
      const branch = decodeURIComponent(m[3]!);
      const p = s.protections.get(branch);
      // Only admins may read protection; GitHub answers everyone else 404, as for a missing resource.
      if (!s.permissions.admin) return notFound();
      if (!p) return error(404, "Branch not protected");
      const url = `${s.repoUrl(ctx.base)}/branches/${branch}/protection`;
      return {
        status: 200,
        body: {
          url,
          required_status_checks: {
            url: `${url}/required_status_checks`,
            strict: false,
            contexts: p.requiredChecks,
            checks: p.requiredChecks.map((c) => ({ context: c, app_id: null })),
          },
          required_pull_request_reviews: {
            url: `${url}/required_pull_request_reviews`,
            dismiss_stale_reviews: false,
            require_code_owner_reviews: false,
            required_approving_review_count: p.requiredApprovals,
          },
          enforce_admins: { url: `${url}/enforce_admins`, enabled: false },
        },
      };
    }),
  ];
}
