// The strfry plugin against the cheapest possible plugin, in the same run: strfry calls
// its plugin on its single writer thread and waits for each answer, so the figure that
// matters is the round trip per event, one at a time, compared with a plugin that only
// echoes the id. Both get the same lines; batches alternate so drift hits both alike.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import * as wasm from "nostr-tools/wasm";
import type { Event } from "nostr-tools/pure";
import { initNostrWasm } from "nostr-wasm";
import { ledgerSettings } from "../src/cli/context.js";
import { parseConfig } from "../src/config/load.js";
import { Ledger } from "../src/ledger/ledger.js";
import type { Tier } from "../src/policy/tiers.js";
import { repoRoot, strfryLine, StrfryPluginProcess, type StrfrySourceType } from "../test/helpers/strfry-plugin-process.js";
import { buildHistory, mulberry32 } from "./fixtures.js";
import type { BenchFigure, BenchModule, MachineLimits } from "./types.js";

const EVENTS = 20_000;
// Signing is the slow part of the fixture (under 1,000/s on a busy machine): a pool of
// distinct signed events is replayed from other addresses. The plugin's work does not
// depend on the id, and strfry would have dropped the duplicates, so this is a fixture
// shortcut only.
const DISTINCT_EVENTS = 2_000;
const WARMUP = 1_000;
// Small alternating batches: a burst of load from elsewhere on the machine then hits
// both plugins alike instead of one whole phase of one of them.
const BATCH = 100;
const HISTORY_IDENTITIES = 100_000;
const SENDERS = 1_000;
const ADDRESSES = 5_000;
const RATIO_TARGET = 0.5;
const P99_TARGET_MS = 1;

interface Sender {
  sk: Uint8Array;
  pubkey: string;
}

/** What a busy public relay with a DVM community sees: mostly job requests and notes. */
function makeEvents(senders: Sender[], nowSec: number, seed: number, count: number, onlyKind?: number): Event[] {
  const rnd = mulberry32(seed);
  const events: Event[] = [];
  for (let i = 0; i < count; i++) {
    const s = senders[Math.floor(rnd() * senders.length)]!;
    const r = rnd();
    const kind = onlyKind ?? (r < 0.6 ? 5050 : r < 0.85 ? 1 : r < 0.95 ? 7 : 30023);
    const tags =
      kind === 5050
        ? [
            ["i", `prompt ${i}`, "text"],
            ["param", "model", "small"],
            ["output", "text/plain"],
            ["bid", "10000"],
            ["p", "f".repeat(64)],
          ]
        : kind === 7
          ? [
              ["e", "e".repeat(64)],
              ["p", "f".repeat(64)],
            ]
          : [];
    events.push(wasm.finalizeEvent({ kind, created_at: nowSec - Math.floor(rnd() * 60), tags, content: `event ${i} ${"lorem ".repeat(10)}` }, s.sk));
  }
  return events;
}

/** `count` strfry lines over the pool of events, each from a random live address. */
function makeLines(events: Event[], seed: number, count: number): string[] {
  const rnd = mulberry32(seed);
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const ev = events[i % events.length]!;
    const v6 = rnd() < 0.2;
    const addr = Math.floor(rnd() * ADDRESSES);
    const source: StrfrySourceType = v6 ? "IP6" : "IP4";
    const info = v6 ? `2001:db8:${(addr >> 8).toString(16)}:${(addr & 255).toString(16)}::1` : `10.${addr >> 16}.${(addr >> 8) & 255}.${addr & 255}`;
    lines.push(strfryLine(ev, source, info));
  }
  return lines;
}

/** User + system CPU a process has used so far, from /proc (Linux), in ms; null elsewhere. */
function cpuMs(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    // utime and stime are fields 14 and 15 of stat, in clock ticks (100 per second on Linux).
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return null;
  }
}

function percentile(sortedMs: number[], p: number): number {
  return sortedMs[Math.min(sortedMs.length - 1, Math.floor(sortedMs.length * p))]!;
}

