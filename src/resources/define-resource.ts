import type { Runtime } from "../engine/runtime.js";
import type { ResourceBody } from "../response.js";
import type { ReadonlyState } from "../state/store.js";

/**
 * A resource: its URI (or URI template), what it shows, and which top-level state keys change it,
 * so that `notifications/resources/updated` goes out exactly when a subscriber's view changed.
 */
export interface ResourceDefinition {
  name: string;
  uri: string;
  title: string;
  description: string;
  mimeType: "application/json" | "text/markdown";
  /** State keys whose change updates this resource; "*" for any. */
  dependsOn: readonly string[];
  /** The data (rendered, redacted value by value and bounded by the response builder), or null: not found. */
  read(
    rt: Runtime,
    state: ReadonlyState,
    params: Record<string, string>,
  ): Promise<ResourceBody | null> | ResourceBody | null;
}

export function defineResource(def: ResourceDefinition): ResourceDefinition {
  return def;
}

/** Indented for people reading a resource; listings that grow with the night are compact. */
export const json = (value: unknown, compact = false): ResourceBody => ({ json: value, compact });

export const markdown = (text: string): ResourceBody => ({ markdown: text });
