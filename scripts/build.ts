import { rm } from "node:fs/promises";
import { build } from "esbuild";

/**
 * `npm run build`: the CLI as one bundle (dist/cli.js, with chunks for what it loads on demand:
 * the simulator, the HTTP transport, the report). Loading some 300 modules one by one cost a start
 * more than the bare SDK server takes in all (issue 16: spawn → initialize 1.37× the bare server).
 * The type check runs before it (tsc, in the same script of package.json).
 */
await rm("dist", { recursive: true, force: true });
await build({
  entryPoints: ["src/cli.ts"],
  outdir: "dist",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  sourcemap: true,
  // Stack traces need only the mappings (read for a logged tool failure, src/stack.ts, or for every
  // trace with NODE_OPTIONS=--enable-source-maps): without the sources' text the maps are 2.7 MB
  // instead of 8.6.
  sourcesContent: false,
  logLevel: "warning",
  // The CommonJS packages in the bundle require Node's built-ins, which an ES module has no
  // `require` for: each chunk gets one. (A dynamic import of a CommonJS package gives only its
  // `default` here, as esbuild cannot know its names: read it through `default`.)
  banner: {
    js: 'import { createRequire as __eoaCreateRequire } from "node:module"; const require = __eoaCreateRequire(import.meta.url);',
  },
});
