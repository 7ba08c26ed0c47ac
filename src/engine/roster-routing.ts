import type { MisroutedName } from "../clients/aimaestro.js";
import { EoaError, errorMessage } from "../errors.js";
import type { Runtime } from "./runtime.js";

/**
 * AI Maestro resolves partial names (a last `-` segment, a tmux-style `name_1`), so a roster name
 * with a typo can reach, and deliver mail meant for one agent to, another agent. These compare the
 * agent each roster name reaches with the name itself, for `preflight` and `start_session`.
 */

type Hub = Pick<Runtime, "config" | "aimaestro">;

function rosterNames(rt: Hub): string[] {
  return rt.config.agents.map((a) => a.session ?? a.id);
}

function describe(m: readonly MisroutedName[]): string {
  return m.map((x) => `roster name ${x.name} reaches AI Maestro agent ${x.resolvesTo}`).join("; ");
}

/** The preflight item: fail naming both names of each roster name that reaches another agent. */
export async function rosterRoutingCheck(rt: Hub): Promise<["pass" | "fail", string]> {
  const misrouted = await rt.aimaestro.misroutedNames(rosterNames(rt));
  return misrouted.length
    ? ["fail", `${describe(misrouted)}: mail for it would go to that agent`]
    : ["pass", "every registered roster name reaches the agent of that name"];
}

/**
 * Refuses to start a session while a roster name reaches another agent. A hub that cannot be
 * asked refuses nothing here: dispatch reports it, and preflight fails its item.
 */
export async function refuseMisroutedRoster(rt: Runtime): Promise<void> {
  let misrouted: MisroutedName[];
  try {
    misrouted = await rt.aimaestro.misroutedNames(rosterNames(rt));
  } catch (err) {
    rt.logger.warn("roster names not checked against AI Maestro", { error: errorMessage(err) });
    return;
  }
  if (!misrouted.length) return;
  throw new EoaError(
    "ROSTER_NAME_MISROUTED",
    `${describe(misrouted)} (AI Maestro matches partial names): assignments would go to the wrong agent`,
    "set each roster agent's session to its full AI Maestro name (or register an agent under exactly that name), then call start_session again",
    { misrouted: misrouted.map((m) => ({ roster_name: m.name, resolves_to: m.resolvesTo })) },
  );
}
