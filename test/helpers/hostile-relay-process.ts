// Starts test/helpers/hostile-relay.ts (compiled, from dist/) as its own process and talks
// to it over stdin/stdout: flood on/off and the counts of what it saw from its clients.
import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { createInterface } from "node:readline";
import { REPO_ROOT } from "./service-process.js";

export interface HostileStats {
  connections: number;
  auths: number;
  events: number;
  reqs: number;
  framesSent: number;
}

export interface HostileRelay {
  url: string;
  pid: number;
  /** "flood on", "flood off" or "stats"; resolves with the counts per behaviour once the relay has done it. */
  command: (cmd: "flood on" | "flood off" | "stats") => Promise<Record<string, HostileStats>>;
  kill: () => Promise<void>;
}

export function startHostileRelay(gatePubkey: string): Promise<HostileRelay> {
  const child = spawn(process.execPath, [resolve(REPO_ROOT, "dist/test/helpers/hostile-relay.js"), "--gate", gatePubkey], {
    cwd: REPO_ROOT,
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout! });
  const waiting: ((line: Record<string, unknown>) => void)[] = [];
  lines.on("line", (l) => {
    if (!l.trim().startsWith("{")) return;
    waiting.shift()?.(JSON.parse(l) as Record<string, unknown>);
  });
  const next = () => new Promise<Record<string, unknown>>((res) => waiting.push(res));
  const exited = new Promise<void>((res) => child.once("exit", () => res()));
  return next().then((info) => ({
    url: String(info.url),
    pid: Number(info.pid),
    command: async (cmd) => {
      const answer = next();
      child.stdin!.write(cmd + "\n");
      return (await answer).stats as Record<string, HostileStats>;
    },
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  }));
}
