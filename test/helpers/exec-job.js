#!/usr/bin/env node
// An `exec` backend program for the tests: reads the job's JSON on stdin and behaves as
// its first argument says. Knows nothing of dvm-gate beyond SPEC §11's stdin format.
//   ok | fail | sleep PIDFILE | oversize | garbage | slow-ok MS
import { appendFileSync } from "node:fs";

const [mode, arg] = process.argv.slice(2);
// A gate killed with -9 cannot kill its jobs: like a well-behaved program, stop once orphaned.
const parent = process.ppid;
setInterval(() => process.ppid !== parent && process.exit(0), 200).unref();
let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
  const job = JSON.parse(input);
  const text = job.inputs.map((i) => i[0]).join("\n");
  const answer = () => process.stdout.write(`exec:${[...text].reverse().join("")}:${job.kind}:${job.tier}`);
  switch (mode) {
    case "ok":
      return answer();
    case "fail":
      process.stderr.write("boom: the model is not loaded\n");
      return process.exit(3);
    case "sleep":
      appendFileSync(arg, `${process.pid}\n`);
      return setTimeout(() => {}, 3_600_000);
    case "oversize":
      return process.stdout.write("x".repeat(200_000));
    case "garbage":
      return process.stdout.write(Buffer.from([0xff, 0xfe, 0xfd, 0x00, 0xc3]));
    case "slow-ok":
      return setTimeout(answer, Number(arg));
    default:
      process.stderr.write(`unknown mode ${mode}\n`);
      process.exit(2);
  }
});
