import { z } from "zod";

/**
 * The agent roster: from the config's `roster` array or an AGENT_ROSTER.md file.
 *
 * AGENT_ROSTER.md is a markdown table in the style of the protocol's own tables, one agent a row:
 *
 * | Agent | Session | Capabilities | Max Concurrent Tasks | Backup | Status |
 * |-------|---------|--------------|----------------------|--------|--------|
 * | dev-agent-1 | dev-agent-1 | python, auth, api | 3 | dev-agent-2 | active |
 *
 * Only the Agent and Capabilities columns are required; headers are matched loosely
 * ("Agent ID", "Skills", "Max Tasks", "Backup Agents", "AI Maestro" ...). Lists are comma-separated.
 * An optional GitHub column names the agent's GitHub login, for preflight to check its permission
 * on the repository.
 */

export const RosterAgentSchema = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, "letters, digits, '.', '_' or '-'"),
  session: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/)
    .optional(),
  capabilities: z.array(z.string().min(1).max(100)).min(1, "an agent needs at least one capability"),
  max_concurrent_tasks: z.number().int().min(1).max(50).optional(),
  backup: z.array(z.string().min(1)).optional(),
  onboarding: z.boolean().optional(),
  /** The agent's GitHub login: preflight checks it may push to the repository. */
  github: z
    .string()
    .regex(/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$/, "a GitHub login (letters, digits and '-')")
    .optional(),
});

export type RosterAgent = z.infer<typeof RosterAgentSchema>;

const COLUMNS: Record<string, RegExp> = {
  id: /^(agent|agent id|agent name|name|id)$/,
  session: /^(session|ai maestro|ai maestro name|aimaestro|address)$/,
  capabilities: /^(capabilities|skills|capability|strengths)$/,
  max: /^(max concurrent tasks|max concurrent|max tasks|limit|task limit)$/,
  backup: /^(backup|backups|backup agent|backup agents)$/,
  status: /^(status|availability)$/,
  github: /^(github|github login|github user|github username)$/,
};

export function parseRosterMarkdown(text: string): RosterAgent[] {
  // The file may hold other tables (a capability legend, a change log): the agent table is the
  // first one with an Agent column, else the first one, whose header the errors below quote.
  const tables: string[][] = [];
  let current: string[] | undefined;
  for (const line of text.split(/\r?\n/).map((l) => l.trim())) {
    if (!line.startsWith("|")) current = undefined;
    else if (current) current.push(line);
    else tables.push((current = [line]));
  }
  const cells = (line: string) =>
    line
      .replace(/^\|/, "")
      .replace(/\|$/, "")
      .split("|")
      .map((c) => c.trim());
  const columnsOf = (headerRow: string) => {
    const header = cells(headerRow).map((h) =>
      h.toLowerCase().replace(/[*`]/g, "").replace(/_/g, " ").trim(),
    );
    const found: Record<string, number> = {};
    header.forEach((h, i) => {
      for (const [key, re] of Object.entries(COLUMNS))
        if (re.test(h) && found[key] === undefined) found[key] = i;
    });
    return found;
  };
  const rows =
    tables.find((t) => t.length >= 2 && columnsOf(t[0]!).id !== undefined) ??
    tables.find((t) => t.length >= 2);
  if (!rows) throw new Error("no agent table found (expected a markdown table with a header row)");
  const col = columnsOf(rows[0]!);
  if (col.id === undefined) throw new Error(`the table has no Agent column (header: ${rows[0]})`);
  if (col.capabilities === undefined)
    throw new Error(`the table has no Capabilities column (header: ${rows[0]})`);
  if (!/^\|?\s*:?-{3,}/.test(rows[1]!))
    throw new Error("the header row is not followed by a |---| separator row");

  const agents: RosterAgent[] = [];
  rows.slice(2).forEach((line, i) => {
    const c = cells(line);
    const get = (k: string) => (col[k] === undefined ? "" : (c[col[k]!] ?? "").replace(/`/g, "").trim());
    const list = (v: string) =>
      v
        .split(/[,;]/)
        .map((s) => s.trim())
        .filter((s) => s && s !== "-" && s.toLowerCase() !== "none");
    const maxText = get("max");
    const candidate = {
      id: get("id"),
      ...(get("session") && get("session") !== "-" ? { session: get("session") } : {}),
      capabilities: list(get("capabilities")),
      ...(maxText && maxText !== "-" ? { max_concurrent_tasks: Number(maxText) } : {}),
      ...(list(get("backup")).length ? { backup: list(get("backup")) } : {}),
      ...(/onboard/i.test(get("status")) ? { onboarding: true } : {}),
      ...(get("github") && get("github") !== "-" ? { github: get("github").replace(/^@/, "") } : {}),
    };
    const parsed = RosterAgentSchema.safeParse(candidate);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new Error(`row ${i + 1} (${line}): ${issue.path.join(".") || "row"}: ${issue.message}`);
    }
    agents.push(parsed.data);
  });
  if (agents.length === 0) throw new Error("the agent table has no rows");
  return agents;
}

/** Renders the roster as AGENT_ROSTER.md, the same table the parser reads. */
export function renderRosterMarkdown(
  agents: Array<{
    id: string;
    session: string;
    capabilities: string[];
    max_concurrent_tasks: number;
    backup: string[];
    availability: string;
    load: number;
    missed_heartbeats: number;
    last_seen?: string;
  }>,
): string {
  const lines = [
    "# AGENT_ROSTER",
    "",
    "| Agent | Session | Capabilities | Max Concurrent Tasks | Backup | Status | Load | Missed Heartbeats | Last Seen |",
    "|-------|---------|--------------|----------------------|--------|--------|------|-------------------|-----------|",
  ];
  for (const a of agents) {
    lines.push(
      `| ${a.id} | ${a.session} | ${a.capabilities.join(", ")} | ${a.max_concurrent_tasks} | ${a.backup.join(", ") || "-"} | ${a.availability} | ${a.load}/${a.max_concurrent_tasks} | ${a.missed_heartbeats} | ${a.last_seen ?? "-"} |`,
    );
  }
  return lines.join("\n") + "\n";
}
