// SPEC §12 on the ledger itself: the free tier first, then the balance for the rest when
// it covers it, else an invoice with the balance untouched; a void or expiry refunds the
// balance debit to the balance (never the pool); a job paid from the balance counts as
// paid (trust, pool credit share); CHECK constraints refuse what would break the books.
import { afterAll, describe, expect, it } from "vitest";
import { Ledger } from "../../src/ledger/ledger.js";
import { verifyLedger } from "../../src/ledger/verify.js";
import { testLedgerSettings } from "../helpers/ledger-settings.js";
import { makeTmpDir } from "../helpers/tmp.js";

const SAT = 1000;
const T0 = Date.UTC(2026, 0, 1);
const tmp = makeTmpDir("dvm-gate-balances-");
afterAll(() => tmp.remove());
let n = 0;
const id = (k: number) => k.toString(16).padStart(64, "0");
const customer = "cc".repeat(32);

function open(over = {}): Ledger {
  return Ledger.open(tmp.file(`b-${++n}.sqlite`), testLedgerSettings({ poolInitialMsats: 100 * SAT, ...over }), { nowMs: T0, synchronous: "NORMAL" });
}
function fund(l: Ledger, msats: number, pubkey = customer): void {
  const r = l.deposit({ pubkey, amountMsats: msats, source: "operator", ref: null, note: "test", overCap: "refuse" }, T0);
  expect(r.status).toBe("credited");
}

describe("spending a prepaid balance", () => {
  it("pays the rest after the free tier: partial → processing with what is left, no invoice", () => {
    const l = open();
    l.setTier(customer, "established", T0); // 50 sats/day
    fund(l, 100 * SAT);
    const r = l.decide({ requestId: id(1), pubkey: customer, kind: 5050, priceMsats: 80 * SAT }, T0);
    expect(r.request).toMatchObject({
      decision: "partial",
      absorbMsats: 50 * SAT,
      chargeMsats: 30 * SAT,
      state: "processing",
      paidMsats: 30 * SAT,
      balanceLeftMsats: 70 * SAT,
    });
    expect(l.balance(customer)).toMatchObject({ balanceMsats: 70 * SAT, heldMsats: 30 * SAT });
    expect(verifyLedger(l.db)).toEqual([]);
    l.close();
  });

  it("never uses the balance for a job the free tier covers", () => {
    const l = open();
    l.setTier(customer, "elite", T0);
    fund(l, 100 * SAT);
    expect(l.decide({ requestId: id(1), pubkey: customer, kind: 5050, priceMsats: 10 * SAT }, T0).request).toMatchObject({
      decision: "free",
      state: "processing",
    });
    expect(l.balance(customer).balanceMsats).toBe(100 * SAT);
    l.close();
  });

  it("leaves the balance untouched and asks for an invoice when it does not cover the rest", () => {
    const l = open();
    fund(l, 10 * SAT - 1);
    const r = l.decide({ requestId: id(1), pubkey: customer, kind: 5050, priceMsats: 10 * SAT }, T0);
    expect(r.request).toMatchObject({ decision: "gate", state: "awaiting-payment", chargeMsats: 10 * SAT, paidMsats: 0 });
    expect(r.request.balanceLeftMsats).toBeUndefined();
    expect(l.balance(customer)).toMatchObject({ balanceMsats: 10 * SAT - 1, heldMsats: 0 });
    l.close();
  });

  it("refunds a voided job's debit to the balance, and the pool's share to the pool", () => {
    const l = open();
    l.setTier(customer, "established", T0);
    fund(l, 100 * SAT);
    l.decide({ requestId: id(1), pubkey: customer, kind: 5050, priceMsats: 80 * SAT }, T0);
    const f = l.fail(id(1), "worker error", T0 + 1);
    expect(f).toMatchObject({ status: "voided", returnedMsats: 50 * SAT, refundedToBalanceMsats: 30 * SAT });
    expect(l.balance(customer)).toMatchObject({ balanceMsats: 100 * SAT, heldMsats: 0, spentMsats: 0 });
    expect(l.totals()).toMatchObject({ poolMsats: 100 * SAT, pendingMsats: 0, creditedMsats: 0 });
    expect(verifyLedger(l.db)).toEqual([]);
    l.close();
  });

  it("refunds an expired job's debit to the balance at the deadline, not before", () => {
    const l = open();
    fund(l, 25 * SAT);
    l.decide({ requestId: id(1), pubkey: customer, kind: 5050, priceMsats: 20 * SAT }, T0);
    expect(l.expire(T0 + 600_000 - 1).refundedToBalanceMsats).toBe(0);
    expect(l.expire(T0 + 600_000)).toEqual({ requestsExpired: 1, reservationsExpired: 0, returnedMsats: 0, refundedToBalanceMsats: 20 * SAT });
    expect(l.balance(customer)).toMatchObject({ balanceMsats: 25 * SAT, heldMsats: 0 });
    expect(l.totals().poolMsats).toBe(100 * SAT);
    l.close();
  });

  it("counts a job paid from the balance as paid when posted: spent, trust +2, pool credit share", () => {
    const l = open();
    fund(l, 50 * SAT);
    l.decide({ requestId: id(1), pubkey: customer, kind: 5050, priceMsats: 20 * SAT }, T0);
    const s = l.settle(id(1), {}, T0 + 1000);
    expect(s).toMatchObject({ status: "posted", creditedMsats: 2 * SAT });
    expect(l.balance(customer)).toMatchObject({ balanceMsats: 30 * SAT, heldMsats: 0, spentMsats: 20 * SAT, depositedMsats: 50 * SAT });
    expect(l.identity(customer, T0 + 1000).score).toBe(2);
    expect(l.totals()).toMatchObject({ creditedMsats: 2 * SAT, poolMsats: 102 * SAT });
    // A posted job cannot be voided afterwards: the spend stays spent.
    expect(l.fail(id(1), "late", T0 + 2000).status).toBe("already_resolved");
    expect(l.balance(customer).spentMsats).toBe(20 * SAT);
    expect(verifyLedger(l.db)).toEqual([]);
    l.close();
  });

  it("marks a partial grant paid from the balance as charged", () => {
    const l = open();
    l.setTier(customer, "established", T0);
    fund(l, 100 * SAT);
    l.decide({ requestId: id(1), pubkey: customer, kind: 5050, priceMsats: 80 * SAT }, T0);
    const s = l.settle(id(1), {}, T0 + 1);
    if (s.status !== "posted") throw new Error(s.status);
    expect(s.grant).toMatchObject({ label: "partial", absorbedMsats: 50 * SAT, chargedMsats: 30 * SAT });
    l.close();
  });
});

