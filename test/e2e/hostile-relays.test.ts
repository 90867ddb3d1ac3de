// Relays are peers, not trusted parts (SPEC §4): a real `dvm-gate start` process beside an
// honest relay (its own process) and a hostile one (test/helpers/hostile-relay.ts, its own
// process) that is both configured and named in customers' `relays` tags, with every
// misbehaviour at once: AUTH it cannot pass, malformed frames, 1 MB events, bad
// signatures, silence, NOTICE spam, dropped and refused connections. The gate never exits,
// customers on the honest relay are answered throughout, a restart with undelivered
// replies to the hostile relay keeps running and gives them up, the logs stay JSON and
// the memory comes back.
import { afterEach, describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { resolve } from "node:path";
import Database from "better-sqlite3";
import { generateSecretKey, getPublicKey, type Event } from "nostr-tools/pure";
import { parseConfig } from "../../src/config/load.js";
import { ledgerSettings } from "../../src/cli/context.js";
import { Ledger } from "../../src/ledger/ledger.js";
import { makeTmpDir } from "../helpers/tmp.js";
import { REPO_ROOT, startRelayProcess, writeConfig } from "../helpers/service-process.js";
import { startHostileRelay, type HostileRelay } from "../helpers/hostile-relay-process.js";
import { Customer, waitFor, waitForAsync } from "./harness.js";

interface GateProcess {
  child: ChildProcess;
  pid: number;
  exited: () => boolean;
  kill: (signal: NodeJS.Signals) => Promise<void>;
}

/** `dvm-gate start` with its stderr (the logs) appended to `logPath`, byte for byte. */
function startGateProcess(configPath: string, logPath: string, stdout: string[]): Promise<GateProcess> {
  const fd = openSync(logPath, "a");
  const child = spawn(process.execPath, [resolve(REPO_ROOT, "bin/dvm-gate.js"), "start", "--config", configPath, "--json"], {
    cwd: REPO_ROOT,
    stdio: ["ignore", "pipe", fd],
  });
  closeSync(fd);
  const exit = new Promise<void>((res) => child.once("exit", () => res()));
  let out = "";
  let ready = false;
  return new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`gate printed no JSON line in time: ${readFileSync(logPath, "utf8").slice(-3000)}`)), 20_000);
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const lines = out.split("\n");
      out = lines.pop()!;
      for (const l of lines) {
        stdout.push(l);
        if (l.startsWith("{") && !ready) {
          ready = true;
          clearTimeout(timer);
          res({
            child,
            pid: child.pid!,
            exited: () => child.exitCode !== null || child.signalCode !== null,
            kill: async (signal) => {
              if (child.exitCode === null && child.signalCode === null) child.kill(signal);
              await exit;
            },
          });
        }
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      rej(new Error(`gate exited (${code}) before it was ready: ${readFileSync(logPath, "utf8").slice(-2000)}`));
    });
  });
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m![1]);
}

