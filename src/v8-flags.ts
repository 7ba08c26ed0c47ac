import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** V8 settings of the server process, set before any other module is loaded (cli.ts loads this first). */

// undici parses HTTP with WebAssembly (llhttp). V8's optimising tier recompiles it in the background
// a few seconds after the first request, and that compilation alone lifted a server's peak memory
// by about 35 MB (VmHWM 102 vs 66 MB for a bare undici request loop). At a handful of requests a
// minute the baseline compiler's code is fast enough.
setFlagsFromString("--liftoff-only");

// Loading a large state allocates tens of megabytes that all live on: V8 answers by doubling its
// young generation up to 2 × 16 MB, which stays resident for the life of the process (VmHWM 124 vs
// 92 MB at 10,000 tasks). Kept at its starting size, the young generation costs no measurable CPU
// here (assign_task, check_messages: the same within noise): the server's work is small objects
// that die young, and the state it keeps goes to the old generation anyway.
setFlagsFromString("--semi-space-growth-factor=1");

// A full collection right after a large state is read (StoreOptions.afterLargeLoad): the text of
// the document (7 MB at 10,000 tasks) and the parse's leftovers would otherwise stay resident until
// V8's next full collection, while the first poll cycle grows the heap around them. V8 hands its
// `gc` only to contexts made after the flag; this one, made at the first use, is not visible to any
// other code.
setFlagsFromString("--expose-gc");
let gc: (() => void) | undefined;
export function collectGarbage(): void {
  (gc ??= runInNewContext("gc") as () => void)();
}