describe("deposits and the cap", () => {
  it("refuses an operator credit over the cap and changes nothing; credits a paid one to the cap", () => {
    const l = open({ maxBalanceMsats: 100 * SAT });
    fund(l, 60 * SAT);
    l.decide({ requestId: id(1), pubkey: customer, kind: 5050, priceMsats: 20 * SAT }, T0);
    // 40 available + 20 held: room for 40.
    const refused = l.deposit({ pubkey: customer, amountMsats: 41 * SAT, source: "operator", ref: null, overCap: "refuse" }, T0);
    expect(refused).toMatchObject({ status: "over_cap", roomMsats: 40 * SAT });
    expect(l.balance(customer).depositedMsats).toBe(60 * SAT);
    const zap = l.deposit({ pubkey: customer, amountMsats: 41 * SAT, source: "zap", ref: "h1", overCap: "credit-to-cap" }, T0);
    expect(zap).toMatchObject({ status: "credited", creditedMsats: 40 * SAT, excessMsats: 1 * SAT });
    expect(l.deposit({ pubkey: customer, amountMsats: 41 * SAT, source: "zap", ref: "h1", overCap: "credit-to-cap" }, T0).status).toBe("exists");
    expect(verifyLedger(l.db)).toEqual([]);
    l.close();
  });

  it("refuses a refund larger than the balance, never clamping it", () => {
    const l = open();
    fund(l, 5 * SAT);
    expect(l.withdraw(customer, 5 * SAT + 1, "too much", T0)).toBeNull();
    expect(l.withdraw(customer, 5 * SAT, "paid back by hand", T0)).toMatchObject({ balanceMsats: 0, withdrawnMsats: 5 * SAT });
    expect(verifyLedger(l.db)).toEqual([]);
    l.close();
  });

  it("aborts by CHECK a write that would take a balance below 0, and verify names a counter that drifted", () => {
    const l = open();
    fund(l, 5 * SAT);
    expect(() => l.db.prepare("UPDATE balances SET balance_msats = balance_msats - 6000, spent_msats = spent_msats + 6000").run()).toThrow(/CHECK/);
    expect(() => l.db.prepare("DELETE FROM deposits").run()).toThrow(/append-only/);
    l.db.exec("DROP TRIGGER deposits_no_update; DROP TRIGGER deposits_no_delete");
    l.db.prepare("UPDATE deposits SET amount_msats = amount_msats + 1").run();
    const v = verifyLedger(l.db);
    expect(v.map((x) => x.guarantee)).toContain(
      "7 balances: every msat deposited is in a balance, held by a pending job, or spent (or refunded by the operator)",
    );
    expect(v.map((x) => x.detail).join("\n")).toMatch(/deposits sum to 5001 msats, the account says 5000/);
    l.close();
  });
});
