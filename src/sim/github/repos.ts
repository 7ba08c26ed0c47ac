import { error, route, type Route } from "./http.js";
import type { SimState } from "./state.js";

/** The authenticated user, the repository and its branch protection. */
export function repoRoutes(s: SimState): Route[] {
  return [
    route("GET", "/user", (_m, ctx) => ({
      status: 200,
      body: {
        ...s.user(s.login),
        name: s.login,
        html_url: `https://github.com/${s.login}`,
        url: `${ctx.base}/users/${s.login}`,
      },
    })),
    route("GET", "{repo}", (_m, ctx) => ({ status: 200, body: s.repoJson(ctx.base) })),
    route("GET", "{repo}/branches/([^/]+)/protection", (m, ctx) => {
      if (!s.permissions.admin) return error(403, "Must have admin rights to Repository.");
      const branch = decodeURIComponent(m[3]!);
      const p = s.protections.get(branch);
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
