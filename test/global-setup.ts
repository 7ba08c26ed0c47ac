import { existsSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { INSPECTOR_DIR, INSPECTOR_PACKAGE } from "./fixtures/inspector.js";

/**
 * Once before the suite: the MCP Inspector, which the Inspector and sandbox tests drive, is
 * installed in its own package (`tools/inspector`, see there why), not by eoa-mcp's own install.
 * Here rather than in a test's beforeAll, so that two test files never install it at once.
 */
export default function setup(): void {
  if (existsSync(INSPECTOR_PACKAGE)) return;
  const r = spawnSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: INSPECTOR_DIR, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`npm ci in ${INSPECTOR_DIR} failed:\n${r.stderr}`);
}
