// Ledger figures for issue 2 ("Speed"): decide+reserve throughput against raw SQLite
// doing the same writes, and decision latency on an empty ledger against one with a
// long history. Raw and ours run in alternating rounds on the same disk in the same
// minute, so a disk that changes speed mid-run shifts both sides alike.
import { availableParallelism, loadavg } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../src/config/load.js";
import { Ledger, type LedgerSettings } from "../src/ledger/ledger.js";
import type { Tier } from "../src/policy/tiers.js";
import { MAX_MSATS } from "../src/util/money.js";
import { buildHistory, mulberry32 } from "./fixtures.js";
import { fsyncPerSec, HexIds, RAW_POOL_MSATS, RAW_PRICE_MSATS, RawDecideWriter, ratePerSec, type Synchronous } from "./limits.js";
import type { BenchFigure, BenchModule, MachineLimits } from "./types.js";

const MODES: Synchronous[] = ["FULL", "NORMAL"];
const ROUNDS = 20;
const ROUND_MS = 300;
const FSYNC_PROBE_MS = 250;
const CUSTOMERS = 10_000;
const HISTORY_IDENTITIES = 1_000_000;
const HISTORY_GRANTS = 1_000_000;
const LATENCY_WARMUP = 300;
const LATENCY_SAMPLES = 5_000;
const KIND = 5050;

const THROUGHPUT_TARGET = 0.6;
const P99_TARGET = 1.5;

function settings(budgetsMsats?: Record<Tier, number>): LedgerSettings {
  const cfg = parseConfig({}, { env: {} });
  return {
    budgetsMsats: budgetsMsats ?? cfg.freeTier.budgetsMsats,
    poolInitialMsats: RAW_POOL_MSATS,
    poolCreditPct: cfg.freeTier.poolCreditPct,
    // The bench leaves its reservations pending; the cap on pending jobs per customer
    // would otherwise turn later decisions into cheaper gate decisions.
    maxPendingPerPubkey: 1000,
    timeoutSec: cfg.jobs.timeoutSec,
    invoiceExpirySec: cfg.payments.invoiceExpirySec,
    trust: cfg.trust,
  };
}

/** Customers pinned to elite with raw SQL (setup, not measured), so the default elite budget covers every decision. */
function pinElite(ledger: Ledger, pubkeys: string[], nowMs: number): void {
  const ins = ledger.db.prepare(
    "INSERT INTO identities (pubkey, score, score_at_ms, last_active_ms, pinned_tier, banned, wot_floor, updated_at_ms) VALUES (?, 0, ?, NULL, 'elite', 0, NULL, ?)",
  );
  ledger.db.transaction(() => {
    for (const p of pubkeys) ins.run(p, nowMs, nowMs);
  })();
}