/** A port nothing listens on: connections to it are refused. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe("hostile relays", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it(
    "configured and named by customers, a relay doing every misbehaviour at once neither stops the gate nor delays customers on an honest relay; a restart with replies undelivered to it keeps running",
    { timeout: 90_000 },
    async () => {
      const tmp = makeTmpDir("dvm-gate-hostile-");
      cleanups.push(() => tmp.remove());
      const honest = await startRelayProcess(0, tmp.file("relay.sqlite"));
      cleanups.push(() => honest.kill("SIGKILL").then(() => {}));
      const gateSk = generateSecretKey();
      const gatePk = getPublicKey(gateSk);
      const hostile: HostileRelay = await startHostileRelay(gatePk);
      cleanups.push(() => hostile.kill());
      const H = hostile.url;
      const refused = `ws://127.0.0.1:${await closedPort()}`;
      const configured = ["auth-silent", "auth-reject", "auth-nochallenge", "malformed", "big", "badsig", "never-ok", "notice", "drop", "refuse"].map(
        (m) => `${H}/${m}`,
      );
      const config = {
        nostr: {
          secretKey: Buffer.from(gateSk).toString("hex"),
          relays: [honest.url, ...configured, refused],
          maxReplyRelays: 3,
          customerRelays: { maxOpen: 4, connectTimeoutMs: 1000, publishTimeoutMs: 1000, maxAttempts: 2 },
        },
        database: { path: tmp.file("gate.sqlite"), synchronous: "NORMAL" },
        jobs: { kinds: { "5050": { priceSats: 10 } } },
        freeTier: { maxPendingPerPubkey: 1000, budgetsSats: { elite: 100_000 } },
        payments: { backend: "dev", dev: { enabled: true } },
        http: { enabled: false },
        log: { level: "info" },
      };
      const configPath = writeConfig(tmp.file("config.json"), config);
      const cfg = parseConfig(config, { env: {}, baseDir: tmp.path, sourcePath: configPath });
      const elite = await new Customer().connect([honest.url]);
      cleanups.push(() => elite.close());
      const pre = Ledger.open(cfg.database.path, ledgerSettings(cfg), { nowMs: Date.now() });
      pre.setTier(elite.pubkey, "elite", Date.now());
      pre.close();

      // Customers name hostile relays of their own (other URLs than the configured ones):
      // five each, of which only the first three (nostr.maxReplyRelays) may be used.
      const theirs = [
        [`${H}/c/auth-silent`, `${H}/c/never-ok`, `${H}/c/auth-reject`, `${H}/c/drop`, `${H}/c/notice`],
        [`${H}/c/auth-nochallenge`, `${H}/c/malformed`, `${refused}/c`, `${H}/c/drop`, `${H}/c/notice`],
      ];
      const logPath = tmp.file("gate.log");
      const stdout: string[] = [];
      let gate = await startGateProcess(configPath, logPath, stdout);
      cleanups.push(() => gate.kill("SIGKILL"));
      let n = 0;
      const ask = async (named: string[] = []): Promise<Event> => {
        const ev = elite.request(gatePk, { input: `job ${n++}`, tags: named.length ? [["relays", honest.url, ...named]] : [] });
        await elite.publish(ev);
        await elite.waitFeedback(ev.id, "processing", 15_000);
        expect(gate.exited(), "the gate is running").toBe(false);
        return ev;
      };

      // Calm: the baseline is the gate at work (a burst of honest requests grows its heap
      // to its working size), so what is compared afterwards is what the hostile phase added.
      const burst = Array.from({ length: 150 }, (_, i) => elite.request(gatePk, { input: `warm-up ${i}` }));
      await Promise.all(burst.map((ev) => elite.publish(ev)));
      for (const ev of burst) await elite.waitFeedback(ev.id, "processing", 15_000);
      for (let i = 0; i < 3; i++) await ask();
      const rssBeforeKb = rssKb(gate.pid);

      // Hostile: floods on, customers keep asking on the honest relay, naming hostile relays.
      await hostile.command("flood on");
      for (let i = 0; i < 16; i++) await ask(theirs[i % 2]!);
      // Control events: every misbehaviour has reached the gate by now.
      const seen = await waitForAsync(
        async () => {
          const s = await hostile.command("stats");
          const at = (path: string) => s[path] ?? { connections: 0, auths: 0, events: 0, reqs: 0, framesSent: 0 };
          return at("/auth-silent").auths > 0 &&
            at("/auth-reject").auths > 0 &&
            at("/auth-nochallenge").connections > 1 &&
            at("/malformed").framesSent > 20_000 &&
            at("/badsig").framesSent > 10_000 &&
            at("/big").framesSent > 10 &&
            at("/notice").framesSent > 10_000 &&
            at("/never-ok").events > 0 &&
            at("/drop").connections > 1 &&
            at("/refuse").connections > 1 &&
            at("/c/never-ok").events > 0 &&
            at("/c/auth-reject").auths > 0 &&
            at("/c/malformed").connections > 0
            ? s
            : null;
        },
        30_000,
        "every misbehaviour to reach the gate",
      );
      expect(gate.exited()).toBe(false);
      await ask(theirs[0]);
      await hostile.command("flood off");
      const rssPeakKb = rssKb(gate.pid);

      // Memory comes back once the floods stop (the same process).
      const rssSeen: number[] = [];
      const rssAfterKb = await waitFor(
        () => {
          const kb = rssKb(gate.pid);
          rssSeen.push(kb);
          return kb <= rssBeforeKb * 1.2 ? kb : null;
        },
        30_000,
        `RSS back within 20% of ${rssBeforeKb} kB`,
      ).catch((err: Error) => {
        throw new Error(`${err.message}: peak ${rssPeakKb} kB, seen ${rssSeen.filter((_, i) => i % 40 === 0).join(" ")}`);
      });

      // Undelivered replies to the customers' hostile relays, then a crash and a restart.
      const last = elite.request(gatePk, { input: "just before the crash", tags: [["relays", honest.url, ...theirs[0]!]] });
      await elite.publish(last);
      await elite.waitFeedback(last.id, "processing", 15_000);
      const db = new Database(cfg.database.path, { readonly: true, fileMustExist: true });
      cleanups.push(() => void db.close());
      const q = (sql: string, ...a: unknown[]) => (db.prepare(sql).get(...a) as { n: number }).n;
      const pendingToTheirs = () => q("SELECT COUNT(*) AS n FROM outbox_delivery WHERE state = 'pending' AND relay LIKE ?", `${H}/c/%`);
      expect(pendingToTheirs()).toBeGreaterThan(0);
      const neverOkEvents = async () => (await hostile.command("stats"))["/c/never-ok"]?.events ?? 0;
      const beforeRestart = await neverOkEvents();
      await gate.kill("SIGKILL");
      gate = await startGateProcess(configPath, logPath, stdout);
      // Control events: the restarted gate tried those deliveries again, and answers customers.
      await waitForAsync(async () => ((await neverOkEvents()) > beforeRestart ? true : null), 20_000, "the restarted gate to retry the hostile relay");
      await ask(theirs[1]);
      // Each of their relays gets a bounded number of attempts per reply, then is given up.
      await waitFor(() => (pendingToTheirs() === 0 ? true : null), 30_000, "every delivery to the customers' hostile relays ended");
      expect(gate.exited()).toBe(false);
      const maxAttempts = q("SELECT MAX(attempts) AS n FROM outbox_delivery WHERE relay LIKE ?", `${H}/c/%`);
      expect(maxAttempts).toBeLessThanOrEqual(2);
      expect(q("SELECT COUNT(*) AS n FROM outbox_delivery WHERE state = 'failed' AND relay LIKE ?", `${H}/c/%`)).toBeGreaterThan(0);
      // Only the first three of each request's relays were ever used (after all of them ended).
      const end = await hostile.command("stats");
      expect(q("SELECT COUNT(*) AS n FROM outbox_delivery WHERE relay IN (?, ?)", `${H}/c/drop`, `${H}/c/notice`)).toBe(0);
      expect(end["/c/drop"]?.connections ?? 0).toBe(0);
      expect(end["/c/notice"]?.connections ?? 0).toBe(0);
      await gate.kill("SIGTERM");

      // Logs: JSON, line by line, and a flooding relay bounded in lines.
      const logLines = readFileSync(logPath, "utf8")
        .split("\n")
        .filter((l) => l.length > 0);
      const notJson = logLines.filter((l) => {
        try {
          JSON.parse(l);
          return false;
        } catch {
          return true;
        }
      });
      expect(notJson.slice(0, 3)).toEqual([]);
      for (const l of stdout.filter((s) => s.length > 0)) expect(() => JSON.parse(l)).not.toThrow();
      const logs = logLines.map((l) => JSON.parse(l) as { relay?: string; msg?: string; time: number });
      const about = (url: string) => logs.filter((l) => l.relay === url);
      const spanMin = (logs.at(-1)!.time - logs[0]!.time) / 60_000;
      const perRelay = Object.fromEntries([...configured, refused].map((u) => [u.slice(H.length) || u, about(u).length]));
      // Measured numbers, for the record (docs/OPERATIONS.md).
      console.log(
        JSON.stringify({
          rssKb: { before: rssBeforeKb, peak: rssPeakKb, after: rssAfterKb, polls: rssSeen.length },
          logLines: logLines.length,
          minutes: Number(spanMin.toFixed(2)),
          linesPerRelay: perRelay,
          framesSent: Object.fromEntries(Object.entries(end).map(([k, v]) => [k, v.framesSent])),
          byMsg: Object.fromEntries(
            ["/auth-reject", "/drop"].map((p) => [
              p,
              Object.entries(
                about(`${H}${p}`).reduce<Record<string, number>>(
                  (a, l) => ((a[String((l as { part?: string }).part) + ":" + l.msg] = (a[String((l as { part?: string }).part) + ":" + l.msg] ?? 0) + 1), a),
                  {},
                ),
              ),
            ]),
          ),
          seenAuths: { silent: seen["/auth-silent"]!.auths, reject: seen["/auth-reject"]!.auths },
        }),
      );
      // Per relay, per limiter, at most 10 lines a minute plus the "suppressed" counts; a few limiters see one relay.
      for (const [relay, count] of Object.entries(perRelay)) expect(count, relay).toBeLessThan(80 * Math.max(1, Math.ceil(spanMin)));
      // The library's console output about the malformed frames came through the logger, attributed.
      expect(about(`${H}/malformed`).some((l) => l.msg === "relay library message")).toBe(true);
    },
  );
});
