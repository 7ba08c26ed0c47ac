import { readFileSync, writeFileSync } from "node:fs";
import { withReference } from "../src/docs.js";

// Rewrites the README's generated reference block from the code.
const path = new URL("../README.md", import.meta.url);
writeFileSync(path, withReference(readFileSync(path, "utf8")));
console.error("README.md reference regenerated");