async function roundTrips(proc: StrfryPluginProcess, lines: string[], from: number, to: number, latMs: number[], answers?: Map<string, number>): Promise<void> {
  for (let i = from; i < to; i++) {
    const line = lines[i]!;
    const t0 = process.hrtime.bigint();
    const a = await proc.ask(line);
    latMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (answers) {
      const key = a.action === "accept" ? "accept" : `${a.action} ${(a.msg ?? "").split(":")[0]}`;
      answers.set(key, (answers.get(key) ?? 0) + 1);
    }
  }
}

async function prepare(workDir: string) {
  const nowMs = Date.now();
  const dbPath = join(workDir, "plugin-bench.sqlite");
  const historyStartMs = Date.now();
  buildHistory(dbPath, { identities: HISTORY_IDENTITIES, grants: 2_000, nowMs, poolInitialMsats: 1_000_000_000_000 });
  const raw = {
    database: { path: dbPath, synchronous: "NORMAL" },
    jobs: { kinds: { "5050": { priceSats: 10 } } },
    plugin: { minTierForKinds: { "30023": "established" } },
    log: { level: "warn" },
  };
  const configPath = join(workDir, "plugin-bench.json");
  writeFileSync(configPath, JSON.stringify(raw));
  const cfg = parseConfig(raw, { env: {}, baseDir: workDir, sourcePath: configPath });

  wasm.setNostrWasm(await initNostrWasm());
  const rnd = mulberry32(7);
  const senders: Sender[] = Array.from({ length: SENDERS }, () => {
    const sk = wasm.generateSecretKey();
    return { sk, pubkey: wasm.getPublicKey(sk) };
  });
  // Half the senders are known to the gate, at every tier; 1 in 100 is banned.
  const ledger = Ledger.open(dbPath, ledgerSettings(cfg), { nowMs, synchronous: "NORMAL" });
  const tiers: Tier[] = ["established", "established", "trusted", "elite"];
  try {
    ledger.tx(() => {
      for (const s of senders) {
        const r = rnd();
        if (r < 0.5) ledger.setTier(s.pubkey, tiers[Math.floor(rnd() * tiers.length)]!, nowMs);
        else if (r < 0.51) ledger.setBanned(s.pubkey, true, "bench", nowMs);
      }
    });
  } finally {
    ledger.close();
  }
  const nowSec = Math.floor(nowMs / 1000);
  const signStartMs = Date.now();
  const events = makeEvents(senders, nowSec, 11, DISTINCT_EVENTS);
  // Warm-up traffic is ordinary notes: it must not spend the measured senders' allowances.
  const warmupEvents = makeEvents(senders.slice(0, 20), nowSec, 13, 200, 1);
  const timings = { historyMs: signStartMs - historyStartMs, signMs: Date.now() - signStartMs };
  return { configPath, timings, lines: makeLines(events, 17, EVENTS), warmup: makeLines(warmupEvents, 19, WARMUP) };
}

/**
 * Both plugins on the same CPU. On this 2-vCPU VM a process woken on the other vCPU
 * from the bench's driver pays about 3x per round trip; left to the scheduler, which
 * plugin landed where decided the ratio (0.25 to 1.9 in pinned experiments) more than
 * the plugins' code did. Pinning both to one CPU compares like with like.
 */
const PIN_CPU = existsSync("/usr/bin/taskset") && availableParallelism() > 1 ? "1" : null;

function spawnPlugin(script: string, env: NodeJS.ProcessEnv): StrfryPluginProcess {
  return PIN_CPU === null
    ? new StrfryPluginProcess(process.execPath, [script], env)
    : new StrfryPluginProcess("/usr/bin/taskset", ["-c", PIN_CPU, process.execPath, script], env);
}

