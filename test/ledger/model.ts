// A naive in-memory model of the ledger, written from SPEC §2, §3 and §5 with plain
// arrays and maps and no cleverness, to be run side by side with the real SQLite
// ledger in the model-based test. It imports nothing from src/ except types: if the
// two disagree, one of them misread the spec, and the seed says where.
//
// Deliberately different shapes from the real ledger, so a shared mistake is unlikely:
// - the pool balance is not a counter but derived from history every time
//   (initial + credits − absorbed − pending);
// - a customer's score is replayed from the list of their trust events, walking the
//   decay day boundaries one by one, instead of being stored and decayed lazily;
// - a prepaid balance (SPEC §12) is not a counter either: deposits minus the debits of
//   jobs that are still open or done, minus the operator's refunds, summed every time.
import type { LedgerSettings } from "../../src/ledger/ledger.js";

export type ModelTier = "new" | "established" | "trusted" | "elite";
const TIER_ORDER: ModelTier[] = ["new", "established", "trusted", "elite"];
const DAY_MS = 24 * 60 * 60 * 1000;

export type ModelState = "awaiting-payment" | "processing" | "done" | "failed" | "expired" | "blocked";

export interface ModelRequest {
  requestId: string;
  pubkey: string;
  kind: number;
  priceMsats: number;
  decision: "free" | "partial" | "gate" | "blocked";
  tier: ModelTier | null;
  absorbMsats: number;
  chargeMsats: number;
  state: ModelState;
  paidMsats: number;
  paymentRef: string | null;
  createdAtMs: number;
  expiresAtMs: number | null;
  reason?: string;
  /** Paid from the prepaid balance: what was left in it right after. */
  balanceLeftMsats?: number;
}

interface ModelDeposit {
  pubkey: string;
  creditedMsats: number;
  excessMsats: number;
  ref: string | null;
}

interface ModelDebit {
  requestId: string;
  pubkey: string;
  amountMsats: number;
  state: "held" | "spent" | "refunded";
}

export interface ModelBalance {
  balanceMsats: number;
  heldMsats: number;
  depositedMsats: number;
  spentMsats: number;
  withdrawnMsats: number;
}

interface ModelReservation {
  requestId: string;
  pubkey: string;
  tier: ModelTier;
  amountMsats: number;
  state: "pending" | "posted" | "voided" | "expired";
  absorbedMsats: number;
  createdAtMs: number;
}

interface TrustEvent {
  atMs: number;
  type: "paid" | "abuse";
  times: number;
}

interface Person {
  events: TrustEvent[];
  pinned: ModelTier | null;
  banned: boolean;
  wotFloor: ModelTier | null;
}

export interface ModelGrant {
  seq: number;
  requestId: string;
  pubkey: string;
  label: "free" | "partial";
  tier: ModelTier;
  absorbedMsats: number;
  chargedMsats: number;
  totals: ModelTotals;
}

export interface ModelTotals {
  initialMsats: number;
  creditedMsats: number;
  absorbedMsats: number;
  pendingMsats: number;
  poolMsats: number;
}

export class LedgerModel {
  private readonly s: LedgerSettings;
  private readonly initialMsats: number;
  private credits: number[] = [];
  private requests = new Map<string, ModelRequest>();
  private reservations: ModelReservation[] = [];
  private people = new Map<string, Person>();
  readonly grants: ModelGrant[] = [];
  private deposits: ModelDeposit[] = [];
  private debits: ModelDebit[] = [];
  private withdrawals: { pubkey: string; amountMsats: number }[] = [];
  private readonly maxBalanceMsats: number;

  constructor(settings: LedgerSettings) {
    this.s = settings;
    this.initialMsats = settings.poolInitialMsats;
    this.maxBalanceMsats = settings.maxBalanceMsats ?? 100_000_000;
  }

  // ---- §12 balances ----------------------------------------------------------------

  balance(pubkey: string): ModelBalance {
    const sum = (xs: { amountMsats: number }[]) => xs.reduce((s, x) => s + x.amountMsats, 0);
    const mine = this.debits.filter((d) => d.pubkey === pubkey);
    const depositedMsats = this.deposits.filter((d) => d.pubkey === pubkey).reduce((s, d) => s + d.creditedMsats, 0);
    const heldMsats = sum(mine.filter((d) => d.state === "held"));
    const spentMsats = sum(mine.filter((d) => d.state === "spent"));
    const withdrawnMsats = sum(this.withdrawals.filter((w) => w.pubkey === pubkey));
    return { balanceMsats: depositedMsats - heldMsats - spentMsats - withdrawnMsats, heldMsats, depositedMsats, spentMsats, withdrawnMsats };
  }

