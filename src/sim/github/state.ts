import { createHash } from "node:crypto";
import { type Clock, systemClock } from "../../clock.js";
import { RemoteGit } from "./git.js";
import type { CheckState, IssueRec, LabelRec, ProjectRec } from "./records.js";
import type { GitHubServerOptions, RecordedCall, RerunEvent } from "./types.js";

export const sha1 = (s: string) => createHash("sha1").update(s).digest("hex");
/** A stable numeric id for a name (users, repositories, workflows named but not registered). */
export const idOf = (s: string) => parseInt(sha1(s).slice(0, 7), 16);

/**
 * Everything the stand-in holds, and the few shapes every resource shares (users, the repository,
 * labels). Each resource module reads and writes it through its routes.
 */
export class SimState {
  readonly clock: Clock;
  readonly owner: string;
  readonly repoName: string;
  readonly login: string;
  readonly defaultBranch: string;
  readonly permissions: { push: boolean; admin: boolean };
  readonly fullName: string;
  readonly htmlRepo: string;
  /** The rehearsal's bare repository, when there is one: PRs whose head is a commit in it are real. */
  readonly git: RemoteGit | null;

  readonly calls: RecordedCall[] = [];
  readonly issues = new Map<number, IssueRec>();
  readonly repoLabels = new Map<string, LabelRec>();
  readonly checks = new Map<string, CheckState>();
  readonly workflows: { id: number; name: string; path: string; state: string; created_at: string }[] = [];
  readonly protections = new Map<string, { requiredChecks: string[]; requiredApprovals: number }>();
  readonly projects: ProjectRec[] = [];
  readonly rerunListeners: ((e: RerunEvent) => void)[] = [];
  readonly rerunLog: RerunEvent[] = [];
  private seq = 1000;

  constructor(readonly opts: GitHubServerOptions) {
    this.clock = opts.clock ?? systemClock;
    this.owner = opts.owner ?? "acme";
    this.repoName = opts.repo ?? "webapp";
    this.login = opts.login ?? "eoa-bot";
    this.defaultBranch = opts.defaultBranch ?? "main";
    this.permissions = opts.permissions ?? { push: true, admin: false };
    this.fullName = `${this.owner}/${this.repoName}`;
    this.htmlRepo = `https://github.com/${this.fullName}`;
    this.git = opts.gitDir ? new RemoteGit(opts.gitDir, this.clock) : null;
  }

  nextId = () => ++this.seq;
  now = () => this.clock.now().toISOString();
  nextNumber = () => Math.max(0, ...this.issues.keys()) + 1;
  getIssue = (n: string | undefined) => this.issues.get(Number(n));
  repoUrl = (base: string) => `${base}/repos/${this.fullName}`;
  inRepo = (m: string[]) =>
    m[1]?.toLowerCase() === this.owner.toLowerCase() && m[2]?.toLowerCase() === this.repoName.toLowerCase();

  user = (name: string) => ({
    login: name,
    id: idOf(name),
    node_id: `U_${name}`,
    type: name.endsWith("[bot]") ? "Bot" : "User",
  });

  repoJson(base: string) {
    const { permissions } = this;
    return {
      id: idOf(this.fullName),
      node_id: `R_${idOf(this.fullName)}`,
      name: this.repoName,
      full_name: this.fullName,
      private: this.opts.private ?? false,
      owner: this.user(this.owner),
      html_url: this.htmlRepo,
      url: this.repoUrl(base),
      default_branch: this.defaultBranch,
      permissions: {
        admin: permissions.admin,
        maintain: permissions.admin,
        push: permissions.push,
        triage: permissions.push,
        pull: true,
      },
    };
  }

  label(name: string): LabelRec {
    const key = name.toLowerCase();
    let rec = this.repoLabels.get(key);
    if (!rec) {
      // As on GitHub, adding an unknown label to an issue creates it.
      const id = this.nextId();
      rec = { id, node_id: `LA_${id}`, name, color: "ededed", description: null, default: false };
      this.repoLabels.set(key, rec);
    }
    return rec;
  }

  labelJson(base: string, name: string) {
    const l = this.label(name);
    return { ...l, url: `${this.repoUrl(base)}/labels/${encodeURIComponent(l.name)}` };
  }

  uniqueLabels(names: string[]): string[] {
    const out: string[] = [];
    for (const n of names) {
      const canonical = this.label(n).name;
      if (!out.includes(canonical)) out.push(canonical);
    }
    return out;
  }

  closeIssue(i: IssueRec, reason = "completed") {
    if (i.state === "closed") return;
    i.state = "closed";
    i.state_reason = reason;
    i.closed_at = this.now();
    i.updated_at = this.now();
  }

  contentByNode(id: string): IssueRec | undefined {
    return [...this.issues.values()].find((i) => i.node_id === id);
  }
}
