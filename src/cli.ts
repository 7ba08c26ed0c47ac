#!/usr/bin/env node
// V8's settings first, before any other module is loaded (see v8-flags.ts); then the CLI. A static
// import of main.js would be evaluated before this module's body, and in the bundle before the
// settings too.
import "./v8-flags.js";

// Stack traces (a tool failure's log line, a crash) name src/*.ts lines rather than the bundle's
// chunks. Node reads a module's map as it loads it, so this comes before main.js.
process.setSourceMapsEnabled(true);

await import("./main.js");
