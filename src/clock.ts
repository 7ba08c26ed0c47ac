import { readFileSync } from "node:fs";

/** Every timer and timestamp goes through a Clock, so tests and `simulate` can run a night in seconds. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** A clock that only moves when told to. */
export class FakeClock implements Clock {
  private ms: number;
  constructor(start: Date | string = "2025-12-30T22:00:00Z") {
    this.ms = new Date(start).getTime();
  }
  now(): Date {
    return new Date(this.ms);
  }
  advance(minutes: number): void {
    this.ms += minutes * 60_000;
  }
  set(at: Date | string): void {
    this.ms = new Date(at).getTime();
  }
}

export function minutesBetween(from: string | Date, to: string | Date): number {
  return (new Date(to).getTime() - new Date(from).getTime()) / 60_000;
}

/**
 * A clock read from a file holding an ISO time, written by `eoa-mcp simulate` as its night
 * advances, so that a real server process runs on the rehearsal's time (EOA_FAKE_CLOCK_FILE).
 */
export class FileClock implements Clock {
  constructor(private readonly path: string) {}
  now(): Date {
    const text = readFileSync(this.path, "utf8").trim();
    const d = new Date(text);
    if (Number.isNaN(d.getTime()))
      throw new Error(`EOA_FAKE_CLOCK_FILE ${this.path} does not hold an ISO time`);
    return d;
  }
}