  deposit(
    pubkey: string,
    amountMsats: number,
    ref: string | null,
    overCap: "refuse" | "credit-to-cap",
  ): { status: string; creditedMsats?: number; excessMsats?: number } {
    if (ref !== null && this.deposits.some((d) => d.ref === ref)) return { status: "exists" };
    const b = this.balance(pubkey);
    const room = Math.max(0, this.maxBalanceMsats - b.balanceMsats - b.heldMsats);
    if (amountMsats > room && overCap === "refuse") return { status: "over_cap" };
    const creditedMsats = Math.min(room, amountMsats);
    this.deposits.push({ pubkey, creditedMsats, excessMsats: amountMsats - creditedMsats, ref });
    return { status: "credited", creditedMsats, excessMsats: amountMsats - creditedMsats };
  }

  withdraw(pubkey: string, amountMsats: number): boolean {
    if (this.balance(pubkey).balanceMsats < amountMsats) return false;
    this.withdrawals.push({ pubkey, amountMsats });
    return true;
  }

  private refundDebit(requestId: string): number {
    const d = this.debits.find((x) => x.requestId === requestId && x.state === "held");
    if (!d) return 0;
    d.state = "refunded";
    return d.amountMsats;
  }

  // ---- reading -------------------------------------------------------------------

  totals(): ModelTotals {
    let credited = 0;
    for (const c of this.credits) credited += c;
    let pending = 0;
    let absorbed = 0;
    for (const r of this.reservations) {
      if (r.state === "pending") pending += r.amountMsats;
      if (r.state === "posted") absorbed += r.absorbedMsats;
    }
    return {
      initialMsats: this.initialMsats,
      creditedMsats: credited,
      absorbedMsats: absorbed,
      pendingMsats: pending,
      poolMsats: this.initialMsats + credited - absorbed - pending,
    };
  }

  request(requestId: string): ModelRequest | null {
    const r = this.requests.get(requestId);
    return r ? { ...r } : null;
  }

  requestIds(): string[] {
    return [...this.requests.keys()];
  }

  /** What counts against the budget: the amount while pending, what was absorbed once posted. */
  private counted(r: ModelReservation): number {
    if (r.state === "pending") return r.amountMsats;
    if (r.state === "posted") return r.absorbedMsats;
    return 0;
  }

  usedMsats(pubkey: string, nowMs: number): number {
    let used = 0;
    for (const r of this.reservations) if (r.pubkey === pubkey && r.createdAtMs > nowMs - DAY_MS) used += this.counted(r);
    return used;
  }

  pendingCount(pubkey: string): number {
    return this.reservations.filter((r) => r.pubkey === pubkey && r.state === "pending").length;
  }

  private person(pubkey: string): Person {
    return this.people.get(pubkey) ?? { events: [], pinned: null, banned: false, wotFloor: null };
  }

  private touch(pubkey: string): Person {
    let p = this.people.get(pubkey);
    if (!p) {
      p = { events: [], pinned: null, banned: false, wotFloor: null };
      this.people.set(pubkey, p);
    }
    return p;
  }

  /**
   * §5 replayed: +points per paid job (which also marks activity), −penalty per abuse,
   * and once `decayAfterDays` whole days passed since the last activity, every further
   * whole day takes `decayPerDay` off a positive score, never below 0.
   */
  score(pubkey: string, nowMs: number): number {
    const t = this.s.trust;
    let score = 0;
    let lastActiveMs: number | null = null;
    let clockMs = -Infinity;
    const decayTo = (untilMs: number) => {
      if (lastActiveMs !== null && t.decayPerDay > 0) {
        for (let k = 1; ; k++) {
          const boundaryMs: number = lastActiveMs + (t.decayAfterDays + k) * DAY_MS;
          if (boundaryMs > untilMs) break;
          if (boundaryMs > clockMs && score > 0) score = Math.max(0, score - t.decayPerDay);
        }
      }
      clockMs = untilMs;
    };
    for (const e of this.person(pubkey).events) {
      decayTo(e.atMs);
      if (e.type === "paid") {
        score += t.pointsPerPaidJob;
        lastActiveMs = e.atMs;
      } else {
        score -= t.abusePenalty * e.times;
      }
    }
    decayTo(nowMs);
    return score;
  }

  tier(pubkey: string, nowMs: number): ModelTier {
    const p = this.person(pubkey);
    if (p.pinned) return p.pinned;
    const score = this.score(pubkey, nowMs);
    const th = this.s.trust.thresholds;
    let byScore: ModelTier = "new";
    if (score >= th.established) byScore = "established";
    if (score >= th.trusted) byScore = "trusted";
    if (score >= th.elite) byScore = "elite";
    if (p.wotFloor && TIER_ORDER.indexOf(p.wotFloor) > TIER_ORDER.indexOf(byScore)) return p.wotFloor;
    return byScore;
  }

