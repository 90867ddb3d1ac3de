// The free-tier decision of SPEC §2, as a pure function of what the ledger read
// inside its transaction. Returns an outcome value; never throws for expected cases.
import type { Tier } from "./tiers.js";

export interface DecisionInputs {
  priceMsats: number;
  banned: boolean;
  tier: Tier;
  /** Daily budget of `tier`. */
  budgetMsats: number;
  /** Customer's pending + posted (absorbed) reservations created in the last 24 h. */
  usedMsats: number;
  /** Pool balance; pending reservations are already taken out of it. */
  poolMsats: number;
  pendingCount: number;
  maxPendingPerPubkey: number;
  /**
   * The smallest unit the payment backend can bill (1 msat; 1000 for LNbits, which
   * invoices whole sats). A partial offer absorbs a little less so that its charge is a
   * whole number of these units; never more, so the budget still holds.
   */
  chargeUnitMsats?: number;
  /** The customer's prepaid balance (SPEC §12): pays what the free tier does not, when it covers it. */
  balanceMsats?: number;
}

export type Outcome =
  | { kind: "blocked"; reason: "blocked" }
  | { kind: "free"; absorbMsats: number; chargeMsats: 0 }
  | { kind: "partial"; absorbMsats: number; chargeMsats: number; fromBalance?: true }
  | { kind: "gate"; absorbMsats: 0; chargeMsats: number; reason: GateReason; fromBalance?: true };

export type GateReason = "no_budget" | "budget_used" | "pool_empty" | "too_many_pending" | "below_charge_unit";

export function decide(i: DecisionInputs): Outcome {
  if (i.banned) return { kind: "blocked", reason: "blocked" };
  const remaining = Math.max(0, i.budgetMsats - i.usedMsats);
  let absorb = Math.min(remaining, i.poolMsats, i.priceMsats);
  const tooManyPending = i.pendingCount >= i.maxPendingPerPubkey;
  if (tooManyPending) absorb = 0;
  // A job priced at 0 costs nobody anything: served, nothing reserved, nothing granted.
  if (i.priceMsats === 0) return { kind: "free", absorbMsats: 0, chargeMsats: 0 };
  if (absorb === i.priceMsats) return { kind: "free", absorbMsats: absorb, chargeMsats: 0 };
  // The balance is debited in msats, so no invoice's unit applies: the whole rest or nothing.
  const fromBalance = (i.balanceMsats ?? 0) >= i.priceMsats - absorb ? ({ fromBalance: true } as const) : {};
  const unit = i.chargeUnitMsats ?? 1;
  const shortfall = "fromBalance" in fromBalance ? 0 : (i.priceMsats - absorb) % unit;
  if (shortfall !== 0) absorb = Math.max(0, absorb - (unit - shortfall));
  if (absorb > 0) return { kind: "partial", absorbMsats: absorb, chargeMsats: i.priceMsats - absorb, ...fromBalance };
  const reason: GateReason = tooManyPending
    ? "too_many_pending"
    : i.budgetMsats === 0
      ? "no_budget"
      : remaining === 0
        ? "budget_used"
        : i.poolMsats === 0
          ? "pool_empty"
          : "below_charge_unit";
  return { kind: "gate", absorbMsats: 0, chargeMsats: i.priceMsats, reason, ...fromBalance };
}
