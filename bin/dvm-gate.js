#!/usr/bin/env node
// The `dvm-gate` executable: runs the compiled CLI (npm run build produces dist/).
import { runCli } from "../dist/src/cli/main.js";

// A reader that went away (`dvm-gate … | head`) is not a reason to crash mid-command:
// output to a broken pipe is dropped, the command runs to its end and exits as usual.
const dropBrokenPipe = (err) => {
  if (err && err.code !== "EPIPE") throw err;
};
process.stdout.on("error", dropBrokenPipe);
process.stderr.on("error", dropBrokenPipe);

const code = await runCli(process.argv.slice(2), {
  out: (t) => process.stdout.write(t + "\n"),
  err: (t) => process.stderr.write(t + "\n"),
});
process.exitCode = code;
// The command has stopped everything it started; a library timer that outlives it
// (nostr-tools leaves some) must not hold the terminal. Exit once stdout is flushed.
if (process.stdout.writable) process.stdout.write("", () => process.exit(code));
else process.exit(code);
