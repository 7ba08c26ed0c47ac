import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ciState,
  decideReview,
  gate1,
  gate2Local,
  type CheckRunView,
  type DecisionInput,
  type Gate1Input,
  type Gate1Result,
  type Gate2Input,
  countersForHead,
} from "../src/protocol/gates.js";
import type { Finding } from "../src/state/schema.js";

/** Rule 6 from plain data: both gates and the decision table, limits at their boundaries. */

const OK = { implements_request: true, no_scope_creep: true, interface_contract_met: true };

function g1(over: Partial<Gate1Input> = {}): Gate1Input {
  return {
    taskId: "GH-101",
    issueNumber: 101,
    pr: {
      title: "GH-101: User Authentication",
      body: "Login with hashed passwords.",
      headRef: "feature/auth",
    },
    files: ["src/auth/login.py", "tests/auth.test"],
    filesInScope: ["src/auth/**", "tests/**"],
    protectedPaths: [],
    completionCriteria: ["Users can log in"],
    assessment: OK,
    ...over,
  };
}

describe("gate1", () => {
  it("passes with a reference, files in scope and a favourable assessment", () => {
    expect(gate1(g1())).toEqual({ status: "pass", findings: [], protectedTouched: [] });
  });

  it("is pending, not passed, while only the orchestrator's assessment is missing", () => {
    expect(gate1(g1({ assessment: undefined }))).toEqual({
      status: "pending",
      findings: [],
      protectedTouched: [],
    });
  });

  it("fails without an assessment when a mechanical check fails", () => {
    const r = gate1(g1({ assessment: undefined, files: ["src/billing/charge.py"] }));
    expect(r.status).toBe("fail");
  });

  it.each([
    ["the title", { title: "GH-101 login", body: "", headRef: "x" }],
    ["the body", { title: "Login", body: "Implements gh-101.", headRef: "x" }],
    ["the branch", { title: "Login", body: "", headRef: "gh-101-auth" }],
    ["the issue number", { title: "Login", body: "Closes #101", headRef: "x" }],
  ])("accepts a task reference in %s", (_where, pr) => {
    expect(gate1(g1({ pr })).findings).toEqual([]);
  });

  it.each([
    ["another task id", { title: "GH-1010: login", body: "", headRef: "x" }],
    ["a longer issue number", { title: "Login", body: "Closes #1010", headRef: "x" }],
    ["an id glued to a word", { title: "xGH-101 login", body: "", headRef: "x" }],
    ["nothing at all", { title: "Login", body: "", headRef: "feature/auth" }],
  ])("refuses %s as a task reference", (_what, pr) => {
    const r = gate1(g1({ pr }));
    expect(r.status).toBe("fail");
    expect(r.findings).toEqual([expect.objectContaining({ gate: 1, check: "task_reference" })]);
    expect(r.findings[0]!.message).toContain("GH-101");
  });

  it("needs the task id when the task has no issue", () => {
    const pr = { title: "Login", body: "Closes #101", headRef: "x" };
    expect(gate1(g1({ issueNumber: undefined, pr })).findings[0]?.check).toBe("task_reference");
    expect(
      gate1(g1({ taskId: "T-1", issueNumber: undefined, pr: { ...pr, title: "T-1 login" } })).status,
    ).toBe("pass");
  });

  it("names every file outside the declared scope", () => {
    const r = gate1(
      g1({ files: ["src/auth/login.py", "src/billing/charge.py", ".github/workflows/ci.yml"] }),
    );
    expect(r.status).toBe("fail");
    expect(r.findings.map((f) => [f.check, f.file])).toEqual([
      ["scope", "src/billing/charge.py"],
      ["scope", ".github/workflows/ci.yml"],
    ]);
  });

  it("matches dot files inside the scope and checks nothing without a declared scope", () => {
    expect(gate1(g1({ files: ["src/auth/.env.example"] })).status).toBe("pass");
    expect(gate1(g1({ filesInScope: [], files: ["anything/at/all.py"] })).status).toBe("pass");
  });

  it("reports protected paths touched without failing the gate", () => {
    const r = gate1(
      g1({
        protectedPaths: ["src/auth/crypto/**", "migrations/**"],
        files: ["src/auth/crypto/hash.py", "src/auth/login.py"],
      }),
    );
    expect(r).toEqual({ status: "pass", findings: [], protectedTouched: ["src/auth/crypto/hash.py"] });
  });

  it("fails on every unchecked item of the PR's checklist and accepts checked ones", () => {
    const body =
      "GH-101\n- [x] Users can log in\n- [ ] Passwords are hashed\n* [ ] Rate limit logins\n- [X] Docs";
    const r = gate1(g1({ pr: { title: "Login", body, headRef: "x" } }));
    expect(r.findings.map((f) => [f.check, f.message])).toEqual([
      ["completion_criteria", 'the PR\'s checklist leaves "Passwords are hashed" unchecked'],
      ["completion_criteria", 'the PR\'s checklist leaves "Rate limit logins" unchecked'],
    ]);
  });

  it.each([
    ["implements_request", "implements_request"],
    ["no_scope_creep", "no_scope_creep"],
    ["interface_contract_met", "interface_contract"],
  ] as const)("fails when the assessment says %s is false, carrying the notes", (field, check) => {
    const r = gate1(g1({ assessment: { ...OK, [field]: false, notes: "see the reset flow" } }));
    expect(r.status).toBe("fail");
    expect(r.findings).toEqual([expect.objectContaining({ gate: 1, check })]);
    expect(r.findings[0]!.message).toContain("see the reset flow");
  });
});

