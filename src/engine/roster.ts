import type { Runtime } from "./runtime.js";

/** The configured roster into state (rule 1's agents), through the state machine. */
export async function syncRoster(rt: Runtime): Promise<void> {
  await rt.step({ type: "roster-synced" });
}
