// Model-based test (SPEC §2, §3, §5): seeded random sequences of every ledger operation,
// run on the real SQLite ledger and on the naive model in ./model.ts, compared after
// every step. A failure message carries the seed and the step; rerun one sequence with
// LEDGER_MODEL_SEED=<seed>.
import { afterAll, describe, expect, it } from "vitest";
import { Ledger, type LedgerSettings } from "../../src/ledger/ledger.js";
import { verifyLedger } from "../../src/ledger/verify.js";
import { makeTmpDir } from "../helpers/tmp.js";
import { LedgerModel, type ModelTier } from "./model.js";
import { mulberry32 } from "../helpers/prng.js";

const TIERS: ModelTier[] = ["new", "established", "trusted", "elite"];
const SAT = 1000;
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

interface Rng {
  float: () => number;
  int: (lo: number, hi: number) => number;
  pick: <T>(xs: readonly T[]) => T;
  hex64: () => string;
  chance: (p: number) => boolean;
}

function makeRng(seed: number): Rng {
  const f = mulberry32(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(f() * (hi - lo + 1));
  return {
    float: f,
    int,
    pick: (xs) => xs[int(0, xs.length - 1)]!,
    hex64: () => {
      let s = "";
      while (s.length < 64) s += (int(0, 0xffff) | 0x10000).toString(16).slice(1);
      return s.slice(0, 64);
    },
    chance: (p) => f() < p,
  };
}

/** Settings vary with the seed so that different corners get exercised. */
function settingsFor(rng: Rng): LedgerSettings {
  return {
    budgetsMsats: { new: rng.pick([0, 0, 5 * SAT]), established: 50 * SAT, trusted: 200 * SAT, elite: 1000 * SAT },
    poolInitialMsats: rng.pick([30, 100, 300, 1000]) * SAT + rng.int(0, 999),
    // Small caps sometimes, so that deposits run into them.
    maxBalanceMsats: rng.pick([100_000 * SAT, 150 * SAT, 60 * SAT + rng.int(0, 999)]),
    poolCreditPct: rng.pick([0, 10, 33, 100]),
    maxPendingPerPubkey: rng.pick([1, 3, 1000]),
    timeoutSec: 600,
    invoiceExpirySec: 300,
    paymentGraceSec: rng.pick([0, 120, 120]),
    trust: {
      pointsPerPaidJob: rng.pick([2, 2, 5]),
      abusePenalty: rng.pick([1, 5]),
      // Low thresholds so that paid jobs move customers between tiers within a sequence.
      thresholds: { established: 4, trusted: 10, elite: 20 },
      decayAfterDays: rng.pick([0, 2, 30]),
      decayPerDay: 1,
      wot: { anchors: [], followFloor: "established", rankProvider: null, rankFloors: [], refreshSec: 900 },
    },
  };
}

interface RunStats {
  ops: number;
  /** Steps at which some customer's score fell without an abuse: decay was exercised. */
  decays: number;
  byOp: Record<string, number>;
  outcomes: Record<string, number>;
}

function runSequence(seed: number, steps: number, dbPath: string): RunStats {
  const rng = makeRng(seed);
  const settings = settingsFor(rng);
  let nowMs = Date.UTC(2026, 0, 1) + rng.int(0, DAY);
  const open = () => Ledger.open(dbPath, settings, { nowMs, synchronous: "NORMAL" });
  let ledger = open();
  const model = new LedgerModel(settings);
  const pubkeys = Array.from({ length: 8 }, () => rng.hex64());
  const stats: RunStats = { ops: 0, decays: 0, byOp: {}, outcomes: {} };
  const lastScore = new Map<string, number>();
  let step = 0;
  let op = "";
  const where = () => `seed ${seed} step ${step} op ${op}`;
  const eq = (actual: unknown, expected: unknown, what: string) => expect(actual, `${where()}: ${what}`).toEqual(expected);

  // Tiers pinned up front for some customers, the rest earn theirs by score.
  for (const pk of pubkeys.slice(0, 4)) {
    const t = rng.pick(TIERS);
    ledger.setTier(pk, t, nowMs);
    model.setTier(pk, t);
  }

  const knownIds = (): string[] => model.requestIds();
  const usedRefs: string[] = [];
  const openIds = (state: string): string[] => knownIds().filter((id) => model.request(id)!.state === state);

  const compareRequest = (requestId: string) => {
    const got = ledger.getRequest(requestId);
    const want = model.request(requestId);
    if (!want) return eq(got, null, `request ${requestId} should not exist`);
    expect(got, `${where()}: request ${requestId} missing`).not.toBeNull();
    const { reason: _r, ...w } = want;
    eq(
      {
        pubkey: got!.pubkey,
        kind: got!.kind,
        priceMsats: got!.priceMsats,
        decision: got!.decision,
        tier: got!.tier,
        absorbMsats: got!.absorbMsats,
        chargeMsats: got!.chargeMsats,
        state: got!.state,
        paidMsats: got!.paidMsats,
        paymentRef: got!.paymentRef,
        createdAtMs: got!.createdAtMs,
        expiresAtMs: got!.expiresAtMs,
      },
      {
        pubkey: w.pubkey,
        kind: w.kind,
        priceMsats: w.priceMsats,
        decision: w.decision,
        tier: w.tier,
        absorbMsats: w.absorbMsats,
        chargeMsats: w.chargeMsats,
        state: w.state,
        paidMsats: w.paidMsats,
        paymentRef: w.paymentRef,
        createdAtMs: w.createdAtMs,
        expiresAtMs: w.expiresAtMs,
      },
      `request ${requestId.slice(0, 8)}`,
    );
  };

  const compareAll = () => {
    eq(ledger.totals(), model.totals(), "pool totals");
    for (const pk of pubkeys) {
      const b = ledger.balance(pk);
      eq(
        { balanceMsats: b.balanceMsats, heldMsats: b.heldMsats, depositedMsats: b.depositedMsats, spentMsats: b.spentMsats, withdrawnMsats: b.withdrawnMsats },
        model.balance(pk),
        `balance ${pk.slice(0, 8)}`,
      );
      const v = ledger.identity(pk, nowMs);
      if (op !== "abuse" && v.score < (lastScore.get(pk) ?? 0)) stats.decays++;
      lastScore.set(pk, v.score);
      eq(
        { tier: v.tier, score: v.score, banned: v.banned, usedMsats: v.usedMsats, pendingCount: v.pendingCount, budgetMsats: v.budgetMsats },
        {
          tier: model.tier(pk, nowMs),
          score: model.score(pk, nowMs),
          banned: model.banned(pk),
          usedMsats: model.usedMsats(pk, nowMs),
          pendingCount: model.pendingCount(pk),
          budgetMsats: settings.budgetsMsats[model.tier(pk, nowMs)],
        },
        `identity ${pk.slice(0, 8)}`,
      );
    }
  };

  const ops: [number, string, () => void][] = [
    [
      34,
      "decide",
      () => {
        const repeat = knownIds().length > 0 && rng.chance(0.1);
        const requestId = repeat ? rng.pick(knownIds()) : rng.hex64();
        const pubkey = rng.pick(pubkeys);
        // Mostly round sats, sometimes odd msats, sometimes a job priced at 0.
        const priceMsats = rng.chance(0.03) ? 0 : rng.chance(0.5) ? rng.pick([5, 10, 20, 40]) * SAT : rng.int(1, 60 * SAT);
        const req = { requestId, pubkey, kind: rng.pick([5050, 5100]), priceMsats };
        const got = ledger.decide(req, nowMs);
        const want = model.decide(req, nowMs);
        eq(got.status, want.status, "decide status");
        eq(
          {
            decision: got.request.decision,
            absorbMsats: got.request.absorbMsats,
            chargeMsats: got.request.chargeMsats,
            reason: got.request.reason,
            balanceLeftMsats: got.request.balanceLeftMsats,
          },
          {
            decision: want.request.decision,
            absorbMsats: want.request.absorbMsats,
            chargeMsats: want.request.chargeMsats,
            reason: got.status === "exists" ? undefined : want.request.reason,
            balanceLeftMsats: got.status === "exists" ? undefined : want.request.balanceLeftMsats,
          },
          "decision",
        );
        const label =
          got.status === "exists"
            ? "exists"
            : `${got.request.decision}${got.request.reason ? `:${got.request.reason}` : ""}${got.request.balanceLeftMsats !== undefined ? "+balance" : ""}`;
        stats.outcomes[label] = (stats.outcomes[label] ?? 0) + 1;
        compareRequest(requestId);
      },
    ],
    [
      12,
      "markPaid",
      () => {
        const awaiting = openIds("awaiting-payment");
        const requestId =
          awaiting.length > 0 && rng.chance(0.85) ? rng.pick(awaiting) : knownIds().length > 0 && rng.chance(0.9) ? rng.pick(knownIds()) : rng.hex64();
        const charge = model.request(requestId)?.chargeMsats ?? 1000;
        const paidMsats = rng.chance(0.1) ? Math.max(0, charge - 1) : rng.chance(0.1) ? charge + rng.int(1, 5000) : charge;
        const ref = `ref-${requestId.slice(0, 24)}`;
        // Sometimes the payment settled a while before it is seen (a slow backend, a restart).
        const paidAtMs = rng.chance(0.25) ? Math.max(0, nowMs - rng.int(0, 200_000)) : nowMs;
        const got = ledger.markPaid(requestId, { paidMsats, paymentRef: ref, paidAtMs }, nowMs);
        const want = model.markPaid(requestId, paidMsats, ref, nowMs, paidAtMs);
        eq(got.status, want.status, "markPaid status");
        if (got.status === "underpaid") eq(got.neededMsats, want.neededMsats, "needed msats");
        compareRequest(requestId);
      },
    ],
    [
      16,
      "settle",
      () => {
        const processing = openIds("processing");
        const requestId =
          processing.length > 0 && rng.chance(0.85) ? rng.pick(processing) : knownIds().length > 0 && rng.chance(0.9) ? rng.pick(knownIds()) : rng.hex64();
        const reserved = model.request(requestId)?.absorbMsats ?? 0;
        const r = rng.float();
        const actualMsats = r < 0.5 ? null : r < 0.75 ? rng.int(0, reserved) : reserved + rng.int(1, 20 * SAT);
        const got = ledger.settle(requestId, { actualMsats }, nowMs);
        const want = model.settle(requestId, actualMsats, nowMs);
        eq(got.status, want.status, "settle status");
        if (got.status === "posted") {
          eq(
            { absorbedMsats: got.absorbedMsats, returnedMsats: got.returnedMsats, creditedMsats: got.creditedMsats },
            { absorbedMsats: want.absorbedMsats, returnedMsats: want.returnedMsats, creditedMsats: want.creditedMsats },
            "settlement amounts",
          );
          const g = got.grant;
          const w = want.grant ?? null;
          eq(
            g && {
              seq: g.seq,
              requestId: g.requestId,
              pubkey: g.pubkey,
              label: g.label,
              tier: g.tier,
              absorbedMsats: g.absorbedMsats,
              chargedMsats: g.chargedMsats,
              totals: g.totals,
            },
            w,
            "grant",
          );
        }
        compareRequest(requestId);
      },
    ],
    [
      6,
      "fail",
      () => {
        const open = [...openIds("processing"), ...openIds("awaiting-payment")];
        const requestId = open.length > 0 && rng.chance(0.8) ? rng.pick(open) : knownIds().length > 0 && rng.chance(0.9) ? rng.pick(knownIds()) : rng.hex64();
        const got = ledger.fail(requestId, "model test", nowMs);
        const want = model.fail(requestId);
        eq(got.status, want.status, "fail status");
        if (got.status === "voided") eq([got.returnedMsats, got.refundedToBalanceMsats], [want.returnedMsats, want.refundedToBalanceMsats], "returned msats");
        compareRequest(requestId);
      },
    ],
    [
      4,
      "expire",
      () => {
        const got = ledger.expire(nowMs, rng.pick([1, 3, 500]));
        eq(got, model.expire(nowMs), "expire sweep");
      },
    ],
    [
      1.5,
      "credit",
      () => {
        const amountMsats = rng.chance(0.5) ? rng.int(1, 100) * SAT : rng.int(1, 50 * SAT);
        ledger.credit(amountMsats, "operator", `model-${step}`, nowMs);
        model.credit(amountMsats);
      },
    ],
    [
      7,
      "deposit",
      () => {
        const pubkey = rng.pick(pubkeys);
        const amountMsats = rng.chance(0.6) ? rng.pick([10, 20, 50, 100]) * SAT : rng.int(1, 80 * SAT);
        const operator = rng.chance(0.3);
        // Payment hashes repeat sometimes (a receipt seen on two relays, a restart): credited once.
        const ref = operator ? null : rng.chance(0.15) && usedRefs.length > 0 ? rng.pick(usedRefs) : `hash-${rng.hex64()}`;
        if (ref !== null) usedRefs.push(ref);
        const overCap = operator ? "refuse" : "credit-to-cap";
        const got = ledger.deposit({ pubkey, amountMsats, source: operator ? "operator" : "zap", ref, note: "model test", overCap }, nowMs);
        const want = model.deposit(pubkey, amountMsats, ref, overCap);
        eq(got.status, want.status, "deposit status");
        if (got.status === "credited") eq([got.creditedMsats, got.excessMsats], [want.creditedMsats, want.excessMsats], "deposit credited/excess");
        stats.outcomes[`deposit:${got.status}${got.status === "credited" && got.excessMsats > 0 ? "+excess" : ""}`] =
          (stats.outcomes[`deposit:${got.status}${got.status === "credited" && got.excessMsats > 0 ? "+excess" : ""}`] ?? 0) + 1;
      },
    ],
    [
      1,
      "withdraw",
      () => {
        const pubkey = rng.pick(pubkeys);
        const have = model.balance(pubkey).balanceMsats;
        const amountMsats = rng.chance(0.7) && have > 0 ? rng.int(1, have) : have + rng.int(1, 5 * SAT);
        const got = ledger.withdraw(pubkey, amountMsats, "model test", nowMs);
        eq(got !== null, model.withdraw(pubkey, amountMsats), "withdraw accepted");
      },
    ],
    [
      12,
      "tick",
      () => {
        nowMs += rng.int(0, 30 * SECOND);
      },
    ],
    [
      3,
      "jump-minutes",
      () => {
        nowMs += rng.int(4 * MINUTE, 15 * MINUTE);
      },
    ],
    [
      2,
      "jump-to-edge",
      () => {
        // Land exactly on (or 1 ms before) a window edge or a deadline: off-by-one territory.
        const id = knownIds().length > 0 ? rng.pick(knownIds()) : null;
        const r = id ? model.request(id)! : null;
        if (!r) return;
        const graceEnd = (r.expiresAtMs ?? 0) + (settings.paymentGraceSec ?? 0) * 1000;
        const edges = [r.createdAtMs + DAY, r.createdAtMs + DAY - 1, r.expiresAtMs ?? 0, (r.expiresAtMs ?? 0) - 1, graceEnd, graceEnd - 1].filter(
          (t) => t >= nowMs,
        );
        if (edges.length > 0) nowMs = rng.pick(edges);
      },
    ],
    [
      1.5,
      "jump-days",
      () => {
        nowMs += rng.chance(0.5) ? DAY + rng.int(0, 2 * HOUR) : rng.int(2, 40) * DAY + rng.int(0, DAY);
      },
    ],
    [
      2,
      "setTier",
      () => {
        const pk = rng.pick(pubkeys);
        const t = rng.chance(0.3) ? null : rng.pick(TIERS);
        ledger.setTier(pk, t, nowMs);
        model.setTier(pk, t);
      },
    ],
    [
      2,
      "ban",
      () => {
        const pk = rng.pick(pubkeys);
        const banned = rng.chance(0.25);
        ledger.setBanned(pk, banned, "model test", nowMs);
        model.setBanned(pk, banned);
      },
    ],
    [
      2,
      "abuse",
      () => {
        const pk = rng.pick(pubkeys);
        const times = rng.chance(0.8) ? 1 : rng.int(2, 4);
        ledger.recordAbuse(pk, "model test", nowMs, times);
        model.recordAbuse(pk, nowMs, times);
      },
    ],
    [
      1,
      "wotFloor",
      () => {
        const pk = rng.pick(pubkeys);
        const t = rng.chance(0.3) ? null : rng.pick(TIERS);
        ledger.setWotFloor(pk, t, "model test", nowMs);
        model.setWotFloor(pk, t);
      },
    ],
    [
      0.5,
      "restart",
      () => {
        // A restart: Ledger.open sweeps what expired while the service was down.
        ledger.close();
        ledger = open();
        model.expire(nowMs);
      },
    ],
  ];
  const totalWeight = ops.reduce((s, [w]) => s + w, 0);

  try {
    for (step = 1; step <= steps; step++) {
      let r = rng.float() * totalWeight;
      const chosen = ops.find(([w]) => (r -= w) < 0) ?? ops[0]!;
      op = chosen[1];
      chosen[2]();
      stats.ops++;
      stats.byOp[op] = (stats.byOp[op] ?? 0) + 1;
      compareAll();
      if (step % 1000 === 0) eq(verifyLedger(ledger.db), [], "verifyLedger mid-sequence");
    }
    op = "final verify";
    eq(verifyLedger(ledger.db), [], "verifyLedger");
    eq(ledger.grants({ limit: 10_000 }).length, model.grants.length, "grant count");
  } finally {
    ledger.close();
  }
  return stats;
}

describe("ledger against a naive model", () => {
  const tmp = makeTmpDir("dvm-gate-model-");
  afterAll(() => tmp.remove());
  const only = process.env.LEDGER_MODEL_SEED;
  const seeds = only ? [Number(only)] : [1, 2, 3, 4, 0xdecaf, 20260101];
  const stepsPerSeed = 2000;
  const totals = { ops: 0, decays: 0, sequences: 0, outcomes: {} as Record<string, number>, byOp: {} as Record<string, number> };

  for (const seed of seeds) {
    it(`agrees with the model after every one of ${stepsPerSeed} random operations (seed ${seed})`, () => {
      const stats = runSequence(seed, stepsPerSeed, tmp.file(`model-${seed}.sqlite`));
      totals.ops += stats.ops;
      totals.decays += stats.decays;
      totals.sequences++;
      for (const [k, n] of Object.entries(stats.outcomes)) totals.outcomes[k] = (totals.outcomes[k] ?? 0) + n;
      for (const [k, n] of Object.entries(stats.byOp)) totals.byOp[k] = (totals.byOp[k] ?? 0) + n;
      expect(stats.ops).toBe(stepsPerSeed);
    });
  }

  it("covered at least 10,000 operations and every kind of outcome", () => {
    if (only) return expect(totals.sequences).toBe(1);
    // Printed so docs/GUARANTEES.md can quote what a run exercised.
    console.log(
      `model test: ${totals.sequences} sequences, ${totals.ops} operations, ${totals.decays} decays`,
      JSON.stringify(totals.byOp),
      JSON.stringify(totals.outcomes),
    );
    expect(totals.ops).toBeGreaterThanOrEqual(10_000);
    expect(totals.decays, "trust decay never happened").toBeGreaterThan(0);
    for (const outcome of [
      "free",
      "partial",
      "gate:pool_empty",
      "gate:budget_used",
      "gate:too_many_pending",
      "gate:no_budget",
      "blocked:blocked",
      "exists",
      "partial+balance",
      "gate:no_budget+balance",
      "deposit:credited",
      "deposit:exists",
      "deposit:over_cap",
      "deposit:credited+excess",
    ])
      expect(totals.outcomes[outcome] ?? 0, `outcome ${outcome} never happened`).toBeGreaterThan(0);
  });
});
