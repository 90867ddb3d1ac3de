// The pure decision of SPEC §2, case by case.
import { describe, expect, it } from "vitest";
import { decide, type DecisionInputs } from "../../src/policy/decision.js";

const base: DecisionInputs = {
  priceMsats: 10_000,
  banned: false,
  tier: "established",
  budgetMsats: 50_000,
  usedMsats: 0,
  poolMsats: 1_000_000,
  pendingCount: 0,
  maxPendingPerPubkey: 3,
};

describe("decide", () => {
  it("serves free when budget and pool cover the whole price", () => {
    expect(decide(base)).toEqual({ kind: "free", absorbMsats: 10_000, chargeMsats: 0 });
  });
  it("offers a partial when the budget covers only part", () => {
    expect(decide({ ...base, usedMsats: 46_000 })).toEqual({ kind: "partial", absorbMsats: 4_000, chargeMsats: 6_000 });
  });
  it("offers a partial when the pool covers only part", () => {
    expect(decide({ ...base, poolMsats: 2_500 })).toEqual({ kind: "partial", absorbMsats: 2_500, chargeMsats: 7_500 });
  });
  it("gates with the reason that absorbed nothing", () => {
    expect(decide({ ...base, budgetMsats: 0 })).toMatchObject({ kind: "gate", chargeMsats: 10_000, reason: "no_budget" });
    expect(decide({ ...base, usedMsats: 50_000 })).toMatchObject({ kind: "gate", reason: "budget_used" });
    expect(decide({ ...base, usedMsats: 70_000 })).toMatchObject({ kind: "gate", reason: "budget_used" });
    expect(decide({ ...base, poolMsats: 0 })).toMatchObject({ kind: "gate", reason: "pool_empty" });
    expect(decide({ ...base, pendingCount: 3 })).toMatchObject({ kind: "gate", reason: "too_many_pending" });
  });
  it("blocks a banned customer before anything else", () => {
    expect(decide({ ...base, banned: true })).toEqual({ kind: "blocked", reason: "blocked" });
  });
  it("serves a zero-priced job without reserving anything", () => {
    expect(decide({ ...base, priceMsats: 0, budgetMsats: 0 })).toEqual({ kind: "free", absorbMsats: 0, chargeMsats: 0 });
  });
  it("keeps a partial charge in whole sats when the backend bills whole sats, absorbing less rather than more", () => {
    // 4,500 msats of budget left: the charge would be 5,500 msats, not a whole sat.
    expect(decide({ ...base, usedMsats: 45_500, chargeUnitMsats: 1000 })).toEqual({ kind: "partial", absorbMsats: 4_000, chargeMsats: 6_000 });
    expect(decide({ ...base, usedMsats: 45_500 })).toEqual({ kind: "partial", absorbMsats: 4_500, chargeMsats: 5_500 });
    // Less than one sat of subsidy left: nothing to offer, the customer pays the whole price.
    expect(decide({ ...base, usedMsats: 49_400, chargeUnitMsats: 1000 })).toMatchObject({ kind: "gate", chargeMsats: 10_000, reason: "below_charge_unit" });
    // A full subsidy needs no rounding.
    expect(decide({ ...base, chargeUnitMsats: 1000 })).toMatchObject({ kind: "free" });
  });
});

describe("decide with a prepaid balance (SPEC §12)", () => {
  it("pays the rest from the balance when it covers all of it, after the free tier", () => {
    expect(decide({ ...base, usedMsats: 46_000, balanceMsats: 6_000 })).toEqual({ kind: "partial", absorbMsats: 4_000, chargeMsats: 6_000, fromBalance: true });
    expect(decide({ ...base, budgetMsats: 0, balanceMsats: 10_000 })).toEqual({
      kind: "gate",
      absorbMsats: 0,
      chargeMsats: 10_000,
      reason: "no_budget",
      fromBalance: true,
    });
  });
  it("leaves the balance alone when it is one msat short, or when the free tier covers everything", () => {
    expect(decide({ ...base, usedMsats: 46_000, balanceMsats: 5_999 })).toEqual({ kind: "partial", absorbMsats: 4_000, chargeMsats: 6_000 });
    expect(decide({ ...base, balanceMsats: 1_000_000 })).toEqual({ kind: "free", absorbMsats: 10_000, chargeMsats: 0 });
    expect(decide({ ...base, banned: true, balanceMsats: 1_000_000 })).toEqual({ kind: "blocked", reason: "blocked" });
  });
  it("does not round a balance-paid charge to whole sats: no invoice is made", () => {
    expect(decide({ ...base, usedMsats: 45_500, chargeUnitMsats: 1000, balanceMsats: 5_500 })).toEqual({
      kind: "partial",
      absorbMsats: 4_500,
      chargeMsats: 5_500,
      fromBalance: true,
    });
    expect(decide({ ...base, usedMsats: 45_500, chargeUnitMsats: 1000, balanceMsats: 5_499 })).toEqual({
      kind: "partial",
      absorbMsats: 4_000,
      chargeMsats: 6_000,
    });
  });
});
