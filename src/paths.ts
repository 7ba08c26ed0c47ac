import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The package's root directory, one above this module wherever it runs: src/ under the tests, and
 * dist/ once built (the bundle's chunks sit beside cli.js).
 */
export const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

/** The built CLI, as the `eoa-mcp` command runs it. */
export const CLI_PATH = join(PACKAGE_ROOT, "dist", "cli.js");
