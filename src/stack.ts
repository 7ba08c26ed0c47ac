import { readFileSync } from "node:fs";
import { SourceMap } from "node:module";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * A stack trace whose frames in the bundle (dist/*.js) name their TypeScript sources, read from the
 * bundle's source maps when a trace is logged. Node would do it for every trace with source maps
 * enabled, but then the first trace formatted anywhere, even of an error nobody logs (Node's
 * streams read the stack of every error they are destroyed with: undici closing an idle socket),
 * parses the whole map: 60 ms of CPU and 10 MB in the middle of a tool call.
 */
export function sourceStack(stack: string): string {
  return stack.replace(/file:\/\/[^\s)]+?\.js:\d+:\d+/g, (frame) => {
    const [, url, line, column] = /^(.+):(\d+):(\d+)$/.exec(frame)!;
    const file = fileURLToPath(url!);
    const entry = mapOf(file)?.findEntry(Number(line) - 1, Number(column) - 1);
    if (!entry || !("originalSource" in entry)) return frame;
    return `${resolve(dirname(file), entry.originalSource)}:${entry.originalLine + 1}:${entry.originalColumn + 1}`;
  });
}

const maps = new Map<string, SourceMap | null>();

function mapOf(file: string): SourceMap | null {
  let map = maps.get(file);
  if (map === undefined) {
    try {
      map = new SourceMap(
        JSON.parse(readFileSync(`${file}.map`, "utf8")) as ConstructorParameters<typeof SourceMap>[0],
      );
    } catch {
      map = null; // not bundled, or built without maps: the frame stays as it is
    }
    maps.set(file, map);
  }
  return map;
}
