// SPEC §3.6: several OS processes share one database file. Four children decide,
// pay, settle and fail at once for the same 20 customers with real clocks, on a pool
// small enough to run dry. Afterwards every guarantee still holds, no SQLITE_BUSY
// escaped, and no customer got more than the budget of their tier.
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { Ledger } from "../../src/ledger/ledger.js";
import { testLedgerSettings } from "../helpers/ledger-settings.js";
import { verifyLedger } from "../../src/ledger/verify.js";
import type { ChildReport } from "../helpers/ledger-child.js";
import { makeTmpDir } from "../helpers/tmp.js";
import { killAllChildren, startLedgerChild } from "./children.js";

const SAT = 1000;
const PROCESSES = 4;
const OPS_PER_PROCESS = 200;

const settings = testLedgerSettings({ poolInitialMsats: 300 * SAT });

// 20 customers with tiers pinned up front (so paid jobs cannot move them mid-run), one banned.
const TIER_OF = ["new", "established", "trusted", "elite"] as const;
const customers = Array.from({ length: 20 }, (_, i) => ({
  pubkey: (0xc0 + i).toString(16).repeat(32),
  tier: TIER_OF[i % 4]!,
  banned: i === 19,
}));

const tmp = makeTmpDir("dvm-gate-multiproc-");
afterEach(() => killAllChildren());
afterAll(() => tmp.remove());

describe.each(["FULL", "NORMAL"] as const)("%s synchronous: four processes on one database file", (synchronous) => {
  it(`keeps every guarantee while ${PROCESSES} processes decide at once and the pool runs dry`, async () => {
    const dbPath = tmp.file(`shared-${synchronous}.sqlite`);
    const startMs = Date.now();
    const setup = Ledger.open(dbPath, settings, { nowMs: startMs, synchronous });
    for (const c of customers) {
      setup.setTier(c.pubkey, c.tier, startMs);
      if (c.banned) setup.setBanned(c.pubkey, true, "test", startMs);
    }
    setup.close();

    const children = Array.from({ length: PROCESSES }, () =>
      startLedgerChild({ mode: "race", dbPath, synchronous, settings, pubkeys: customers.map((c) => c.pubkey), ops: OPS_PER_PROCESS }),
    );
    await Promise.all(children.map((c) => c.ready));
    for (const c of children) c.proc.stdin!.write("go\n");
    const reports: ChildReport[] = await Promise.all(children.map((c) => c.done()));

    const errors: Record<string, number> = {};
    const outcomes: Record<string, number> = {};
    for (const r of reports) {
      for (const [k, n] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + n;
      for (const [k, n] of Object.entries(r.outcomes)) outcomes[k] = (outcomes[k] ?? 0) + n;
    }
    console.log(`${synchronous}: ${PROCESSES} processes × ${OPS_PER_PROCESS} decisions`, JSON.stringify(outcomes), "errors", JSON.stringify(errors));
    // No SQLITE_BUSY (nor anything else) escaped to any process.
    expect(errors).toEqual({});
    expect(reports.reduce((s, r) => s + r.decisions, 0)).toBe(PROCESSES * OPS_PER_PROCESS);
    // The pool really ran dry: customers with budget left were gated for want of pool.
    expect(outcomes["gate:pool_empty"] ?? 0).toBeGreaterThan(0);
    expect(outcomes["free"] ?? 0).toBeGreaterThan(0);

    const ledger = Ledger.open(dbPath, settings, { nowMs: Date.now(), synchronous });
    try {
      expect(verifyLedger(ledger.db)).toEqual([]);
      const t = ledger.totals();
      expect(t.initialMsats + t.creditedMsats).toBe(t.poolMsats + t.pendingMsats + t.absorbedMsats);
      expect(t.poolMsats).toBeGreaterThanOrEqual(0);
      // Every decision of every process was recorded exactly once.
      expect(ledger.db.prepare("SELECT COUNT(*) AS n FROM requests").get()).toEqual({ n: PROCESSES * OPS_PER_PROCESS });

      // Independently of verifyLedger: the whole run fits in one 24 h window, so each
      // customer's pending + absorbed must fit the budget of their pinned tier.
      const used = ledger.db.prepare("SELECT pubkey, SUM(counted_msats) AS used FROM reservations GROUP BY pubkey").all() as { pubkey: string; used: number }[];
      for (const { pubkey, used: usedMsats } of used) {
        const c = customers.find((x) => x.pubkey === pubkey)!;
        expect(c.banned, `banned ${pubkey} got a reservation`).toBe(false);
        expect(usedMsats, `customer ${c.tier} ${pubkey.slice(0, 8)}`).toBeLessThanOrEqual(settings.budgetsMsats[c.tier]);
      }
      // Reservations that came through settled, paid jobs credited the pool.
      expect(t.absorbedMsats).toBeGreaterThan(0);
      expect(t.creditedMsats).toBeGreaterThan(0);
    } finally {
      ledger.close();
    }

    // Past every deadline, a restart sweeps whatever the children left pending.
    const later = Ledger.open(dbPath, settings, { nowMs: Date.now() + (settings.timeoutSec + settings.invoiceExpirySec) * 1000, synchronous });
    try {
      expect(later.totals().pendingMsats).toBe(0);
      expect(verifyLedger(later.db)).toEqual([]);
    } finally {
      later.close();
    }
  });
});

it("creates, migrates and seeds a brand-new file exactly once when four processes open it at the same moment", async () => {
  const dbPath = tmp.file("fresh/new.sqlite");
  const pubkeys = customers.map((c) => c.pubkey);
  const children = Array.from({ length: PROCESSES }, () => startLedgerChild({ mode: "race", dbPath, synchronous: "FULL", settings, pubkeys, ops: 20 }));
  await Promise.all(children.map((c) => c.ready));
  for (const c of children) c.proc.stdin!.write("go\n");
  const reports = await Promise.all(children.map((c) => c.done()));
  expect(reports.map((r) => r.errors)).toEqual(reports.map(() => ({})));

  const ledger = Ledger.open(dbPath, settings, { nowMs: Date.now() });
  try {
    expect(ledger.db.prepare("SELECT COUNT(*) AS n FROM pool").get()).toEqual({ n: 1 });
    expect(ledger.totals().initialMsats).toBe(settings.poolInitialMsats);
    expect(ledger.db.prepare("SELECT COUNT(*) AS n FROM requests").get()).toEqual({ n: PROCESSES * 20 });
    expect(verifyLedger(ledger.db)).toEqual([]);
  } finally {
    ledger.close();
  }
});