class OurDecider {
  private readonly ids = new HexIds();
  notFree = 0;
  constructor(readonly ledger: Ledger) {}
  decide(pubkey: string, nowMs: number): void {
    const r = this.ledger.decide({ requestId: this.ids.next(), pubkey, kind: KIND, priceMsats: RAW_PRICE_MSATS }, nowMs);
    if (r.status !== "decided" || r.request.decision !== "free") this.notFree++;
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

function throughput(dir: string, mode: Synchronous): BenchFigure[] {
  const nowMs = Date.now();
  const ids = new HexIds();
  const customers = Array.from({ length: CUSTOMERS }, () => ids.next());
  const raw = new RawDecideWriter(join(dir, `tput-raw-${mode}.db`), mode, nowMs);
  const ours = new OurDecider(Ledger.open(join(dir, `tput-ours-${mode}.db`), settings(), { nowMs, synchronous: mode }));
  pinElite(ours.ledger, customers, nowMs);
  let clock = nowMs;
  let rawN = 0;
  let oursN = 0;
  const rawStep = () => raw.decide(customers[rawN++ % CUSTOMERS]!, clock++);
  const oursStep = () => ours.decide(customers[oursN++ % CUSTOMERS]!, clock++);
  try {
    for (let i = 0; i < 200; i++) (rawStep(), oursStep());
    // Short paired rounds, order swapped each time, median of the per-round ratios:
    // the disk's speed drifts within seconds, so only neighbours are comparable.
    const rawRates: number[] = [];
    const ourRates: number[] = [];
    const ratios: number[] = [];
    const fsyncRates: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      let rawRate: number;
      let ourRate: number;
      if (r % 2 === 0) {
        rawRate = ratePerSec(ROUND_MS, rawStep, 4);
        ourRate = ratePerSec(ROUND_MS, oursStep, 4);
      } else {
        ourRate = ratePerSec(ROUND_MS, oursStep, 4);
        rawRate = ratePerSec(ROUND_MS, rawStep, 4);
      }
      rawRates.push(rawRate);
      ourRates.push(ourRate);
      ratios.push(ourRate / rawRate);
      if (mode === "FULL" && r % 2 === 1) fsyncRates.push(fsyncPerSec(dir, FSYNC_PROBE_MS));
    }
    if (ours.notFree > 0) throw new Error(`bench setup: ${ours.notFree} decisions were not free; the figure would not be decide+reserve`);
    const rawRate = median(rawRates);
    const ourRate = median(ourRates);
    const ratio = median(ratios);
    const figures: BenchFigure[] = [
      { name: `raw BEGIN IMMEDIATE, same rounds (${mode})`, value: rawRate, unit: "tx/s" },
      {
        name: `decide+reserve (${mode})`,
        value: ourRate,
        unit: "decisions/s",
        ratio,
        against: `raw SQLite tx/s (${mode}), median of ${ROUNDS} paired rounds`,
        target: `≥ ${THROUGHPUT_TARGET}`,
        met: ratio >= THROUGHPUT_TARGET,
      },
    ];
    if (mode === "FULL") figures.push({ name: "fsync/s between the FULL rounds", value: median(fsyncRates), unit: "fsync/s" });
    return figures;
  } finally {
    raw.close();
    ours.ledger.close();
  }
}

interface LatencyMs {
  p50: number;
  p99: number;
  max: number;
}

function percentiles(samplesMs: Float64Array): LatencyMs {
  const s = Float64Array.from(samplesMs).sort();
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
  return { p50: at(0.5), p99: at(0.99), max: s[s.length - 1]! };
}

/**
 * Decision latency on both files, one decision on each in turn (order swapped every
 * step) so that disk and CPU hiccups land on both sides alike. Every decision is
 * free and reserves: the budgets are raised so that no path is cheaper than that.
 */
function latency(
  paths: { empty: string; big: string },
  mode: Synchronous,
  startMs: number,
  keys: { empty: () => string; big: () => string },
  backgroundCheckpoints: boolean,
) {
  const budgetsMsats = { new: 1e9, established: 1e9, trusted: 1e9, elite: 1e9 };
  // The service checkpoints on a background thread (src/ledger/checkpointer.ts): with
  // SQLite's automatic checkpoint, every ~1000th page's commit copies scattered pages of
  // the big file inside a decision, which is what used to land in its p99.
  const open = (path: string) =>
    Ledger.open(path, settings(budgetsMsats), { nowMs: startMs, synchronous: mode, ...(backgroundCheckpoints ? { backgroundCheckpointMs: 250 } : {}) });
  const empty = new OurDecider(open(paths.empty));
  const full = new OurDecider(open(paths.big));
  const emptyMs = new Float64Array(LATENCY_SAMPLES);
  const bigMs = new Float64Array(LATENCY_SAMPLES);
  let clock = startMs;
  const timed = (d: OurDecider, key: string): number => {
    const t0 = process.hrtime.bigint();
    d.decide(key, clock++);
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  try {
    for (let i = 0; i < LATENCY_WARMUP; i++) (timed(empty, keys.empty()), timed(full, keys.big()));
    for (let i = 0; i < LATENCY_SAMPLES; i++) {
      if (i % 2 === 0) ((emptyMs[i] = timed(empty, keys.empty())), (bigMs[i] = timed(full, keys.big())));
      else ((bigMs[i] = timed(full, keys.big())), (emptyMs[i] = timed(empty, keys.empty())));
    }
    if (empty.notFree + full.notFree > 0) throw new Error("bench setup: some latency decisions were not free");
    return { empty: percentiles(emptyMs), big: percentiles(bigMs), endMs: clock };
  } finally {
    empty.ledger.close();
    full.ledger.close();
  }
}

function latencyFigures(dir: string): BenchFigure[] {
  const nowMs = Date.now();
  const bigPath = join(dir, "history.db");
  const emptyPath = join(dir, "empty.db");
  const history = buildHistory(bigPath, {
    identities: HISTORY_IDENTITIES,
    grants: HISTORY_GRANTS,
    nowMs,
    poolInitialMsats: MAX_MSATS,
  });
  const rnd = mulberry32(7);
  const fresh = new HexIds();
  const emptyCustomers = Array.from({ length: LATENCY_SAMPLES }, () => fresh.next());
  const keys = { empty: () => emptyCustomers[Math.floor(rnd() * emptyCustomers.length)]!, big: () => history.activePubkey(rnd()) };
  const paths = { empty: emptyPath, big: bigPath };
  const label = `${HISTORY_IDENTITIES / 1e6}M ids + ${HISTORY_GRANTS / 1e6}M grants`;
  const figures: BenchFigure[] = [
    { name: `build ${label} (raw bulk inserts)`, value: history.buildMs / 1000, unit: "s" },
    { name: "grants in the last 24 h (busiest customer)", value: history.grantsInLastDay, unit: `(${history.maxGrantsInLastDayPerPubkey})` },
  ];
  let clock = nowMs;
  for (const mode of MODES) {
    const r = latency(paths, mode, clock, keys, true);
    clock = r.endMs;
    const ratio = r.big.p99 / r.empty.p99;
    figures.push(
      { name: `decision p50, empty (${mode})`, value: r.empty.p50, unit: "ms" },
      { name: `decision p99, empty (${mode})`, value: r.empty.p99, unit: "ms" },
      { name: `decision p50, ${label} (${mode})`, value: r.big.p50, unit: "ms" },
      {
        name: `decision p99, ${label} (${mode})`,
        value: r.big.p99,
        unit: "ms",
        ratio,
        against: `p99 empty (${mode}); lower is better`,
        target: `≤ ${P99_TARGET}`,
        met: ratio <= P99_TARGET,
      },
    );
  }
  for (const mode of MODES) {
    const r = latency(paths, mode, clock, keys, false);
    clock = r.endMs;
    figures.push({
      name: `for comparison, SQLite's own checkpoints: p99 (${mode})`,
      value: r.big.p99,
      unit: "ms",
      ratio: r.big.p99 / r.empty.p99,
      against: `p99 empty ${r.empty.p99.toFixed(3)} ms, same settings`,
    });
  }
  return figures;
}

export const bench: BenchModule = {
  title: "Ledger: decide+reserve throughput and decision latency",
  run: async (limits: MachineLimits) => {
    // Other work on the machine shows up in every p99; say how much there was.
    const figures: BenchFigure[] = [{ name: "1-min load average at start", value: loadavg()[0]!, unit: `(${availableParallelism()} cores)` }];
    for (const mode of MODES) figures.push(...throughput(limits.workDir, mode));
    figures.push(...latencyFigures(limits.workDir));
    return figures;
  },
};
