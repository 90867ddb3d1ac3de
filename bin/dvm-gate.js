#!/usr/bin/env node
// The `dvm-gate` executable: runs the compiled CLI (npm run build produces dist/).
import { runCli } from "../dist/src/cli/main.js";

const code = await runCli(process.argv.slice(2), {
  out: (t) => process.stdout.write(t + "\n"),
  err: (t) => process.stderr.write(t + "\n"),
});
process.exitCode = code;
// The command has stopped everything it started; a library timer that outlives it
// (nostr-tools leaves some) must not hold the terminal. Exit once stdout is flushed.
process.stdout.write("", () => process.exit(code));
