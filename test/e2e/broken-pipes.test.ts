// A gate whose log reader goes away (`dvm-gate start 2>&1 | head`, a log shipper that
// died) must still stop on SIGTERM: a write to a broken pipe is not a reason to crash, and
// flushing logs nobody can read is not a reason to hang on exit.
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import WebSocket from "ws";
import { resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { makeTmpDir } from "../helpers/tmp.js";
import { REPO_ROOT } from "../helpers/service-process.js";

import { waitFor, waitForAsync } from "./harness.js";

const BIN = resolve(REPO_ROOT, "bin/dvm-gate.js");
const lockFiles = (dir: string) => (existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".lock.pid")) : []);

/** One REQ answered with EOSE: the relay, and so the gate's process, is serving. */
function relayAnswers(url: string): Promise<boolean> {
  return new Promise((res) => {
    const ws = new WebSocket(url);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      ws.terminate();
      res(ok);
    };
    const timer = setTimeout(() => done(false), 2_000);
    ws.on("open", () => ws.send(JSON.stringify(["REQ", "probe", { kinds: [0], limit: 1 }])));
    ws.on("message", (m) => done(String(m).startsWith('["EOSE"')));
    ws.on("error", () => done(false));
  });
}

describe("start with both output pipes broken", () => {
  const tmp = makeTmpDir("dvm-gate-pipes-");
  afterAll(() => tmp.remove());

  it("still stops cleanly on SIGTERM and releases its lock", { timeout: 60_000 }, async () => {
    const env = { ...process.env };
    delete env.DVM_GATE_CONFIG;
    delete env.DVM_GATE_NSEC;
    // One pipe for stdout and stderr, as `2>&1 | head -c 100` makes.
    const child = spawn("/bin/sh", ["-c", `exec "${process.execPath}" "${BIN}" start 2>&1`], { cwd: tmp.path, env, stdio: ["ignore", "pipe", "inherit"] });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once("exit", (code, signal) => r({ code, signal })));
    // Close our end after the first bytes, as `head -c 100` does: the rest of the start-up
    // logs and the guide are written into a broken pipe.
    await new Promise<void>((res) => child.stdout!.once("data", () => res()));
    child.stdout!.destroy();
    // Control: the gate is up and its event loop runs (its embedded relay answers), so the
    // writes into the broken pipe have had their chance to crash or wedge it.
    const dataDir = resolve(tmp.path, "data");
    const relayUrlFile = resolve(dataDir, "relay-url.txt");
    await waitFor(() => (existsSync(relayUrlFile) ? true : null), 30_000, "the demo relay's url file");
    const relayUrl = readFileSync(relayUrlFile, "utf8").trim();
    await waitForAsync(async () => ((await relayAnswers(relayUrl)) ? true : null), 30_000, "the demo relay answering");
    await waitFor(() => (lockFiles(dataDir).length === 1 ? true : null), 30_000, "the serve lock");
    child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    const r = await exited;
    clearTimeout(killer);
    // A hang is ended by SIGKILL above and reported here as a signal.
    expect(r.signal).toBeNull();
    expect(lockFiles(dataDir)).toEqual([]);
  });
});
