/**
 * Domain failures: something the orchestrator (or its user) can act on. They become `isError`
 * tool results carrying a stable `code` and a `next_step` sentence; anything else thrown is a
 * programming error and is reported as `INTERNAL`.
 */
export class EoaError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly nextStep: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = "EoaError";
  }
}

export function isEoaError(err: unknown): err is EoaError {
  return err instanceof EoaError;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
