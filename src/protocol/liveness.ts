import { minutesBetween } from "../clock.js";

/**
 * Rules 3 and 4: acknowledgement deadlines and heartbeats, decided from plain data.
 */

export type AckVerdict = "ok" | "remind" | "unresponsive";

/**
 * No ack within `ackTimeout` minutes → one reminder; still none half that time after the
 * reminder → the agent is unresponsive for this task.
 */
export function ackVerdict(
  task: { assigned_at?: string; acked_at?: string; ack_reminder_at?: string },
  now: Date,
  ackTimeoutMinutes: number,
): AckVerdict {
  if (!task.assigned_at || task.acked_at) return "ok";
  if (!task.ack_reminder_at) {
    return minutesBetween(task.assigned_at, now) >= ackTimeoutMinutes ? "remind" : "ok";
  }
  return minutesBetween(task.ack_reminder_at, now) >= ackTimeoutMinutes / 2 ? "unresponsive" : "ok";
}

export interface HeartbeatInput {
  availability: "active" | "offline" | "onboarding";
  missed: number;
  /** AI Maestro shows the agent online. */
  online: boolean;
  /** A message from the agent arrived since the previous cycle. */
  messaged: boolean;
}

export interface HeartbeatVerdict {
  missed: number;
  /** The threshold was reached this cycle: handle as mark_agent_offline. */
  goesOffline: boolean;
  /** An offline agent showed life: it is back. */
  comesBack: boolean;
}

/** One poll cycle: any sign of life resets the count; `threshold` consecutive misses take it offline. */
export function heartbeatVerdict(input: HeartbeatInput, threshold: number): HeartbeatVerdict {
  const alive = input.online || input.messaged;
  if (alive) return { missed: 0, goesOffline: false, comesBack: input.availability === "offline" };
  if (input.availability === "offline") return { missed: input.missed, goesOffline: false, comesBack: false };
  const missed = input.missed + 1;
  return { missed, goesOffline: missed >= threshold, comesBack: false };
}