describe("ciState", () => {
  const run = (status: string, conclusion: string | null, name = "build"): CheckRunView => ({
    name,
    status,
    conclusion,
  });

  it("treats no check runs as pending when workflows exist, as passing when none do", () => {
    expect(ciState([], true)).toEqual({ state: "pending", failed: [], pending: [] });
    expect(ciState([], false)).toEqual({ state: "pass", failed: [], pending: [] });
  });

  it.each(["success", "neutral", "skipped"])("counts %s as success", (c) => {
    expect(ciState([run("completed", c)], true).state).toBe("pass");
  });

  it.each(["failure", "cancelled", "timed_out", "action_required", "startup_failure", "stale", null])(
    "counts a completed run concluding %s as failed",
    (c) => {
      const r = ciState([run("completed", "success", "lint"), run("completed", c)], true);
      expect(r.state).toBe("fail");
      expect(r.failed.map((x) => x.name)).toEqual(["build"]);
    },
  );

  it.each(["queued", "in_progress", "waiting", "requested", "pending"])("waits for a run %s", (s) => {
    const r = ciState([run("completed", "success", "lint"), run(s, null)], true);
    expect(r.state).toBe("pending");
    expect(r.pending.map((x) => x.name)).toEqual(["build"]);
  });

  it("reports a failure even while other runs are still pending", () => {
    const r = ciState([run("in_progress", null, "e2e"), run("completed", "failure")], true);
    expect(r).toMatchObject({ state: "fail", failed: [{ name: "build" }], pending: [{ name: "e2e" }] });
  });
});