async function run(limits: MachineLimits): Promise<BenchFigure[]> {
  const { configPath, lines, warmup, timings } = await prepare(limits.workDir);
  const root = repoRoot();
  const ours = spawnPlugin(join(root, "plugin", "strfry-policy"), { ...process.env, DVM_GATE_CONFIG: configPath });
  const yardstick = spawnPlugin(join(root, "test", "helpers", "accept-all-plugin.js"), { ...process.env });
  try {
    const junk: number[] = [];
    await roundTrips(ours, warmup, 0, warmup.length, junk);
    await roundTrips(yardstick, warmup, 0, warmup.length, junk);
    const latOurs: number[] = [];
    const latYard: number[] = [];
    const answers = new Map<string, number>();
    const cpuStart = [cpuMs(ours.child.pid), cpuMs(yardstick.child.pid)];
    let msOurs = 0;
    let msYard = 0;
    for (let from = 0; from < lines.length; from += BATCH) {
      const to = Math.min(lines.length, from + BATCH);
      let t = performance.now();
      await roundTrips(yardstick, lines, from, to, latYard);
      msYard += performance.now() - t;
      t = performance.now();
      await roundTrips(ours, lines, from, to, latOurs, answers);
      msOurs += performance.now() - t;
    }
    const cpuEnd = [cpuMs(ours.child.pid), cpuMs(yardstick.child.pid)];
    const cpuUsPerEvent = (i: 0 | 1) => (cpuStart[i] != null && cpuEnd[i] != null ? ((cpuEnd[i]! - cpuStart[i]!) * 1000) / lines.length : null);
    latOurs.sort((a, b) => a - b);
    latYard.sort((a, b) => a - b);
    const rateOurs = (lines.length * 1000) / msOurs;
    const rateYard = (lines.length * 1000) / msYard;
    const ratio = rateOurs / rateYard;
    const p99 = percentile(latOurs, 0.99);
    const pct = (k: string) => (100 * (answers.get(k) ?? 0)) / lines.length;
    const mix = [...answers.entries()].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${((100 * n) / lines.length).toFixed(1)}%`);
    console.log(
      `  (${lines.length} lines, one at a time, over ${DISTINCT_EVENTS} signed events from ${SENDERS} senders; database of ` +
        `${HISTORY_IDENTITIES.toLocaleString("en-US")} identities built in ${timings.historyMs} ms, events signed in ${timings.signMs} ms)`,
    );
    console.log(`  answers: ${mix.join(", ")}`);
    console.log(`  placement: ${PIN_CPU === null ? "left to the scheduler (no taskset)" : `both plugins pinned to CPU ${PIN_CPU} with taskset`}`);
    const cpuOurs = cpuUsPerEvent(0);
    const cpuYard = cpuUsPerEvent(1);
    const cpuFigures: BenchFigure[] =
      cpuOurs !== null && cpuYard !== null && cpuOurs > 0
        ? [
            { name: "accept-all plugin CPU per event", value: cpuYard, unit: "µs" },
            { name: "dvm-gate plugin CPU per event", value: cpuOurs, unit: "µs", ratio: cpuYard / cpuOurs, against: "accept-all CPU per event" },
          ]
        : [];
    return [
      ...cpuFigures,
      { name: "accept-all plugin events/s", value: rateYard, unit: "events/s" },
      { name: "accept-all plugin p99", value: percentile(latYard, 0.99), unit: "ms" },
      {
        name: "dvm-gate plugin events/s",
        value: rateOurs,
        unit: "events/s",
        ratio,
        against: "accept-all plugin events/s",
        target: `≥ ${RATIO_TARGET}`,
        met: ratio >= RATIO_TARGET,
      },
      { name: "dvm-gate plugin p50", value: percentile(latOurs, 0.5), unit: "ms" },
      { name: "dvm-gate plugin p99", value: p99, unit: "ms", target: `< ${P99_TARGET_MS} ms`, met: p99 < P99_TARGET_MS },
      { name: "dvm-gate plugin max", value: latOurs[latOurs.length - 1]!, unit: "ms" },
      { name: "dvm-gate plugin answers: accept", value: pct("accept"), unit: "%" },
    ];
  } finally {
    await ours.stop();
    await yardstick.stop();
  }
}

export const bench: BenchModule = { title: "Relay plugin: strfry round trip per event vs an accept-all plugin", run };
