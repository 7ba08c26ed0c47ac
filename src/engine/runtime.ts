import { AsyncLocalStorage } from "node:async_hooks";
import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Clock } from "../clock.js";
import { type Config, secretsOf } from "../config.js";
import { EoaError } from "../errors.js";
import type { Logger } from "../log.js";
import type { DecisionRecord } from "../state/schema.js";
import type { StateStore } from "../state/store.js";
import type { AiMaestroClient } from "../clients/aimaestro.js";
import type { GitHubClient } from "../clients/github.js";
import type { GitMirror } from "../clients/git.js";
import { redactSecrets } from "../protocol/secrets.js";
import { PROCESS_ID, processGone } from "../owner.js";
import { reduce, type EventOf, type ProtocolEvent, type Reduced } from "../protocol/machine/index.js";
import { plain } from "../state/records.js";
import { Outbox } from "./outbox.js";

export interface RuntimeDeps {
  config: Config;
  store: StateStore;
  clock: Clock;
  logger: Logger;
  aimaestro: AiMaestroClient;
  /** Absent when no repository is configured: GitHub-backed features answer with a clear error. */
  github?: GitHubClient | undefined;
  git?: GitMirror | undefined;
}

/** How long a pending idempotency record blocks a replay before it counts as abandoned (a crash). */
const IDEMPOTENCY_PENDING_MS = 10 * 60_000;

/**
 * What every tool and engine operation is handed: config, state, clock, clients, plus the few
 * cross-cutting helpers (redaction, idempotency, snapshots).
 */
export class Runtime {
  readonly config: Config;
  readonly store: StateStore;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly aimaestro: AiMaestroClient;
  private readonly _github: GitHubClient | undefined;
  private readonly _git: GitMirror | undefined;
  private readonly secrets: string[];
  /** Listeners for resources that are not in the state file (reports). */
  readonly extraUpdates = new Set<(uri: string) => void>();
  /** The side effects this runtime makes: recorded by `step`, made after its commit. */
  readonly outbox: Outbox;

  constructor(deps: RuntimeDeps) {
    this.config = deps.config;
    this.store = deps.store;
    this.clock = deps.clock;
    this.logger = deps.logger;
    this.aimaestro = deps.aimaestro;
    this._github = deps.github;
    this._git = deps.git;
    this.secrets = secretsOf(deps.config);
    this.outbox = new Outbox(this);
  }

  /**
   * One event through the protocol's state machine, in one transaction: the state changes, the
   * decisions and the side effects (recorded, claimed by this process) commit together or not at
   * all. The caller hands `effects` to the outbox.
   */
  async step<T extends ProtocolEvent["type"]>(event: EventOf<T>): Promise<Reduced<T>> {
    const now = this.now();
    let decided: DecisionRecord[] = [];
    const out = await this.store.transact((draft) => {
      const reduced = reduce(draft, event, { now, config: this.config, owner: PROCESS_ID });
      // Before the commit can be seen: no retry pass of this process may claim them before the caller.
      this.outbox.reserve(reduced.effects);
      const ids = new Set(reduced.decisions);
      decided = ids.size ? plain(draft.decisions.filter((d) => ids.has(d.id))) : [];
      return reduced;
    });
    const call = this.call.getStore();
    if (call) call.committed = true;
    // One line per decision at info: a night can be watched in its log (issue 13).
    for (const d of decided)
      this.logger.info(`decision ${d.action}${d.task_id ? ` ${d.task_id}` : ""}: ${d.outcome}`, {
        id: d.id,
        rule: d.rule,
        ...(d.agent ? { agent: d.agent } : {}),
      });
    return out;
  }

  /** The tool call under way, and whether it has committed a step yet. */
  private readonly call = new AsyncLocalStorage<{ committed: boolean }>();

  /** Runs one tool call, keeping track of whether it changed the state. */
  inCall<T>(fn: () => Promise<T>): Promise<T> {
    return this.call.run({ committed: false }, fn);
  }

  get github(): GitHubClient {
    if (!this._github) {
      throw new EoaError(
        "GITHUB_NOT_CONFIGURED",
        "no GitHub repository is configured",
        "set EOA_REPO=owner/name and GITHUB_TOKEN (or github.repo / github.token in eoa.config.json), then restart the server",
      );
    }
    return this._github;
  }

  get hasGithub(): boolean {
    return this._github !== undefined;
  }

