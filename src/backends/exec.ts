// `exec` backend (SPEC §11): one process per job, the job's JSON on stdin, stdout is the
// content, exit 0 is success. The process (and its group) is killed at the deadline or
// on cancellation, and as soon as its output passes the result limit.
import { spawn } from "node:child_process";
import { abortReason, jobPayload, shortReason, type Backend, type BackendJob, type BackendResult, type RunOptions } from "./types.js";
import { decodeUtf8 } from "./read-capped.js";

const STDERR_KEEP_BYTES = 4096;

export class ExecBackend implements Backend {
  readonly type = "exec";
  constructor(private readonly command: string[]) {
    if (command.length === 0) throw new Error("invariant: exec backend without a command");
  }

  run(job: BackendJob, opts: RunOptions): Promise<BackendResult> {
    return new Promise((resolve) => {
      if (opts.signal.aborted) return resolve({ ok: false, reason: abortReason(opts.signal) });
      const [program, ...args] = this.command as [string, ...string[]];
      // Its own process group, so a shell's children die with it.
      const child = spawn(program, args, { stdio: ["pipe", "pipe", "pipe"], detached: true });
      const out: Buffer[] = [];
      let outBytes = 0;
      let err = Buffer.alloc(0);
      let verdict: BackendResult | null = null;
      const kill = (why: BackendResult) => {
        verdict ??= why;
        try {
          if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
        } catch {
          child.kill("SIGKILL");
        }
      };
      const onAbort = () => kill({ ok: false, reason: abortReason(opts.signal) });
      opts.signal.addEventListener("abort", onAbort, { once: true });
      child.stdout.on("data", (d: Buffer) => {
        outBytes += d.byteLength;
        if (outBytes > opts.maxResultBytes) kill({ ok: false, reason: `result too large: the output is over the ${opts.maxResultBytes}-byte limit` });
        else out.push(d);
      });
      child.stderr.on("data", (d: Buffer) => {
        if (err.byteLength < STDERR_KEEP_BYTES) err = Buffer.concat([err, d]).subarray(0, STDERR_KEEP_BYTES);
      });
      child.stdin.on("error", () => {}); // a program that does not read its input is its own business
      child.once("error", (e: NodeJS.ErrnoException) => {
        verdict ??= { ok: false, reason: shortReason(`exec: cannot start ${program}`, e.code ?? e.message) };
      });
      child.once("close", (code, signal) => {
        opts.signal.removeEventListener("abort", onAbort);
        if (verdict) return resolve(verdict);
        const stderr = decodeUtf8(err) ?? "";
        if (code !== 0) return resolve({ ok: false, reason: shortReason(`exec: exit ${code ?? signal}`, stderr) });
        const content = decodeUtf8(Buffer.concat(out));
        if (content === null) return resolve({ ok: false, reason: "exec: the output is not UTF-8 text" });
        resolve({ ok: true, content });
      });
      child.stdin.end(JSON.stringify(jobPayload(job)));
    });
  }
}
