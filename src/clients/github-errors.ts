import { EoaError } from "../errors.js";

/**
 * GitHub's failures as the protocol's errors: each mapped to a stable code with a next step the
 * user can take, the token scrubbed from every text. Apart from the REST calls in github.ts.
 */

export interface ErrorContext {
  /** What was being done, in words ("read pull request #5"). */
  op: string;
  /** Extra mappings of this call (merge: 405/409). */
  merge?: boolean;
}

/** What the mapping needs of the client: its repository, its scrubber and its clock. */
export interface ClientContext {
  fullName: string;
  scrub(text: string): string;
  now(): Date;
}

/** The system error under a request that got no HTTP answer (fetch's "fetch failed" wraps it). */
export function networkCause(err: unknown): { code: string; message: string } | undefined {
  if ((err as { response?: unknown }).response !== undefined) return undefined;
  for (let e = (err as { cause?: unknown }).cause, depth = 0; e && depth < 4; depth++) {
    const { code, message } = e as { code?: unknown; message?: unknown };
    if (typeof code === "string" && typeof message === "string") return { code, message };
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

export function mapGitHubError(err: unknown, ctx: ErrorContext, client: ClientContext): unknown {
  const e = err as {
    name?: string;
    status?: number;
    message?: string;
    errors?: { type?: string; message?: string; path?: unknown[] }[];
    response?: { headers?: Record<string, string | number | undefined>; data?: unknown };
    headers?: Record<string, string | undefined>;
  };
  const scrub = (s: string) => client.scrub(s);
  const headers = e.response?.headers ?? e.headers ?? {};
  const header = (name: string) => {
    const v = headers[name];
    return v === undefined ? undefined : String(v);
  };
  const data = (e.response?.data ?? {}) as { message?: unknown; errors?: unknown };
  const ghMessage = scrub(typeof data.message === "string" ? data.message : (e.message ?? "unknown error"));
  const what = ctx.op;

  // GraphQL answers 200 with `errors` (GraphqlResponseError), or the throttling plugin's rate-limit error.
  type GraphqlError = { type?: string; message?: string; path?: unknown[] };
  const gqlErrors: GraphqlError[] | undefined =
    e.errors ??
    (e.status === undefined && Array.isArray(data.errors) ? (data.errors as GraphqlError[]) : undefined);
  if (gqlErrors) {
    const first = gqlErrors[0] ?? {};
    const text = scrub(gqlErrors.map((x) => x.message ?? x.type ?? "error").join("; "));
    const details = {
      operation: what,
      graphql_type: first.type,
      graphql_path: (first.path ?? []).join("."),
    };
    switch (first.type) {
      case "NOT_FOUND":
        return new EoaError(
          "GITHUB_NOT_FOUND",
          `GitHub could not ${what}: ${text}`,
          "check the project owner and number and that the token can see them",
          details,
        );
      case "FORBIDDEN":
      case "INSUFFICIENT_SCOPES":
        return new EoaError(
          "GITHUB_FORBIDDEN",
          `GitHub refused to ${what}: ${text}`,
          "give the token the project scope (classic) or Projects read/write access (fine-grained)",
          details,
        );
      case "RATE_LIMITED":
        return rateLimited(client, what, header, details);
      default:
        return new EoaError(
          "GITHUB_VALIDATION",
          `GitHub rejected the request to ${what}: ${text}`,
          "check the project configuration (board, Status field and its options)",
          details,
        );
    }
  }

  const status = typeof e.status === "number" ? e.status : 0;
  const network = networkCause(err);
  if (network) {
    const url = (err as { request?: { url?: string } }).request?.url;
    const where = url ? ` at ${new URL(url).origin}` : "";
    const unresolved = network.code === "ENOTFOUND";
    return new EoaError(
      "GITHUB_UNAVAILABLE",
      `GitHub could not be reached${where} while trying to ${what}: ${scrub(network.message)}${unresolved ? " (the host name does not resolve)" : ""}`,
      unresolved
        ? "check the network connection and DNS (and GITHUB_API_URL, if set), then try again"
        : "check the network connection (and GITHUB_API_URL, if set); a poll cycle retries by itself",
      { operation: what, cause: network.code },
    );
  }
  const details: Record<string, unknown> = { operation: what, status };
  if (status === 401) {
    return new EoaError(
      "GITHUB_AUTH",
      `GitHub refused the credentials while trying to ${what} (401 ${ghMessage})`,
      "check GITHUB_TOKEN (or GH_TOKEN): it is missing, expired or revoked; set a valid token and restart the server",
      details,
    );
  }
  if (
    status === 429 ||
    (status === 403 && (header("x-ratelimit-remaining") === "0" || /rate limit/i.test(ghMessage)))
  ) {
    return rateLimited(client, what, header, details);
  }
  if (status === 403) {
    // Classic tokens: x-accepted-oauth-scopes; fine-grained tokens: x-accepted-github-permissions.
    const accepted = header("x-accepted-oauth-scopes")?.trim();
    const granted = header("x-oauth-scopes");
    const permissions = header("x-accepted-github-permissions")?.trim();
    const hint = accepted
      ? ` (this needs one of the token scopes: ${accepted}${granted !== undefined ? `; the token has: ${granted || "none"}` : ""})`
      : permissions
        ? ` (this needs the token permission: ${permissions})`
        : "";
    return new EoaError(
      "GITHUB_FORBIDDEN",
      `GitHub refused to ${what}: ${ghMessage}${hint}`,
      accepted
        ? `give the token the ${accepted} scope, or use a token that has it`
        : permissions
          ? `give the token the ${permissions} permission, or use a token that has it`
          : "give the token the access this needs on the repository (e.g. write), or do it by hand",
      {
        ...details,
        ...(accepted ? { accepted_scopes: accepted } : {}),
        ...(permissions ? { accepted_permissions: permissions } : {}),
      },
    );
  }
  if (ctx.merge && status === 405) {
    const reason = mergeRefusal(ghMessage);
    return new EoaError(
      "GITHUB_NOT_MERGEABLE",
      `GitHub would not ${what}: ${ghMessage}`,
      {
        conflict: "the pull request conflicts with its base: resolve the conflict, then review it again",
        checks: "required status checks have not passed on the head: wait for CI, then review it again",
        approvals: "branch protection requires more approving reviews: a person must approve (and merge) it",
        base_moved: "the base branch moved while GitHub checked the merge: review the pull request again",
        unknown:
          "the pull request is not mergeable: see GitHub's message, resolve that, then review it again",
      }[reason],
      { ...details, reason },
    );
  }
  if (ctx.merge && status === 409) {
    return new EoaError(
      "GITHUB_HEAD_CHANGED",
      `GitHub would not ${what}: ${ghMessage}`,
      "the pull request head moved after the review: review the new head before merging",
      details,
    );
  }
  if (status === 404) {
    return new EoaError(
      "GITHUB_NOT_FOUND",
      `GitHub could not ${what}: not found in ${client.fullName}`,
      `check that it exists in ${client.fullName} and that the token can see the repository`,
      details,
    );
  }
  if (status === 422) {
    const errs = Array.isArray(data.errors) ? (data.errors as unknown[]) : [];
    const texts = errs.map((x) =>
      typeof x === "string"
        ? x
        : (() => {
            const o = x as { message?: string; code?: string; field?: string; resource?: string };
            return o.message ?? [o.resource, o.field, o.code].filter(Boolean).join(" ");
          })(),
    );
    const alreadyExists = errs.some(
      (x) => typeof x === "object" && x !== null && (x as { code?: string }).code === "already_exists",
    );
    const list = texts.length ? `: ${scrub(texts.join("; "))}` : "";
    return new EoaError(
      "GITHUB_VALIDATION",
      `GitHub rejected the request to ${what}: ${ghMessage}${list}`,
      "fix what GitHub reported, then try again",
      { ...details, errors: texts.map(scrub), ...(alreadyExists ? { already_exists: true } : {}) },
    );
  }
  if (status >= 500 || (status === 0 && e.name === "HttpError")) {
    return new EoaError(
      "GITHUB_UNAVAILABLE",
      `GitHub did not answer while trying to ${what} (${status || "no response"}: ${ghMessage})`,
      "GitHub is unreachable or failing: retry on the next poll cycle (see https://www.githubstatus.com)",
      details,
    );
  }
  if (status >= 400) {
    return new EoaError(
      "GITHUB_REQUEST_FAILED",
      `GitHub refused to ${what} (${status} ${ghMessage})`,
      "check the request and the repository state, then try again",
      details,
    );
  }
  return err;
}

function rateLimited(
  client: ClientContext,
  what: string,
  header: (name: string) => string | undefined,
  details: Record<string, unknown>,
): EoaError {
  const reset = header("x-ratelimit-reset");
  const retryAfter = header("retry-after");
  let resetAt: string | undefined;
  if (reset && /^\d+$/.test(reset)) resetAt = new Date(Number(reset) * 1000).toISOString();
  else if (retryAfter && /^\d+$/.test(retryAfter))
    resetAt = new Date(client.now().getTime() + Number(retryAfter) * 1000).toISOString();
  return new EoaError(
    "GITHUB_RATE_LIMITED",
    `GitHub's rate limit stopped an attempt to ${what}${resetAt ? `; it resets at ${resetAt}` : ""}`,
    resetAt
      ? `wait until ${resetAt} before calling GitHub again`
      : "wait a few minutes before calling GitHub again",
    {
      ...details,
      ...(resetAt ? { reset_at: resetAt } : {}),
      ...(retryAfter ? { retry_after_s: Number(retryAfter) } : {}),
    },
  );
}

/**
 * Why GitHub answered 405 to a merge, read from its message: "Pull Request is not mergeable" (a
 * conflict), "Required status check \"ci\" is expected/failing" or "N of M required status checks
 * …" (checks), "At least N approving review(s) … required …" or "Review required" (approvals),
 * "Base branch was modified. Review and try the merge again." (the base moved: review again).
 */
export function mergeRefusal(
  message: string,
): "conflict" | "checks" | "approvals" | "base_moved" | "unknown" {
  // Transient: the base moved while GitHub checked; a new review merges the new state.
  if (/base branch was modified/i.test(message)) return "base_moved";
  if (/approving review|review required|changes requested|approv/i.test(message)) return "approvals";
  if (/status check|required check|checks? (are|is) (expected|failing|pending)/i.test(message))
    return "checks";
  if (/not mergeable|conflict/i.test(message)) return "conflict";
  return "unknown";
}