  banned(pubkey: string): boolean {
    return this.person(pubkey).banned;
  }

  // ---- §2 decision -----------------------------------------------------------------

  decide(req: { requestId: string; pubkey: string; kind: number; priceMsats: number }, nowMs: number): { status: "decided" | "exists"; request: ModelRequest } {
    const seen = this.requests.get(req.requestId);
    if (seen) return { status: "exists", request: { ...seen } };

    const base = {
      requestId: req.requestId,
      pubkey: req.pubkey,
      kind: req.kind,
      priceMsats: req.priceMsats,
      paidMsats: 0,
      paymentRef: null,
      createdAtMs: nowMs,
    };
    if (this.banned(req.pubkey)) {
      const r: ModelRequest = {
        ...base,
        decision: "blocked",
        tier: null,
        absorbMsats: 0,
        chargeMsats: 0,
        state: "blocked",
        expiresAtMs: null,
        reason: "blocked",
      };
      this.requests.set(r.requestId, r);
      return { status: "decided", request: { ...r } };
    }
    const tier = this.tier(req.pubkey, nowMs);
    const budgetMsats = this.s.budgetsMsats[tier];
    const usedMsats = this.usedMsats(req.pubkey, nowMs);
    const remainingMsats = Math.max(0, budgetMsats - usedMsats);
    const poolMsats = this.totals().poolMsats;
    const tooManyPending = this.pendingCount(req.pubkey) >= this.s.maxPendingPerPubkey;
    let absorbMsats = Math.min(remainingMsats, poolMsats, req.priceMsats);
    if (tooManyPending) absorbMsats = 0;

    let decision: "free" | "partial" | "gate";
    if (absorbMsats === req.priceMsats) decision = "free";
    else if (absorbMsats > 0) decision = "partial";
    else decision = "gate";

    // §12: what the pool does not absorb comes from the balance when it covers all of it.
    const fromBalance = decision !== "free" && this.balance(req.pubkey).balanceMsats >= req.priceMsats - absorbMsats;

    let reason: string | undefined;
    if (decision === "gate") {
      if (tooManyPending) reason = "too_many_pending";
      else if (budgetMsats === 0) reason = "no_budget";
      else if (remainingMsats === 0) reason = "budget_used";
      else reason = "pool_empty";
    }
    const state: ModelState = decision === "free" || fromBalance ? "processing" : "awaiting-payment";
    const expiresAtMs = nowMs + (state === "processing" ? this.s.timeoutSec : this.s.invoiceExpirySec) * 1000;
    const r: ModelRequest = {
      ...base,
      decision,
      tier,
      absorbMsats,
      chargeMsats: req.priceMsats - absorbMsats,
      state,
      expiresAtMs,
      ...(reason ? { reason } : {}),
    };
    this.requests.set(r.requestId, r);
    if (absorbMsats > 0)
      this.reservations.push({
        requestId: r.requestId,
        pubkey: r.pubkey,
        tier,
        amountMsats: absorbMsats,
        state: "pending",
        absorbedMsats: 0,
        createdAtMs: nowMs,
      });
    if (fromBalance) {
      this.debits.push({ requestId: r.requestId, pubkey: r.pubkey, amountMsats: r.chargeMsats, state: "held" });
      r.paidMsats = r.chargeMsats;
      r.paymentRef = `balance:${r.requestId}`;
      r.balanceLeftMsats = this.balance(r.pubkey).balanceMsats;
    }
    return { status: "decided", request: { ...r } };
  }

  private reservationOf(requestId: string): ModelReservation | undefined {
    return this.reservations.find((r) => r.requestId === requestId);
  }

  markPaid(requestId: string, paidMsats: number, paymentRef: string, nowMs: number, paidAtMs = nowMs): { status: string; neededMsats?: number } {
    const r = this.requests.get(requestId);
    if (!r) return { status: "not_found" };
    if (r.state !== "awaiting-payment") return { status: r.paymentRef === paymentRef ? "already_paid" : "not_awaiting_payment" };
    // Paid in time counts, even when seen after the deadline (within the grace).
    if (r.expiresAtMs !== null && r.expiresAtMs <= Math.min(paidAtMs, nowMs)) return { status: "expired" };
    if (paidMsats < r.chargeMsats) return { status: "underpaid", neededMsats: r.chargeMsats };
    r.state = "processing";
    r.paidMsats = paidMsats;
    r.paymentRef = paymentRef;
    r.expiresAtMs = nowMs + this.s.timeoutSec * 1000;
    return { status: "paid" };
  }

