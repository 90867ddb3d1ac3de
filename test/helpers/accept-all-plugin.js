#!/usr/bin/env node
// The cheapest possible strfry write-policy plugin (strfry docs/plugins.md): parse the
// line, echo the id, accept. The benchmark's yardstick for our plugin's cost.
import { createInterface } from "node:readline";

const rl = createInterface({ input: process.stdin, terminal: false });
rl.on("line", (line) => {
  let id = "";
  try {
    id = JSON.parse(line).event.id;
  } catch {
    /* answer with an empty id */
  }
  process.stdout.write(JSON.stringify({ id, action: "accept", msg: "" }) + "\n");
});
rl.on("close", () => process.exit(0));
process.on("SIGTERM", () => process.exit(0));
