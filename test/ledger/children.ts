// Parent side of test/helpers/ledger-child.ts: starts the compiled worker as a real OS
// process, reads its JSON lines, and makes sure none outlives the test.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { ChildArgs, ChildReport } from "../helpers/ledger-child.js";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const CHILD_JS = resolve(REPO_ROOT, "dist/test/helpers/ledger-child.js");

export interface LedgerChild {
  proc: ChildProcess;
  ready: Promise<void>;
  /** The race report, once the child printed it (rejects if it dies first). */
  done: () => Promise<ChildReport>;
  /** Resolves with the signal or exit code once the process is gone. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: () => string;
}

const live = new Set<ChildProcess>();

export function startLedgerChild(args: ChildArgs): LedgerChild {
  if (!existsSync(CHILD_JS)) throw new Error(`${CHILD_JS} is missing: run \`npx tsc -p tsconfig.json\` first`);
  const proc = spawn(process.execPath, [CHILD_JS, JSON.stringify(args)], { cwd: REPO_ROOT, stdio: ["pipe", "pipe", "pipe"] });
  live.add(proc);
  let out = "";
  let err = "";
  let onReady: () => void = () => {};
  let onReport: (r: ChildReport) => void = () => {};
  const ready = new Promise<void>((res) => (onReady = res));
  const report = new Promise<ChildReport>((res) => (onReport = res));
  proc.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    out += chunk;
    let nl: number;
    while ((nl = out.indexOf("\n")) >= 0) {
      const text = out.slice(0, nl);
      out = out.slice(nl + 1);
      const msg = JSON.parse(text) as { ready?: boolean; report?: ChildReport };
      if (msg.ready) onReady();
      if (msg.report) onReport(msg.report);
    }
  });
  proc.stderr!.setEncoding("utf8").on("data", (chunk: string) => (err = (err + chunk).slice(-4000)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    // 'close', not 'exit': it comes after the last stdout data, so a report is never missed.
    proc.on("close", (code, signal) => {
      live.delete(proc);
      res({ code, signal });
    }),
  );
  const failIfExits = (what: string) =>
    exited.then(({ code, signal }) => {
      throw new Error(`ledger child exited (${code ?? signal}) before ${what}: ${err}`);
    });
  return {
    proc,
    ready: Promise.race([ready, failIfExits("it was ready")]),
    // A function, so that a child that is killed on purpose leaves no rejected promise behind.
    done: () => Promise.race([report, failIfExits("reporting")]),
    exited,
    stderr: () => err,
  };
}

/** Kills (by pid) every child this module started that is still running. */
export function killAllChildren(): void {
  for (const p of live) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
}
