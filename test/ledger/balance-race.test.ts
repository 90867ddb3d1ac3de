// SPEC §12 and §3.6: four OS processes spend one customer's prepaid balance at once.
// 30 jobs, a balance that pays for exactly 10: exactly 10 are served from it, the other
// 20 get an invoice, and the balance never goes below 0 (a read-modify-write debit
// would let two processes spend the same msats).
import { afterAll, afterEach, expect, it } from "vitest";
import { Ledger } from "../../src/ledger/ledger.js";
import { verifyLedger } from "../../src/ledger/verify.js";
import { testLedgerSettings } from "../helpers/ledger-settings.js";
import type { ChildReport } from "../helpers/ledger-child.js";
import { makeTmpDir } from "../helpers/tmp.js";
import { killAllChildren, startLedgerChild } from "./children.js";

const SAT = 1000;
const PRICE_MSATS = 7 * SAT + 3;
const JOBS_PER_PROCESS = [8, 8, 7, 7];

const tmp = makeTmpDir("dvm-gate-balance-race-");
afterEach(() => killAllChildren());
afterAll(() => tmp.remove());

it.each(["FULL", "NORMAL"] as const)("%s: four processes racing for one balance serve exactly the 10 jobs it pays for", async (synchronous) => {
  const dbPath = tmp.file(`race-${synchronous}.sqlite`);
  const settings = testLedgerSettings({ poolInitialMsats: 1000 * SAT });
  const customer = "c7".repeat(32);
  const setup = Ledger.open(dbPath, settings, { nowMs: Date.now(), synchronous });
  // Tier new: a budget of 0, so the free tier pays nothing and only the balance can.
  setup.setTier(customer, "new", Date.now());
  const dep = setup.deposit({ pubkey: customer, amountMsats: 10 * PRICE_MSATS, source: "operator", ref: null, note: "race", overCap: "refuse" }, Date.now());
  expect(dep.status).toBe("credited");
  setup.close();

  const children = JOBS_PER_PROCESS.map((ops) =>
    startLedgerChild({ mode: "spend-race", dbPath, synchronous, settings, pubkeys: [customer], ops, priceMsats: PRICE_MSATS }),
  );
  await Promise.all(children.map((c) => c.ready));
  for (const c of children) c.proc.stdin!.write("go\n");
  const reports: ChildReport[] = await Promise.all(children.map((c) => c.done()));

  const outcomes: Record<string, number> = {};
  for (const r of reports) for (const [k, n] of Object.entries(r.outcomes)) outcomes[k] = (outcomes[k] ?? 0) + n;
  console.log(
    `${synchronous}: 4 processes, 30 jobs for one balance of 10`,
    JSON.stringify(outcomes),
    "served per process",
    reports.map((r) => r.outcomes["from-balance"] ?? 0).join("/"),
  );
  expect(reports.map((r) => r.errors)).toEqual(reports.map(() => ({})));
  expect(outcomes).toEqual({ "from-balance": 10, "gate:no_budget": 20 });

  const ledger = Ledger.open(dbPath, settings, { nowMs: Date.now(), synchronous, sweep: false });
  try {
    expect(ledger.balance(customer)).toMatchObject({ balanceMsats: 0, heldMsats: 10 * PRICE_MSATS, depositedMsats: 10 * PRICE_MSATS, spentMsats: 0 });
    expect(ledger.db.prepare("SELECT COUNT(*) AS n FROM balance_holds WHERE state = 'held'").get()).toEqual({ n: 10 });
    expect(ledger.db.prepare("SELECT COUNT(*) AS n FROM requests WHERE state = 'processing'").get()).toEqual({ n: 10 });
    expect(ledger.db.prepare("SELECT MIN(balance_msats) AS m FROM balances").get()).toEqual({ m: 0 });
    expect(verifyLedger(ledger.db)).toEqual([]);
  } finally {
    ledger.close();
  }
  // Past every deadline the held debits come back to the balance, not to the pool.
  const later = Ledger.open(dbPath, settings, { nowMs: Date.now() + (settings.timeoutSec + settings.invoiceExpirySec + 1) * 1000, synchronous });
  try {
    expect(later.balance(customer)).toMatchObject({ balanceMsats: 10 * PRICE_MSATS, heldMsats: 0 });
    expect(later.totals().poolMsats).toBe(1000 * SAT);
    expect(verifyLedger(later.db)).toEqual([]);
  } finally {
    later.close();
  }
});