describe("gate2Local", () => {
  function g2(over: Partial<Gate2Input> = {}): Gate2Input {
    return {
      commands: [
        { name: "test", command: "npm test", exitCode: 0, timedOut: false, outputTail: "12 passed" },
        { name: "lint", command: "npm run lint", exitCode: 0, timedOut: false, outputTail: "" },
      ],
      coverage: { percent: 85, source: "coverage/coverage-summary.json" },
      coverageThreshold: 80,
      coverageRequired: true,
      secrets: [],
      diffTruncated: false,
      ...over,
    };
  }

  it("finds nothing when commands pass, coverage is enough and the diff is clean", () => {
    expect(gate2Local(g2())).toEqual([]);
  });

  it("reports a failing command with its exit code and the log tail", () => {
    const out = "x".repeat(3000) + "\n1 failed: test_login";
    const f = gate2Local(
      g2({
        commands: [{ name: "test", command: "npm test", exitCode: 1, timedOut: false, outputTail: out }],
      }),
    );
    expect(f).toEqual([
      { gate: 2, check: "test", message: "`npm test` exited with 1", log_tail: out.slice(-2000) },
    ]);
    expect(f[0]!.log_tail).toHaveLength(2000);
    expect(f[0]!.log_tail).toContain("1 failed: test_login");
  });

  it("reports a killed command: by a signal, and after a timeout even with exit 0", () => {
    const f = gate2Local(
      g2({
        commands: [
          { name: "lint", command: "lint", exitCode: null, timedOut: false, outputTail: "" },
          { name: "test", command: "sleep 600", exitCode: 0, timedOut: true, outputTail: "" },
        ],
      }),
    );
    expect(f.map((x) => [x.check, x.message])).toEqual([
      ["lint", "`lint` exited with a signal"],
      ["test", "`sleep 600` did not finish in time and was stopped"],
    ]);
  });

  it("holds coverage to the threshold: equal passes, a tenth below fails", () => {
    expect(gate2Local(g2({ coverage: { percent: 80, source: "lcov.info" } }))).toEqual([]);
    const f = gate2Local(g2({ coverage: { percent: 79.9, source: "lcov.info" } }));
    expect(f).toEqual([
      { gate: 2, check: "coverage", message: "coverage 79.9% is below the 80% threshold (lcov.info)" },
    ]);
  });

  it("asks for a coverage report only when a command should have written one", () => {
    expect(gate2Local(g2({ coverage: null }))).toEqual([
      expect.objectContaining({ check: "coverage", message: expect.stringMatching(/no coverage report/) }),
    ]);
    expect(gate2Local(g2({ coverage: null, coverageRequired: false }))).toEqual([]);
    expect(gate2Local(g2({ coverage: { percent: 10, source: "x" }, coverageRequired: false }))).toEqual([]);
  });

  it("reports each secret with file and line, and a diff too large to scan", () => {
    const f = gate2Local(
      g2({
        secrets: [
          { file: "src/config.py", line: 2, kind: "github_token", excerpt: 'token = "ghp_****"' },
          {
            file: "deploy/key.pem",
            line: 1,
            kind: "private_key",
            excerpt: "-----BEGIN RSA PRIVATE KEY-----",
          },
        ],
        diffTruncated: true,
      }),
    );
    expect(f).toEqual([
      {
        gate: 2,
        check: "secrets",
        file: "src/config.py",
        line: 2,
        message: 'possible github_token committed: token = "ghp_****"',
      },
      expect.objectContaining({ check: "secrets", file: "deploy/key.pem", line: 1 }),
      expect.objectContaining({ check: "secrets", message: expect.stringMatching(/too large to scan/) }),
    ]);
  });
});

