// Runs the real `dvm-gate start` (compiled, from bin/) as a child process, so tests can
// SIGKILL it mid-stream and start it again on the same database; and the embedded relay
// as its own process (dist/src/peers/relay-process.js), to kill and restart a relay.
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root, wherever the test runs from (test/helpers or dist/test/helpers). */
export const REPO_ROOT = (() => {
  const here = dirname(fileURLToPath(import.meta.url));
  return here.includes(`${"/dist/"}`) ? resolve(here, "../../..") : resolve(here, "../..");
})();

export interface ChildHandle {
  child: ChildProcess;
  /** The first JSON line the process printed. */
  info: Record<string, unknown>;
  stderr: () => string;
  /** Sends `signal` and waits for the exit; resolves with the exit code (null when killed). */
  kill: (signal?: NodeJS.Signals) => Promise<number | null>;
}

export function runUntilJsonLine(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string; /** Keep the child's stdin open for commands (child.stdin). */ stdin?: boolean },
): Promise<ChildHandle> {
  const child = spawn(process.execPath, args, {
    cwd: opts.cwd ?? REPO_ROOT,
    env: { ...process.env, ...opts.env },
    stdio: [opts.stdin ? "pipe" : "ignore", "pipe", "pipe"],
  });
  let err = "";
  child.stderr!.on("data", (d: Buffer) => {
    err += d.toString();
    if (err.length > 200_000) err = err.slice(-100_000);
  });
  const exited = new Promise<number | null>((res) => child.once("exit", (code) => res(code)));
  return new Promise((resolveStart, reject) => {
    let out = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`child ${args.join(" ")} printed no JSON line in time; stderr: ${err.slice(-2000)}`));
    }, opts.timeoutMs ?? 20_000);
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const line = out.split("\n").find((l) => l.trim().startsWith("{"));
      if (!line) return;
      clearTimeout(timer);
      child.stdout!.removeAllListeners("data");
      child.stdout!.resume();
      resolveStart({
        child,
        info: JSON.parse(line) as Record<string, unknown>,
        stderr: () => err,
        kill: async (signal = "SIGTERM") => {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal);
          return exited;
        },
      });
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`child ${args.join(" ")} exited (${code}) before it was ready; stderr: ${err.slice(-2000)}`));
    });
  });
}

/** `dvm-gate start --config FILE --json`; resolves once it printed its JSON line (it is subscribed by then). */
export function startServiceProcess(configPath: string, env: NodeJS.ProcessEnv = {}): Promise<ChildHandle> {
  return runUntilJsonLine([resolve(REPO_ROOT, "bin/dvm-gate.js"), "start", "--config", configPath, "--json"], { env });
}

/** The embedded relay in its own process on `port` (0: a free one), storing events in `dbPath`. */
export function startRelayProcess(port: number, dbPath: string): Promise<ChildHandle & { url: string; port: number }> {
  return runUntilJsonLine([resolve(REPO_ROOT, "dist/src/peers/relay-process.js"), "--port", String(port), "--db", dbPath], {}).then((h) => ({
    ...h,
    url: String(h.info.url),
    port: Number(h.info.port),
  }));
}

/** Writes a config file for a child service. */
export function writeConfig(path: string, config: Record<string, unknown>): string {
  writeFileSync(path, JSON.stringify(config, null, 2));
  return path;
}
