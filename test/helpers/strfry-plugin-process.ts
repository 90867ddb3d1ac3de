// Drives a strfry write-policy plugin process the way strfry does: one JSON line in,
// wait for one line out. Used by the plugin tests and the plugin benchmark.
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Event } from "nostr-tools";

/** The repository root, found from this file whether it runs from test/ or dist/test/. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "plugin"))) return dir;
    dir = dirname(dir);
  }
  throw new Error("repository root not found above " + fileURLToPath(import.meta.url));
}

export interface StrfryAnswer {
  id: string;
  action: string;
  msg?: string;
}

export type StrfrySourceType = "IP4" | "IP6" | "Import" | "Stream" | "Sync" | "Stored";

/** A request line exactly as strfry writes it (keys in tao::json's sorted order). */
export function strfryLine(event: Event | Record<string, unknown>, sourceType: StrfrySourceType = "IP4", sourceInfo = "127.0.0.1"): string {
  return JSON.stringify({ event, receivedAt: Math.floor(Date.now() / 1000), sourceInfo, sourceType, type: "new" });
}

export class StrfryPluginProcess {
  readonly child: ChildProcessWithoutNullStreams;
  stderr = "";
  /** Every stdout line, in order, parsed or not. */
  readonly stdoutLines: string[] = [];
  private buffered = "";
  private waiters: { resolve: (line: string) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }[] = [];
  private pending: string[] = [];
  private exited: Promise<number | null>;

  constructor(command: string, args: string[], env: NodeJS.ProcessEnv) {
    this.child = spawn(command, args, { env, stdio: ["pipe", "pipe", "pipe"] });
    this.child.stdout.setEncoding("utf8");
    this.child.stderr.setEncoding("utf8");
    this.child.stderr.on("data", (s: string) => {
      // Bounded: tests only look for a few messages.
      if (this.stderr.length < 1_000_000) this.stderr += s;
    });
    this.child.stdout.on("data", (s: string) => this.onStdout(s));
    this.child.stdin.on("error", () => {});
    this.exited = new Promise((resolve) => this.child.once("exit", (code) => resolve(code)));
  }

  private onStdout(s: string): void {
    this.buffered += s;
    let nl: number;
    while ((nl = this.buffered.indexOf("\n")) !== -1) {
      const line = this.buffered.slice(0, nl);
      this.buffered = this.buffered.slice(nl + 1);
      this.stdoutLines.push(line);
      const w = this.waiters.shift();
      if (w) {
        clearTimeout(w.timer);
        w.resolve(line);
      } else this.pending.push(line);
    }
  }

  /** The next answer line, or an error after `timeoutMs`. */
  nextLine(timeoutMs = 10_000): Promise<string> {
    const ready = this.pending.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.timer !== timer);
        reject(new Error(`no answer within ${timeoutMs} ms; stderr: ${this.stderr.slice(-2000)}`));
      }, timeoutMs);
      this.waiters.push({ resolve, reject, timer });
    });
  }

  write(text: string): void {
    this.child.stdin.write(text);
  }

  /** Sends one line and waits for its answer, as strfry's writer thread does. */
  async ask(line: string, timeoutMs?: number): Promise<StrfryAnswer> {
    this.write(line + "\n");
    return JSON.parse(await this.nextLine(timeoutMs)) as StrfryAnswer;
  }

  /** SIGTERM, as strfry sends when it replaces the plugin; resolves with the exit code. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Our plugin, through its executable, with the config at `configPath`. */
export function spawnGatePlugin(configPath: string, extraEnv: NodeJS.ProcessEnv = {}): StrfryPluginProcess {
  const exe = join(repoRoot(), "plugin", "strfry-policy");
  return new StrfryPluginProcess(exe, [], { ...process.env, DVM_GATE_CONFIG: configPath, ...extraEnv });
}
