import { redactedConfig } from "../config.js";
import { defineResource, json } from "./define-resource.js";

export const configResource = defineResource({
  name: "config",
  uri: "eoa://config",
  title: "Effective configuration",
  description: "The configuration in force (defaults ← file ← environment ← flags), every secret redacted.",
  mimeType: "application/json",
  dependsOn: [],
  read: (rt) => json(redactedConfig(rt.config)),
});