describe("decideReview", () => {
  const PASS1: Gate1Result = { status: "pass", findings: [], protectedTouched: [] };
  const PENDING1: Gate1Result = { status: "pending", findings: [], protectedTouched: [] };
  const scope: Finding = {
    gate: 1,
    check: "scope",
    file: "src/billing/charge.py",
    message: "outside the scope",
  };
  const lint: Finding = { gate: 2, check: "lint", message: "`lint` exited with 1", log_tail: "E501" };
  const red: CheckRunView = {
    name: "build",
    status: "completed",
    conclusion: "failure",
    url: "https://ci/1",
    summary: "2 failed",
  };

  function d(over: Partial<DecisionInput> = {}): DecisionInput {
    return {
      gate1: PASS1,
      gate2Findings: [],
      ci: { state: "pass", failed: [] },
      conflict: false,
      mergeableUnknown: false,
      effort: "m",
      merge: true,
      counters: { fix_rounds: 0, ci_polls: 0, ci_failures: 0 },
      ciPollCounts: true,
      limits: { max_fix_rounds: 5, ci_poll_attempts: 5, max_retry_attempts: 3 },
      ...over,
    };
  }
  const counters = (c: Partial<DecisionInput["counters"]>) => ({
    counters: { fix_rounds: 0, ci_polls: 0, ci_failures: 0, ...c },
  });

  it("merges when both gates pass, or only approves when merging is off", () => {
    expect(decideReview(d())).toEqual({
      decision: "merge",
      gate1: "pass",
      gate2: "pass",
      findings: [],
      reason: "both gates pass",
    });
    expect(decideReview(d({ merge: false })).decision).toBe("approve");
  });

  it("never resolves a conflict, whatever else fails", () => {
    const r = decideReview(
      d({
        conflict: true,
        gate2Findings: [lint],
        ci: { state: "fail", failed: [red] },
        ...counters({ fix_rounds: 9 }),
      }),
    );
    expect(r).toMatchObject({ decision: "merge_conflict", gate2: "fail", findings: [lint] });
  });

  it("sends code findings back with the CI failures attached, before retrying CI", () => {
    const r = decideReview(
      d({
        gate1: { status: "fail", findings: [scope], protectedTouched: [] },
        gate2Findings: [lint],
        ci: { state: "fail", failed: [red] },
      }),
    );
    expect(r.decision).toBe("fix_request");
    expect(r).toMatchObject({ gate1: "fail", gate2: "fail" });
    expect(r.findings).toEqual([
      scope,
      lint,
      {
        gate: 2,
        check: "build",
        message: 'CI check "build" concluded failure: 2 failed',
        url: "https://ci/1",
      },
    ]);
  });

  it("sends code findings back even while CI is pending", () => {
    expect(decideReview(d({ gate2Findings: [lint], ci: { state: "pending", failed: [] } })).decision).toBe(
      "fix_request",
    );
  });

  it.each([
    [0, "fix_request"],
    [4, "fix_request"],
    [5, "escalate_fix_rounds"],
    [7, "escalate_fix_rounds"],
  ])("with %i fix rounds used (max 5) → %s", (fix_rounds, decision) => {
    const r = decideReview(d({ gate2Findings: [lint], ...counters({ fix_rounds }) }));
    expect(r.decision).toBe(decision);
    expect(r.findings).toEqual([lint]);
  });

  it.each([
    [0, "ci_rerun"],
    [2, "ci_rerun"],
    [3, "ci_failed_blocked"],
  ])("failing CI with %i failures so far (3 retries allowed) → %s", (ci_failures, decision) => {
    const r = decideReview(d({ ci: { state: "fail", failed: [red] }, ...counters({ ci_failures }) }));
    expect(r).toMatchObject({ decision, gate1: "pass", gate2: "fail" });
    expect(r.findings).toEqual([expect.objectContaining({ check: "build", url: "https://ci/1" })]);
  });

  it("retries failing CI before asking for the assessment", () => {
    expect(decideReview(d({ gate1: PENDING1, ci: { state: "fail", failed: [red] } })).decision).toBe(
      "ci_rerun",
    );
  });

  it.each([
    [0, "ci_pending"],
    [4, "ci_pending"],
    [5, "ci_blocked"],
  ])("pending CI after %i polls (5 allowed) → %s", (ci_polls, decision) => {
    const r = decideReview(d({ ci: { state: "pending", failed: [] }, ...counters({ ci_polls }) }));
    expect(r).toMatchObject({ decision, gate2: "pending", findings: [] });
    if (decision === "ci_blocked") expect(r.reason).toMatch(/CI blocked/);
  });

  it("a poll within the same interval counts nothing: never CI blocked by calling again", () => {
    const r = decideReview(
      d({ ci: { state: "pending", failed: [] }, ...counters({ ci_polls: 5 }), ciPollCounts: false }),
    );
    expect(r.decision).toBe("ci_pending");
  });

  it("waits on GitHub's mergeability computation like on pending CI", () => {
    expect(decideReview(d({ mergeableUnknown: true })).decision).toBe("mergeability_pending");
    expect(decideReview(d({ mergeableUnknown: true })).gate2).toBe("pending");
    expect(decideReview(d({ mergeableUnknown: true, ...counters({ ci_polls: 5 }) })).decision).toBe(
      "ci_blocked",
    );
  });

  it("asks for the orchestrator's assessment only once every mechanical check passed", () => {
    const r = decideReview(d({ gate1: PENDING1, effort: "xl" }));
    expect(r).toMatchObject({ decision: "awaiting_assessment", gate1: "pending", gate2: "pass" });
    expect(decideReview(d({ gate1: PENDING1, ci: { state: "pending", failed: [] } })).decision).toBe(
      "ci_pending",
    );
  });

  it.each([
    ["l", "human_review"],
    ["xl", "human_review"],
    ["m", "merge"],
    ["s", "merge"],
    ["xs", "merge"],
    [undefined, "merge"],
  ] as const)("effort %s → %s", (effort, decision) => {
    const r = decideReview(d({ effort }));
    expect(r.decision).toBe(decision);
    if (decision === "human_review") expect(r.reason).toContain(effort);
  });

  it("stops protected work at a human even when merging is off", () => {
    const r = decideReview(
      d({ merge: false, gate1: { ...PASS1, protectedTouched: ["migrations/001.sql"] } }),
    );
    expect(r).toMatchObject({ decision: "human_review", gate1: "pass", gate2: "pass" });
    expect(r.reason).toContain("migrations/001.sql");
  });

  it("never merges or approves unless both gates passed (property)", () => {
    const finding = fc.constantFrom(scope, lint);
    // Weighted towards passing inputs, so that merges and approvals (the cases the property guards)
    // come up often; the decisions seen are checked at the end.
    const often = <T>(value: T, others: fc.Arbitrary<T>) =>
      fc.oneof({ weight: 3, arbitrary: fc.constant(value) }, { weight: 1, arbitrary: others });
    const seen = new Set<string>();
    fc.assert(
      fc.property(
        fc.record({
          g1: often(
            PASS1,
            fc.constantFrom<Gate1Result>(
              PENDING1,
              { status: "fail", findings: [scope], protectedTouched: [] },
              { ...PASS1, protectedTouched: ["p"] },
            ),
          ),
          g2: often([], fc.array(finding, { minLength: 1, maxLength: 2 })),
          ci: often("pass", fc.constantFrom<"pass" | "pending" | "fail">("pending", "fail")),
          conflict: often(false, fc.constant(true)),
          unknown: often(false, fc.constant(true)),
          effort: fc.constantFrom("xs", "s", "m", "l", "xl", undefined),
          merge: fc.boolean(),
          fix: fc.nat(8),
          polls: fc.nat(8),
          failures: fc.nat(8),
        }),
        (x) => {
          const r = decideReview(
            d({
              gate1: x.g1,
              gate2Findings: x.g2,
              ci: { state: x.ci, failed: x.ci === "fail" ? [red] : [] },
              conflict: x.conflict,
              mergeableUnknown: x.unknown,
              effort: x.effort,
              merge: x.merge,
              counters: { fix_rounds: x.fix, ci_polls: x.polls, ci_failures: x.failures },
            }),
          );
          if (r.decision === "merge" || r.decision === "approve" || r.decision === "human_review") {
            expect(r).toMatchObject({ gate1: "pass", gate2: "pass" });
            expect(x.conflict || x.unknown || x.ci !== "pass" || x.g2.length > 0).toBe(false);
          }
          if (r.decision === "merge")
            expect(
              x.merge && x.g1.protectedTouched.length === 0 && x.effort !== "l" && x.effort !== "xl",
            ).toBe(true);
          if (x.conflict) expect(r.decision).toBe("merge_conflict");
          seen.add(r.decision);
        },
      ),
      { numRuns: 300 },
    );
    expect([...seen]).toEqual(expect.arrayContaining(["merge", "approve", "human_review", "merge_conflict"]));
  });
});

describe("countersForHead", () => {
  const task = { fix_rounds: 2, ci_polls: 3, ci_failures: 1, review_head: "a".repeat(40) };
  it("keeps the CI counters for the head they were counted on", () => {
    expect(countersForHead(task, "a".repeat(40))).toEqual({ fix_rounds: 2, ci_polls: 3, ci_failures: 1 });
  });
  it("starts CI polls and failures afresh on a new head; fix rounds run on", () => {
    expect(countersForHead(task, "b".repeat(40))).toEqual({ fix_rounds: 2, ci_polls: 0, ci_failures: 0 });
    expect(countersForHead({ ...task, review_head: undefined }, "a".repeat(40))).toEqual({
      fix_rounds: 2,
      ci_polls: 0,
      ci_failures: 0,
    });
  });
});
