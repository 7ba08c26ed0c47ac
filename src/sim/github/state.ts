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
  /** Known users by lower-cased login, with their role on the repository ("none": a user without access). */
  readonly collaborators = new Map<string, string>();
  readonly projects: ProjectRec[] = [];
  readonly rerunListeners: ((e: RerunEvent) => void)[] = [];
  readonly rerunLog: RerunEvent[] = [];
  private seq = 1000;
  /** The repository's creation time, for its `created_at`. */
  readonly startedAt: string;

  constructor(readonly opts: GitHubServerOptions) {
    this.clock = opts.clock ?? systemClock;
    this.owner = opts.owner ?? "acme";
    this.repoName = opts.repo ?? "webapp";
    this.login = opts.login ?? "eoa-bot";
    this.defaultBranch = opts.defaultBranch ?? "main";
    this.permissions = opts.permissions ?? { push: true, admin: false };
    this.fullName = `${this.owner}/${this.repoName}`;
    this.htmlRepo = `https://github.com/${this.fullName}`;
    this.startedAt = this.now();
    this.git = opts.gitDir ? new RemoteGit(opts.gitDir, this.clock) : null;
  }

  nextId = () => ++this.seq;
  now = () => this.clock.now().toISOString();
  nextNumber = () => Math.max(0, ...this.issues.keys()) + 1;
  getIssue = (n: string | undefined) => this.issues.get(Number(n));
  repoUrl = (base: string) => `${base}/repos/${this.fullName}`;
  inRepo = (m: string[]) =>
    m[1]?.toLowerCase() === this.owner.toLowerCase() && m[2]?.toLowerCase() === this.repoName.toLowerCase();

  /** A user as GitHub shows one (`simple-user`); its API URLs on this server, its id from its login. */
  user(base: string, name: string) {
    const url = `${base}/users/${encodeURIComponent(name)}`;
    const id = idOf(name);
    return {
      login: name,
      id,
      node_id: `U_${name}`,
      avatar_url: `https://avatars.githubusercontent.com/u/${id}?v=4`,
      gravatar_id: "",
      url,
      html_url: `https://github.com/${name}`,
      followers_url: `${url}/followers`,
      following_url: `${url}/following{/other_user}`,
      gists_url: `${url}/gists{/gist_id}`,
      starred_url: `${url}/starred{/owner}{/repo}`,
      subscriptions_url: `${url}/subscriptions`,
      organizations_url: `${url}/orgs`,
      repos_url: `${url}/repos`,
      events_url: `${url}/events{/privacy}`,
      received_events_url: `${url}/received_events`,
      type: name.endsWith("[bot]")
        ? "Bot"
        : name === this.owner && name !== this.login
          ? "Organization"
          : "User",
      site_admin: false,
    };
  }

  /** How GitHub relates a user to this repository, from who they are here. */
  association(name: string): "OWNER" | "COLLABORATOR" | "CONTRIBUTOR" {
    return name === this.owner ? "OWNER" : name === this.login ? "COLLABORATOR" : "CONTRIBUTOR";
  }

  /** A repository as GitHub shows one (`repository`, and `full-repository` for `GET /repos/{o}/{r}`). */
  repoJson(base: string, fullName = this.fullName) {
    const [ownerLogin, name] = fullName.split("/") as [string, string];
    const url = `${base}/repos/${fullName}`;
    const html = `https://github.com/${fullName}`;
    const id = idOf(fullName);
    const { permissions } = this;
    const open = [...this.issues.values()].filter((i) => i.state === "open").length;
    return {
      id,
      node_id: `R_${id}`,
      name,
      full_name: fullName,
      private: this.opts.private ?? false,
      owner: this.user(base, ownerLogin),
      html_url: html,
      description: null,
      fork: fullName !== this.fullName,
      url,
      forks_url: `${url}/forks`,
      keys_url: `${url}/keys{/key_id}`,
      collaborators_url: `${url}/collaborators{/collaborator}`,
      teams_url: `${url}/teams`,
      hooks_url: `${url}/hooks`,
      issue_events_url: `${url}/issues/events{/number}`,
      events_url: `${url}/events`,
      assignees_url: `${url}/assignees{/user}`,
      branches_url: `${url}/branches{/branch}`,
      tags_url: `${url}/tags`,
      blobs_url: `${url}/git/blobs{/sha}`,
      git_tags_url: `${url}/git/tags{/sha}`,
      git_refs_url: `${url}/git/refs{/sha}`,
      trees_url: `${url}/git/trees{/sha}`,
      statuses_url: `${url}/statuses/{sha}`,
      languages_url: `${url}/languages`,
      stargazers_url: `${url}/stargazers`,
      contributors_url: `${url}/contributors`,
      subscribers_url: `${url}/subscribers`,
      subscription_url: `${url}/subscription`,
      commits_url: `${url}/commits{/sha}`,
      git_commits_url: `${url}/git/commits{/sha}`,
      comments_url: `${url}/comments{/number}`,
      issue_comment_url: `${url}/issues/comments{/number}`,
      contents_url: `${url}/contents/{+path}`,
      compare_url: `${url}/compare/{base}...{head}`,
      merges_url: `${url}/merges`,
      archive_url: `${url}/{archive_format}{/ref}`,
      downloads_url: `${url}/downloads`,
      issues_url: `${url}/issues{/number}`,
      pulls_url: `${url}/pulls{/number}`,
      milestones_url: `${url}/milestones{/number}`,
      notifications_url: `${url}/notifications{?since,all,participating}`,
      labels_url: `${url}/labels{/name}`,
      releases_url: `${url}/releases{/id}`,
      deployments_url: `${url}/deployments`,
      created_at: this.startedAt,
      updated_at: this.startedAt,
      pushed_at: this.startedAt,
      git_url: `git://github.com/${fullName}.git`,
      ssh_url: `git@github.com:${fullName}.git`,
      clone_url: `${html}.git`,
      svn_url: html,
      homepage: null,
      size: 0,
      stargazers_count: 0,
      watchers_count: 0,
      language: null,
      has_issues: true,
      has_projects: true,
      has_downloads: true,
      has_wiki: false,
      has_pages: false,
      has_discussions: false,
      forks_count: 0,
      mirror_url: null,
      archived: false,
      disabled: false,
      open_issues_count: open,
      license: null,
      forks: 0,
      open_issues: open,
      watchers: 0,
      default_branch: this.defaultBranch,
      network_count: 0,
      subscribers_count: 0,
      visibility: this.opts.private ? "private" : "public",
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