  get hasGit(): boolean {
    return this._git !== undefined;
  }

  get git(): GitMirror {
    if (!this._git) {
      throw new EoaError(
        "GIT_NOT_CONFIGURED",
        "no git remote is configured",
        "set EOA_REPO (the remote defaults to GitHub's) or EOA_GIT_REMOTE, then restart the server",
      );
    }
    return this._git;
  }

  private registration: Promise<unknown> | undefined;

  /** The orchestrator must be a registered AI Maestro agent, or its messages arrive marked unverified. */
  async orchestratorReady(): Promise<void> {
    this.registration ??= this.aimaestro.ensureRegistered(this.config.orchestrator).catch((err: unknown) => {
      this.registration = undefined;
      throw err;
    });
    await this.registration;
  }

  now(): Date {
    return this.clock.now();
  }

  /** Removes every configured secret (and anything shaped like a token) from text bound for output. */
  redact(text: string): string {
    return redactSecrets(text, this.secrets);
  }

  notifyExtra(uri: string): void {
    for (const l of this.extraUpdates) l(uri);
  }

  /**
   * Runs `fn` once per (tool, key). A replay returns the first result; a replay while the first
   * call is still running is refused. A call that fails before it changed anything leaves no
   * record, so it can be retried; one that fails after a commit keeps its answer (`onError`), so a
   * replay returns it and repeats nothing.
   */
  async idempotent<T extends { isError?: boolean }>(
    tool: string,
    key: string,
    args: unknown,
    fn: () => Promise<T>,
    onError: (err: unknown) => T,
  ): Promise<T> {
    const id = `${tool}:${key}`;
    const argsHash = hash(args);
    const now = this.now();
    const prior = await this.store.transact((draft) => {
      const rec = draft.idempotency[id];
      // A plain copy: the draft is revoked when the transaction ends.
      if (rec?.status === "done") return plain(rec);
      if (
        rec?.status === "pending" &&
        now.getTime() - new Date(rec.at).getTime() < IDEMPOTENCY_PENDING_MS &&
        !processGone((rec.result as { owner?: unknown } | undefined)?.owner)
      ) {
        return plain(rec);
      }
      draft.idempotency[id] = {
        tool,
        status: "pending",
        at: now.toISOString(),
        // The owner lets a replay after a crash run again at once instead of waiting out the window.
        result: { args_hash: argsHash, owner: PROCESS_ID },
      };
      return undefined;
    });
    if (prior?.status === "done") {
      const stored = prior.result as { args_hash: string; value: T };
      if (stored.args_hash !== argsHash) {
        throw new EoaError(
          "IDEMPOTENCY_KEY_REUSED",
          `idempotency_key ${JSON.stringify(key)} was already used for a different ${tool} call`,
          "use a fresh idempotency_key for a different call",
        );
      }
      return stored.value;
    }
    if (prior?.status === "pending") {
      throw new EoaError(
        "IDEMPOTENCY_IN_PROGRESS",
        `a ${tool} call with idempotency_key ${JSON.stringify(key)} is still running`,
        "wait for the first call to finish, then replay to read its result",
      );
    }
    const scope = { committed: false };
    let value: T;
    try {
      value = await this.call.run(scope, fn);
    } catch (err) {
      if (!scope.committed) {
        await this.store.transact((draft) => {
          delete draft.idempotency[id];
        });
        throw err;
      }
      value = onError(err);
    }
    const keep = !value.isError || scope.committed;
    await this.store.transact((draft) => {
      if (!keep) delete draft.idempotency[id];
      else
        draft.idempotency[id] = {
          tool,
          status: "done",
          at: now.toISOString(),
          result: { args_hash: argsHash, value },
        };
    });
    return value;
  }

  /** A copy of the state file for the user to inspect later (e.g. when every agent went offline). */
  async snapshot(reason: string): Promise<string> {
    const state = await this.store.read();
    const dir = join(this.config.stateDir, "snapshots");
    await mkdir(dir, { recursive: true });
    const file = join(dir, `${this.now().toISOString().replace(/[:.]/g, "-")}.json`);
    await writeFile(file, JSON.stringify({ reason, taken_at: this.now().toISOString(), state }, null, 2));
    return file;
  }
}

function hash(v: unknown): string {
  return createHash("sha256")
    .update(JSON.stringify(v ?? null))
    .digest("hex")
    .slice(0, 16);
}
