import { parseArgs, type ParseArgsConfig } from "node:util";

type Options = NonNullable<ParseArgsConfig["options"]>;
type Values<O extends Options> = ReturnType<
  typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: false }>
>["values"];

/**
 * A rehearsal command's flags (`simulate`, `sandbox`), or the exit code once it has answered by
 * itself: 0 after printing `usage` for --help, 2 after refusing an unknown flag (with the usage, on stderr).
 */
export function commandFlags<O extends Options>(
  argv: string[],
  options: O,
  usage: string,
  out: (line: string) => void,
): { values: Values<O> } | { exit: number } {
  let values: Values<O>;
  try {
    values = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${usage}`);
    return { exit: 2 };
  }
  if ((values as Record<string, unknown>).help) {
    out(usage);
    return { exit: 0 };
  }
  return { values };
}
