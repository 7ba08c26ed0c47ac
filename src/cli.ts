#!/usr/bin/env node
// V8's settings first, before any other module is loaded (see v8-flags.ts); then the CLI. A static
// import of main.js would be evaluated before this module's body, and in the bundle before the
// settings too.
import "./v8-flags.js";

// Source maps stay off unless asked for (NODE_OPTIONS=--enable-source-maps, see the README): with
// them on, the first stack trace formatted, even of an error nobody logs (undici closing an idle
// socket), parsed the whole bundle's map, 60 ms of CPU and 10 MB in the middle of a tool call.

await import("./main.js");