  settle(
    requestId: string,
    actualMsats: number | null,
    nowMs: number,
  ): { status: string; absorbedMsats?: number; returnedMsats?: number; creditedMsats?: number; grant?: ModelGrant | null } {
    const r = this.requests.get(requestId);
    if (!r) return { status: "not_found" };
    if (r.state !== "processing") return { status: "not_processing" };
    if (r.expiresAtMs !== null && r.expiresAtMs <= nowMs) return { status: "not_processing" };
    const res = this.reservationOf(requestId);
    let absorbedMsats = 0;
    let returnedMsats = 0;
    if (res) {
      absorbedMsats = actualMsats === null ? res.amountMsats : Math.min(res.amountMsats, actualMsats);
      returnedMsats = res.amountMsats - absorbedMsats;
      res.state = "posted";
      res.absorbedMsats = absorbedMsats;
    }
    const debit = this.debits.find((d) => d.requestId === requestId && d.state === "held");
    if (debit) debit.state = "spent";
    let creditedMsats = 0;
    if (r.paidMsats > 0) {
      this.touch(r.pubkey).events.push({ atMs: nowMs, type: "paid", times: 1 });
      // floor(paid × pct / 100), in BigInt so no float ever touches an amount.
      creditedMsats = Number((BigInt(r.paidMsats) * BigInt(this.s.poolCreditPct)) / 100n);
      if (creditedMsats > 0) this.credits.push(creditedMsats);
    }
    let grant: ModelGrant | null = null;
    if (res && absorbedMsats > 0) {
      grant = {
        seq: this.grants.length + 1,
        requestId,
        pubkey: r.pubkey,
        label: r.decision === "partial" ? "partial" : "free",
        tier: res.tier,
        absorbedMsats,
        chargedMsats: r.paidMsats > 0 ? r.chargeMsats : 0,
        totals: this.totals(),
      };
      this.grants.push(grant);
    }
    r.state = "done";
    return { status: "posted", absorbedMsats, returnedMsats, creditedMsats, grant };
  }

  fail(requestId: string): { status: string; returnedMsats?: number; refundedToBalanceMsats?: number } {
    const r = this.requests.get(requestId);
    if (!r) return { status: "not_found" };
    if (r.state !== "awaiting-payment" && r.state !== "processing") return { status: "already_resolved" };
    let returnedMsats = 0;
    const res = this.reservationOf(requestId);
    if (res && res.state === "pending") {
      res.state = "voided";
      returnedMsats = res.amountMsats;
    }
    const refundedToBalanceMsats = this.refundDebit(requestId);
    r.state = "failed";
    return { status: "voided", returnedMsats, refundedToBalanceMsats };
  }

  expire(nowMs: number): { requestsExpired: number; reservationsExpired: number; returnedMsats: number; refundedToBalanceMsats: number } {
    const out = { requestsExpired: 0, reservationsExpired: 0, returnedMsats: 0, refundedToBalanceMsats: 0 };
    for (const r of this.requests.values()) {
      if (r.state !== "awaiting-payment" && r.state !== "processing") continue;
      // An unpaid offer stays open for the payment grace after its deadline; a job does not.
      const graceMs = r.state === "awaiting-payment" ? (this.s.paymentGraceSec ?? 0) * 1000 : 0;
      if (r.expiresAtMs === null || r.expiresAtMs + graceMs > nowMs) continue;
      const res = this.reservationOf(r.requestId);
      if (res && res.state === "pending") {
        res.state = "expired";
        out.reservationsExpired++;
        out.returnedMsats += res.amountMsats;
      }
      out.refundedToBalanceMsats += this.refundDebit(r.requestId);
      r.state = "expired";
      out.requestsExpired++;
    }
    return out;
  }

  credit(amountMsats: number): void {
    this.credits.push(amountMsats);
  }

  // ---- operator and abuse ------------------------------------------------------------

  setTier(pubkey: string, tier: ModelTier | null): void {
    this.touch(pubkey).pinned = tier;
  }

  setBanned(pubkey: string, banned: boolean): void {
    this.touch(pubkey).banned = banned;
  }

  setWotFloor(pubkey: string, tier: ModelTier | null): void {
    this.touch(pubkey).wotFloor = tier;
  }

  recordAbuse(pubkey: string, nowMs: number, times: number): void {
    this.touch(pubkey).events.push({ atMs: nowMs, type: "abuse", times });
  }
}
