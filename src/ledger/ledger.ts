// The money ledger: the generosity pool, reservations (pending → posted | voided |
// expired), grants, credits and trust state, in one SQLite file.
//
// Every state change is one synchronous `BEGIN IMMEDIATE` transaction; nothing in here
// awaits or touches the network. The request event id is the idempotency key.
// Expected outcomes come back as values with a `status`; bad input throws
// LedgerInputError before anything is written; broken invariants throw plain Errors
// (and SQLite's CHECK constraints abort the transaction).
import type { Statement } from "better-sqlite3";
import { decide as decideOutcome } from "../policy/decision.js";
import {
  applyAbuse,
  applySuccess,
  effectiveTier,
  isTier,
  scoreAt,
  tierForScore,
  type Tier,
  type TrustSettings,
  type TrustState,
  DAY_MS,
} from "../policy/tiers.js";
import type { Totals } from "../policy/pool.js";
import type { GrantSigner } from "../events/grant-event.js";
import { assertMsats, isMsats, MAX_MSATS, percentOfMsats } from "../util/money.js";
import { openDb, withBusyRetry, type Db, type OpenOptions } from "./db.js";
import { BACKSTOP_AUTOCHECKPOINT_PAGES, startCheckpointer, type Checkpointer } from "./checkpointer.js";
import { SELECT_IDENTITY_SQL, toTrustState, type IdentityRow } from "./identity-row.js";
import { BalanceStore, type BalanceView, type DepositResult, type DepositSource } from "./balance-store.js";
import { readDecisionInputs } from "./decision-inputs.js";
import { applyInvoiceLimits, findLimited, type LimitedRequest } from "./invoice-limits-store.js";
import { DEFAULT_INVOICE_LIMITS, type InvoiceLimitSettings } from "../policy/invoice-limits.js";
import { HEX64 } from "../util/hex.js";

export const WINDOW_MS = DAY_MS;

export class LedgerInputError extends Error {
  override name = "LedgerInputError";
}

export interface LedgerSettings {
  budgetsMsats: Record<Tier, number>;
  poolInitialMsats: number;
  poolCreditPct: number;
  maxPendingPerPubkey: number;
  timeoutSec: number;
  invoiceExpirySec: number;
  trust: TrustSettings;
  /** See DecisionInputs.chargeUnitMsats (1000 with LNbits). */
  chargeUnitMsats?: number;
  /**
   * How long past its deadline an unpaid offer stays open, so that a payment made in time
   * but seen late (the service was down, the backend slow) is still honoured. Default 0.
   */
  paymentGraceSec?: number;
  /** Most a customer's prepaid balance (available + held) may hold (SPEC §12). Default 100,000 sats. */
  maxBalanceMsats?: number;
  /** SPEC §6 invoice limits; DEFAULT_INVOICE_LIMITS when absent. */
  invoiceLimits?: InvoiceLimitSettings;
}

export const DEFAULT_MAX_BALANCE_MSATS = 100_000_000;

export type { Totals, GrantSigner };

export type Decision = "free" | "partial" | "gate" | "blocked";
export type RequestState = "awaiting-payment" | "processing" | "done" | "failed" | "expired" | "blocked";

export interface RequestRecord {
  requestId: string;
  pubkey: string;
  kind: number;
  priceMsats: number;
  decision: Decision;
  tier: Tier | null;
  absorbMsats: number;
  chargeMsats: number;
  state: RequestState;
  paidMsats: number;
  paymentRef: string | null;
  createdAtMs: number;
  expiresAtMs: number | null;
  reservationId: number | null;
  /** Why a gate decision absorbed nothing (only on fresh decisions). */
  reason?: string;
  /** Paid from the prepaid balance: what is left in it (only on fresh decisions). */
  balanceLeftMsats?: number;
}

export interface GrantRecord {
  seq: number;
  prevEventId: string | null;
  reservationId: number;
  requestId: string;
  pubkey: string;
  kind: number;
  label: "free" | "partial";
  tier: Tier;
  absorbedMsats: number;
  chargedMsats: number;
  totals: Totals;
  createdAtMs: number;
  eventId: string | null;
  eventJson: string | null;
}

/** Runs inside the same transaction as the change it follows (e.g. to write an outbox row). */
export type TxHook<T> = (db: Db, result: T) => void;

export type DecideResult = { status: "decided"; request: RequestRecord } | { status: "exists"; request: RequestRecord };
/** Over an invoice limit (SPEC §6): no request row, no reservation; `fresh` false when refused before. */
export type LimitedResult = { status: "limited"; limited: LimitedRequest; fresh: boolean };
/** Decide with the invoice limits applied; `onLimited` writes the refusal's reply in the same transaction. */
export interface LimitOptions {
  onLimited?: TxHook<LimitedRequest>;
}
export type PaidResult =
  | { status: "paid"; request: RequestRecord }
  | { status: "already_paid"; request: RequestRecord }
  | { status: "not_found" }
  | { status: "not_awaiting_payment"; request: RequestRecord }
  | { status: "expired"; request: RequestRecord }
  | { status: "underpaid"; request: RequestRecord; neededMsats: number };
export type SettleResult =
  | { status: "posted"; request: RequestRecord; absorbedMsats: number; returnedMsats: number; creditedMsats: number; grant: GrantRecord | null }
  | { status: "not_found" }
  | { status: "not_processing"; request: RequestRecord };
export type FailResult =
  | { status: "voided"; request: RequestRecord; returnedMsats: number; refundedToBalanceMsats: number }
  | { status: "not_found" }
  | { status: "already_resolved"; request: RequestRecord };
export interface ExpireResult {
  requestsExpired: number;
  reservationsExpired: number;
  returnedMsats: number;
  /** Balance debits of expired jobs, back in their customers' balances. */
  refundedToBalanceMsats: number;
}

export interface IdentityView {
  pubkey: string;
  tier: Tier;
  scoreTier: Tier;
  score: number;
  lastActiveMs: number | null;
  pinnedTier: Tier | null;
  wotFloor: Tier | null;
  banned: boolean;
  budgetMsats: number;
  usedMsats: number;
  pendingCount: number;
  known: boolean;
}

/** A request paid from the customer's prepaid balance (SPEC §12): the ledger gives its debit back itself when it is not done. */
export function paidFromBalance(r: Pick<RequestRecord, "requestId" | "paymentRef">): boolean {
  return r.paymentRef === balancePaymentRef(r.requestId);
}
const balancePaymentRef = (requestId: string) => `balance:${requestId}`;

export function assertHex64(v: unknown, what: string): string {
  if (typeof v !== "string" || !HEX64.test(v)) throw new LedgerInputError(`${what}: expected 64 lowercase hex characters`);
  return v;
}
function assertInputMsats(v: unknown, what: string): number {
  if (!isMsats(v)) throw new LedgerInputError(`${what}: expected whole millisats from 0 to ${MAX_MSATS}, got ${String(v)}`);
  return v;
}
function assertNow(v: unknown): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw new LedgerInputError(`nowMs: expected a whole non-negative number, got ${String(v)}`);
  return v;
}
function assertKind(v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 65_535)
    throw new LedgerInputError(`kind: expected an event kind 0–65535, got ${String(v)}`);
  return v;
}

interface RequestRow {
  request_id: string;
  pubkey: string;
  kind: number;
  price_msats: number;
  decision: Decision;
  tier: Tier | null;
  absorb_msats: number;
  charge_msats: number;
  state: RequestState;
  paid_msats: number;
  payment_ref: string | null;
  created_at_ms: number;
  expires_at_ms: number | null;
  reservation_id: number | null;
}
interface ReservationRow {
  id: number;
  request_id: string;
  pubkey: string;
  tier: Tier;
  budget_msats: number;
  amount_msats: number;
  counted_msats: number;
  state: "pending" | "posted" | "voided" | "expired";
  created_at_ms: number;
  expires_at_ms: number;
}
function toRequest(r: RequestRow): RequestRecord {
  return {
    requestId: r.request_id,
    pubkey: r.pubkey,
    kind: r.kind,
    priceMsats: r.price_msats,
    decision: r.decision,
    tier: r.tier,
    absorbMsats: r.absorb_msats,
    chargeMsats: r.charge_msats,
    state: r.state,
    paidMsats: r.paid_msats,
    paymentRef: r.payment_ref,
    createdAtMs: r.created_at_ms,
    expiresAtMs: r.expires_at_ms,
    reservationId: r.reservation_id,
  };
}

export interface LedgerOpenOptions extends OpenOptions {
  nowMs: number;
  /** Run WAL checkpoints on a background thread every this many ms (the service does). */
  backgroundCheckpointMs?: number;
  grantSigner?: GrantSigner;
  /** Expire what is due while opening (default). `verify` opens without, to look before touching. */
  sweep?: boolean;
}

export class Ledger {
  readonly db: Db;
  readonly settings: LedgerSettings;
  readonly balances: BalanceStore;
  private grantSigner: GrantSigner | null;
  private st: Record<string, Statement>;
  private checkpointer: Checkpointer | null = null;
  // Built once: db.transaction() per call costs ~15 µs, a fifth of a whole decision.
  private readonly runImmediate: (fn: () => unknown) => unknown;

  /** Opens (creating and migrating) the file, seeds the pool once and sweeps what expired. */
  static open(path: string, settings: LedgerSettings, opts: LedgerOpenOptions): Ledger {
    const background = opts.backgroundCheckpointMs !== undefined && path !== ":memory:";
    const db = openDb(path, background ? { walAutocheckpointPages: BACKSTOP_AUTOCHECKPOINT_PAGES, ...opts } : opts);
    const ledger = new Ledger(db, settings, opts.grantSigner ?? null);
    if (background) ledger.checkpointer = startCheckpointer(path, opts.backgroundCheckpointMs);
    ledger.seedPool(opts.nowMs);
    if (opts.sweep !== false) ledger.expire(opts.nowMs);
    return ledger;
  }

  constructor(db: Db, settings: LedgerSettings, grantSigner: GrantSigner | null = null) {
    this.db = db;
    this.settings = settings;
    this.grantSigner = grantSigner;
    this.balances = new BalanceStore(db);
    const inTx = db.transaction((fn: () => unknown) => fn());
    this.runImmediate = (fn) => inTx.immediate(fn);
    for (const t of ["new", "established", "trusted", "elite"] as const) assertMsats(settings.budgetsMsats[t], `budget ${t}`);
    assertMsats(settings.poolInitialMsats, "pool initial");
    const q = (sql: string) => db.prepare(sql);
    this.st = {
      pool: q("SELECT initial_msats, credited_msats, balance_msats, pending_msats, absorbed_msats FROM pool WHERE id = 1"),
      request: q("SELECT r.*, v.id AS reservation_id FROM requests r LEFT JOIN reservations v ON v.request_id = r.request_id WHERE r.request_id = ?"),
      reservation: q("SELECT * FROM reservations WHERE request_id = ?"),
      identity: q(SELECT_IDENTITY_SQL),
      used: q("SELECT COALESCE(SUM(counted_msats), 0) AS used FROM reservations WHERE pubkey = ? AND created_at_ms > ?"),
      pendingCount: q("SELECT COUNT(*) AS n FROM reservations WHERE pubkey = ? AND state = 'pending'"),
      insertRequest: q(
        `INSERT INTO requests (request_id, pubkey, kind, price_msats, decision, tier, absorb_msats, charge_msats, state, created_at_ms, expires_at_ms, updated_at_ms)
         VALUES (@requestId, @pubkey, @kind, @priceMsats, @decision, @tier, @absorbMsats, @chargeMsats, @state, @nowMs, @expiresAtMs, @nowMs)`,
      ),
      insertReservation: q(
        `INSERT INTO reservations (request_id, pubkey, tier, budget_msats, amount_msats, counted_msats, state, created_at_ms, expires_at_ms)
         VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)`,
      ),
      debitPool: q("UPDATE pool SET balance_msats = balance_msats - @a, pending_msats = pending_msats + @a WHERE id = 1 AND balance_msats >= @a"),
      resolvePool: q(
        `UPDATE pool SET pending_msats = pending_msats - @amount, absorbed_msats = absorbed_msats + @absorbed,
           balance_msats = balance_msats + @returned WHERE id = 1 AND pending_msats >= @amount`,
      ),
      creditPool: q("UPDATE pool SET credited_msats = credited_msats + @a, balance_msats = balance_msats + @a WHERE id = 1"),
      insertCredit: q("INSERT INTO credits (amount_msats, source, ref, created_at_ms) VALUES (?, ?, ?, ?)"),
      setReservationState: q("UPDATE reservations SET state = ?, counted_msats = ? WHERE id = ? AND state = 'pending'"),
      extendReservation: q("UPDATE reservations SET expires_at_ms = ? WHERE id = ? AND state = 'pending'"),
      insertResolution: q("INSERT INTO resolutions (reservation_id, outcome, absorbed_msats, returned_msats, reason, at_ms) VALUES (?, ?, ?, ?, ?, ?)"),
      setRequestState: q("UPDATE requests SET state = ?, updated_at_ms = ? WHERE request_id = ?"),
      setRequestPaid: q("UPDATE requests SET state = 'processing', paid_msats = ?, payment_ref = ?, expires_at_ms = ?, updated_at_ms = ? WHERE request_id = ?"),
      lastGrant: q("SELECT seq, event_id FROM grants ORDER BY seq DESC LIMIT 1"),
      insertGrant: q(
        `INSERT INTO grants (seq, reservation_id, request_id, pubkey, kind, label, tier, absorbed_msats, charged_msats,
           total_initial_msats, total_credited_msats, total_absorbed_msats, total_pending_msats, total_pool_msats,
           prev_event_id, event_id, event_json, created_at_ms)
         VALUES (@seq, @reservationId, @requestId, @pubkey, @kind, @label, @tier, @absorbedMsats, @chargedMsats,
           @initialMsats, @creditedMsats, @totalAbsorbedMsats, @pendingMsats, @poolMsats, @prevEventId, @eventId, @eventJson, @createdAtMs)`,
      ),
      upsertIdentity: q(
        `INSERT INTO identities (pubkey, score, score_at_ms, last_active_ms, pinned_tier, banned, wot_floor, updated_at_ms)
         VALUES (@pubkey, @score, @scoreAtMs, @lastActiveMs, @pinnedTier, @banned, @wotFloor, @nowMs)
         ON CONFLICT(pubkey) DO UPDATE SET score = excluded.score, score_at_ms = excluded.score_at_ms,
           last_active_ms = excluded.last_active_ms, pinned_tier = excluded.pinned_tier, banned = excluded.banned,
           wot_floor = excluded.wot_floor, updated_at_ms = excluded.updated_at_ms`,
      ),
      logIdentity: q("INSERT INTO identity_log (pubkey, action, detail, at_ms) VALUES (?, ?, ?, ?)"),
      dueRequests: q(
        `SELECT request_id FROM requests WHERE state IN ('awaiting-payment','processing') AND expires_at_ms <= @nowMs
           AND (state = 'processing' OR expires_at_ms <= @nowMs - @graceMs) ORDER BY expires_at_ms LIMIT @batch`,
      ),
    };
  }

  close(): void {
    void this.checkpointer?.stop();
    this.checkpointer = null;
    this.db.close();
  }

  /** Stops the background checkpointer (if any) and waits for it, then closes. */
  async closeAsync(): Promise<void> {
    await this.checkpointer?.stop();
    this.checkpointer = null;
    this.db.close();
  }

  /** One synchronous BEGIN IMMEDIATE transaction, retried if another process holds the lock. */
  tx<T>(fn: () => T): T {
    return withBusyRetry(() => this.runImmediate(fn) as T);
  }

  /** Seeds the pool with `poolInitialMsats` the first time only. Returns whether it did. */
  seedPool(nowMs: number): boolean {
    assertNow(nowMs);
    return this.tx(() => {
      if (this.st.pool!.get()) return false;
      const a = this.settings.poolInitialMsats;
      this.db
        .prepare(
          "INSERT INTO pool (id, initial_msats, credited_msats, balance_msats, pending_msats, absorbed_msats, seeded_at_ms) VALUES (1, ?, 0, ?, 0, 0, ?)",
        )
        .run(a, a, nowMs);
      return true;
    });
  }

  totals(): Totals {
    const p = this.st.pool!.get() as
      { initial_msats: number; credited_msats: number; balance_msats: number; pending_msats: number; absorbed_msats: number } | undefined;
    if (!p) throw new Error("pool not seeded");
    return {
      initialMsats: p.initial_msats,
      creditedMsats: p.credited_msats,
      absorbedMsats: p.absorbed_msats,
      pendingMsats: p.pending_msats,
      poolMsats: p.balance_msats,
    };
  }

  getRequest(requestId: string): RequestRecord | null {
    const row = this.st.request!.get(requestId) as RequestRow | undefined;
    return row ? toRequest(row) : null;
  }

  /**
   * SPEC §2: the free-tier decision for one job request, recorded with its reservation
   * in one transaction. The same request id again returns the stored decision and
   * changes nothing.
   */
  decide(req: { requestId: string; pubkey: string; kind: number; priceMsats: number }, nowMs: number, hook?: TxHook<RequestRecord>): DecideResult;
  decide(
    req: { requestId: string; pubkey: string; kind: number; priceMsats: number },
    nowMs: number,
    hook: TxHook<RequestRecord> | undefined,
    limits: LimitOptions,
  ): DecideResult | LimitedResult;
  decide(
    req: { requestId: string; pubkey: string; kind: number; priceMsats: number },
    nowMs: number,
    hook?: TxHook<RequestRecord>,
    limits?: LimitOptions,
  ): DecideResult | LimitedResult {
    assertHex64(req.requestId, "request id");
    assertHex64(req.pubkey, "pubkey");
    assertKind(req.kind);
    assertInputMsats(req.priceMsats, "price");
    assertNow(nowMs);
    return this.tx(() => {
      const existing = this.st.request!.get(req.requestId) as RequestRow | undefined;
      if (existing) return { status: "exists", request: toRequest(existing) } as const;
      const refused = limits ? findLimited(this.db, req.requestId) : null;
      if (refused) return { status: "limited", limited: refused, fresh: false } as const;

      const inputs = readDecisionInputs(this.db, this.settings, req.pubkey, req.priceMsats, nowMs);
      const { tier, budgetMsats } = inputs;
      const outcome = decideOutcome(inputs);
      const fromBalance = "fromBalance" in outcome && outcome.fromBalance === true;
      // A job the balance pays needs no invoice, so no invoice limit applies to it.
      if (limits && !fromBalance && (outcome.kind === "partial" || outcome.kind === "gate")) {
        const limited = applyInvoiceLimits(
          this.db,
          { requestId: req.requestId, pubkey: req.pubkey, tier },
          nowMs,
          this.settings.invoiceLimits ?? DEFAULT_INVOICE_LIMITS,
        );
        if (limited) {
          limits.onLimited?.(this.db, limited);
          return { status: "limited", limited, fresh: true } as const;
        }
      }

      const state: RequestState = outcome.kind === "blocked" ? "blocked" : outcome.kind === "free" || fromBalance ? "processing" : "awaiting-payment";
      const expiresAtMs = state === "blocked" ? null : nowMs + (state === "processing" ? this.settings.timeoutSec : this.settings.invoiceExpirySec) * 1000;
      const absorbMsats = outcome.kind === "blocked" ? 0 : outcome.absorbMsats;
      const chargeMsats = outcome.kind === "blocked" ? 0 : outcome.chargeMsats;
      this.st.insertRequest!.run({
        requestId: req.requestId,
        pubkey: req.pubkey,
        kind: req.kind,
        priceMsats: req.priceMsats,
        decision: outcome.kind,
        tier: outcome.kind === "blocked" ? null : tier,
        absorbMsats,
        chargeMsats,
        state,
        nowMs,
        expiresAtMs,
      });
      let reservationId: number | null = null;
      if (absorbMsats > 0) {
        const debit = this.st.debitPool!.run({ a: absorbMsats });
        if (debit.changes !== 1) throw new Error("invariant: pool debit refused inside the deciding transaction");
        reservationId = Number(
          this.st.insertReservation!.run(req.requestId, req.pubkey, tier, budgetMsats, absorbMsats, absorbMsats, nowMs, expiresAtMs!).lastInsertRowid,
        );
      }
      // SPEC §12: the balance pays the rest, held by this job until it resolves.
      let balanceLeftMsats: number | null = null;
      if (fromBalance) {
        balanceLeftMsats = this.balances.hold(req.requestId, req.pubkey, chargeMsats, nowMs);
        if (balanceLeftMsats === null) throw new Error("invariant: balance debit refused inside the deciding transaction");
        this.st.setRequestPaid!.run(chargeMsats, balancePaymentRef(req.requestId), expiresAtMs, nowMs, req.requestId);
      }
      const request: RequestRecord = {
        requestId: req.requestId,
        pubkey: req.pubkey,
        kind: req.kind,
        priceMsats: req.priceMsats,
        decision: outcome.kind,
        tier: outcome.kind === "blocked" ? null : tier,
        absorbMsats,
        chargeMsats,
        state,
        paidMsats: fromBalance ? chargeMsats : 0,
        paymentRef: fromBalance ? balancePaymentRef(req.requestId) : null,
        createdAtMs: nowMs,
        expiresAtMs,
        reservationId,
        ...("reason" in outcome ? { reason: outcome.reason } : {}),
        ...(balanceLeftMsats !== null ? { balanceLeftMsats } : {}),
      };
      hook?.(this.db, request);
      return { status: "decided", request } as const;
    });
  }

  /**
   * The customer paid `paidMsats` (as confirmed by the payment backend's own lookup) at
   * `paidAtMs` (default: now). A payment counts if it settled before the offer's deadline,
   * even when seen later (within the grace); the job's timeout runs from now.
   * A partial offer's reservation is extended with it.
   */
  markPaid(requestId: string, paid: { paidMsats: number; paymentRef: string; paidAtMs?: number }, nowMs: number, hook?: TxHook<RequestRecord>): PaidResult {
    assertHex64(requestId, "request id");
    assertInputMsats(paid.paidMsats, "paid amount");
    if (typeof paid.paymentRef !== "string" || paid.paymentRef.length === 0 || paid.paymentRef.length > 200)
      throw new LedgerInputError("payment reference: expected a non-empty string of at most 200 characters");
    assertNow(nowMs);
    const paidAtMs = paid.paidAtMs === undefined ? nowMs : assertNow(paid.paidAtMs);
    return this.tx(() => {
      const row = this.st.request!.get(requestId) as RequestRow | undefined;
      if (!row) return { status: "not_found" } as const;
      const request = toRequest(row);
      if (row.state !== "awaiting-payment") {
        if (row.payment_ref === paid.paymentRef) return { status: "already_paid", request } as const;
        return { status: "not_awaiting_payment", request } as const;
      }
      if (row.expires_at_ms !== null && row.expires_at_ms <= Math.min(paidAtMs, nowMs)) return { status: "expired", request } as const;
      if (paid.paidMsats < row.charge_msats) return { status: "underpaid", request, neededMsats: row.charge_msats } as const;
      const expiresAtMs = nowMs + this.settings.timeoutSec * 1000;
      this.st.setRequestPaid!.run(paid.paidMsats, paid.paymentRef, expiresAtMs, nowMs, requestId);
      if (row.reservation_id !== null) this.st.extendReservation!.run(expiresAtMs, row.reservation_id);
      const updated = toRequest(this.st.request!.get(requestId) as RequestRow);
      hook?.(this.db, updated);
      return { status: "paid", request: updated } as const;
    });
  }

  /**
   * A worker delivered the result: the reservation is posted. Absorbed = min(reserved,
   * actual cost when the worker states one); the rest returns to the pool. Paid jobs
   * earn trust and credit `poolCreditPct` of what was paid back to the pool.
   */
  settle(requestId: string, opts: { actualMsats?: number | null }, nowMs: number, hook?: TxHook<SettleResult>): SettleResult {
    assertHex64(requestId, "request id");
    if (opts.actualMsats != null) assertInputMsats(opts.actualMsats, "actual cost");
    assertNow(nowMs);
    return this.tx(() => {
      const row = this.st.request!.get(requestId) as RequestRow | undefined;
      if (!row) return { status: "not_found" } as const;
      if (row.state !== "processing") return { status: "not_processing", request: toRequest(row) } as const;
      // Past its deadline the job is expired, whether or not the sweep has run yet: the
      // outcome must not depend on the sweep's timing.
      if (row.expires_at_ms !== null && row.expires_at_ms <= nowMs) return { status: "not_processing", request: toRequest(row) } as const;

      let absorbedMsats = 0;
      let returnedMsats = 0;
      let grant: GrantRecord | null = null;
      const res = this.st.reservation!.get(requestId) as ReservationRow | undefined;
      if (res) {
        if (res.state !== "pending") throw new Error(`invariant: processing request ${requestId} has a ${res.state} reservation`);
        absorbedMsats = opts.actualMsats != null ? Math.min(res.amount_msats, opts.actualMsats) : res.amount_msats;
        returnedMsats = res.amount_msats - absorbedMsats;
        this.resolve(res, "posted", absorbedMsats, null, nowMs);
      }
      // A job paid from the balance: what was held is now spent (and counts as paid below).
      this.balances.resolveHold(requestId, "spent", null, nowMs);
      let creditedMsats = 0;
      if (row.paid_msats > 0) {
        this.updateTrust(row.pubkey, nowMs, (s) => applySuccess(s, nowMs, this.settings.trust), "paid-job", requestId);
        creditedMsats = percentOfMsats(row.paid_msats, this.settings.poolCreditPct);
        if (creditedMsats > 0) this.creditInTx(creditedMsats, "paid-job", requestId, nowMs);
      }
      if (res && absorbedMsats > 0) grant = this.recordGrant(res, row, absorbedMsats, nowMs);
      this.st.setRequestState!.run("done", nowMs, requestId);
      const result: SettleResult = {
        status: "posted",
        request: toRequest(this.st.request!.get(requestId) as RequestRow),
        absorbedMsats,
        returnedMsats,
        creditedMsats,
        grant,
      };
      hook?.(this.db, result);
      return result;
    });
  }

  /** Worker error, customer deletion or operator `fail`: the reservation is voided. */
  fail(requestId: string, reason: string, nowMs: number, hook?: TxHook<FailResult>): FailResult {
    assertHex64(requestId, "request id");
    assertNow(nowMs);
    const why = String(reason).slice(0, 200);
    return this.tx(() => {
      const row = this.st.request!.get(requestId) as RequestRow | undefined;
      if (!row) return { status: "not_found" } as const;
      if (row.state !== "awaiting-payment" && row.state !== "processing") return { status: "already_resolved", request: toRequest(row) } as const;
      let returnedMsats = 0;
      const res = this.st.reservation!.get(requestId) as ReservationRow | undefined;
      if (res && res.state === "pending") {
        this.resolve(res, "voided", 0, why, nowMs);
        returnedMsats = res.amount_msats;
      }
      const refundedToBalanceMsats = this.balances.resolveHold(requestId, "refunded", why, nowMs);
      this.st.setRequestState!.run("failed", nowMs, requestId);
      const result: FailResult = {
        status: "voided",
        request: toRequest(this.st.request!.get(requestId) as RequestRow),
        returnedMsats,
        refundedToBalanceMsats,
      };
      hook?.(this.db, result);
      return result;
    });
  }

  /**
   * Expires open requests whose deadline passed and returns their reservations to the
   * pool. Runs at open and on a timer; short transactions of at most `batch` requests.
   */
  expire(nowMs: number, batch = 500): ExpireResult {
    assertNow(nowMs);
    const total: ExpireResult = { requestsExpired: 0, reservationsExpired: 0, returnedMsats: 0, refundedToBalanceMsats: 0 };
    for (;;) {
      const r = this.tx(() => {
        const graceMs = (this.settings.paymentGraceSec ?? 0) * 1000;
        const due = this.st.dueRequests!.all({ nowMs, graceMs, batch }) as { request_id: string }[];
        const out: ExpireResult = { requestsExpired: 0, reservationsExpired: 0, returnedMsats: 0, refundedToBalanceMsats: 0 };
        for (const { request_id } of due) {
          const res = this.st.reservation!.get(request_id) as ReservationRow | undefined;
          if (res && res.state === "pending") {
            this.resolve(res, "expired", 0, null, nowMs);
            out.reservationsExpired++;
            out.returnedMsats += res.amount_msats;
          }
          out.refundedToBalanceMsats += this.balances.resolveHold(request_id, "refunded", "expired", nowMs);
          this.st.setRequestState!.run("expired", nowMs, request_id);
          out.requestsExpired++;
        }
        return { out, more: due.length === batch };
      });
      total.requestsExpired += r.out.requestsExpired;
      total.reservationsExpired += r.out.reservationsExpired;
      total.returnedMsats += r.out.returnedMsats;
      total.refundedToBalanceMsats += r.out.refundedToBalanceMsats;
      if (!r.more) return total;
    }
  }

  // ---- prepaid balances (SPEC §12; the SQL is in balance-store.ts) --------------------

  get maxBalanceMsats(): number {
    return this.settings.maxBalanceMsats ?? DEFAULT_MAX_BALANCE_MSATS;
  }

  balance(pubkey: string): BalanceView {
    assertHex64(pubkey, "pubkey");
    return this.balances.get(pubkey);
  }

  /**
   * Credits a customer's balance. `ref` (the payment hash of a zap or deposit invoice)
   * is credited once. Over the cap: "refuse" (the operator, before an invoice is made)
   * or "credit-to-cap" (money that already arrived; the rest is recorded as excess).
   */
  deposit(
    d: { pubkey: string; amountMsats: number; source: DepositSource; ref: string | null; note?: string | null; overCap: "refuse" | "credit-to-cap" },
    nowMs: number,
    hook?: TxHook<DepositResult>,
  ): DepositResult {
    assertHex64(d.pubkey, "pubkey");
    assertInputMsats(d.amountMsats, "deposit");
    if (d.amountMsats === 0) throw new LedgerInputError("deposit: must be more than 0");
    if (d.ref !== null && (typeof d.ref !== "string" || d.ref.length === 0 || d.ref.length > 200))
      throw new LedgerInputError("deposit reference: expected a non-empty string of at most 200 characters");
    assertNow(nowMs);
    const note = d.note == null ? null : String(d.note).slice(0, 500);
    return this.tx(() => {
      const r = this.balances.deposit({ ...d, note, maxBalanceMsats: this.maxBalanceMsats, nowMs });
      hook?.(this.db, r);
      return r;
    });
  }

  /** The operator paid a customer back by hand; refused (null) when the balance does not cover it. */
  withdraw(pubkey: string, amountMsats: number, note: string | null, nowMs: number): BalanceView | null {
    assertHex64(pubkey, "pubkey");
    assertInputMsats(amountMsats, "refund");
    if (amountMsats === 0) throw new LedgerInputError("refund: must be more than 0");
    assertNow(nowMs);
    return this.tx(() => this.balances.withdraw(pubkey, amountMsats, note === null ? null : String(note).slice(0, 500), nowMs));
  }

  /** The operator (or a paid job) adds msats to the pool. */
  credit(amountMsats: number, source: "operator" | "paid-job", ref: string | null, nowMs: number): Totals {
    assertInputMsats(amountMsats, "credit");
    if (amountMsats === 0) throw new LedgerInputError("credit: must be more than 0");
    assertNow(nowMs);
    return this.tx(() => {
      this.creditInTx(amountMsats, source, ref, nowMs);
      return this.totals();
    });
  }

  private creditInTx(amountMsats: number, source: "operator" | "paid-job", ref: string | null, nowMs: number): void {
    const t = this.totals();
    if (t.initialMsats + t.creditedMsats + amountMsats > Number.MAX_SAFE_INTEGER)
      throw new LedgerInputError("credit: the pool's totals would no longer be exact integers");
    this.st.insertCredit!.run(amountMsats, source, ref, nowMs);
    this.st.creditPool!.run({ a: amountMsats });
  }

  private resolve(res: ReservationRow, outcome: "posted" | "voided" | "expired", absorbedMsats: number, reason: string | null, nowMs: number): void {
    const returned = res.amount_msats - absorbedMsats;
    if (absorbedMsats < 0 || returned < 0) throw new Error("invariant: absorbed outside 0..reserved");
    const upd = this.st.setReservationState!.run(outcome, outcome === "posted" ? absorbedMsats : 0, res.id);
    if (upd.changes !== 1) throw new Error(`invariant: reservation ${res.id} was not pending`);
    this.st.insertResolution!.run(res.id, outcome, absorbedMsats, returned, reason, nowMs);
    const pool = this.st.resolvePool!.run({ amount: res.amount_msats, absorbed: absorbedMsats, returned });
    if (pool.changes !== 1) throw new Error("invariant: pending total below a pending reservation");
  }

  private recordGrant(res: ReservationRow, req: RequestRow, absorbedMsats: number, nowMs: number): GrantRecord {
    const last = this.st.lastGrant!.get() as { seq: number; event_id: string | null } | undefined;
    if (last && this.grantSigner && last.event_id === null)
      throw new Error(`invariant: grant ${last.seq} was recorded unsigned; a signed chain cannot continue from it (dvm-gate verify names it)`);
    if (last && !this.grantSigner && last.event_id !== null)
      throw new Error("invariant: this ledger was opened without the gate's key, but the grant chain is signed: open it with a grantSigner to post");
    const base = {
      seq: (last?.seq ?? 0) + 1,
      prevEventId: last ? last.event_id : null,
      reservationId: res.id,
      requestId: req.request_id,
      pubkey: req.pubkey,
      kind: req.kind,
      label: (req.decision === "partial" ? "partial" : "free") as "free" | "partial",
      tier: res.tier,
      absorbedMsats,
      // What the offer charged (a customer who overpaid is not "charged" more; the
      // overpayment is visible in the request's paid amount, not in the public grant).
      chargedMsats: req.paid_msats > 0 ? req.charge_msats : 0,
      totals: this.totals(),
      createdAtMs: nowMs,
    };
    // The budget window is counted from the decision (SPEC §4 `decided`), not from this post.
    const signed = this.grantSigner ? this.grantSigner({ ...base, decidedAtMs: res.created_at_ms }) : null;
    const grant: GrantRecord = { ...base, eventId: signed?.id ?? null, eventJson: signed?.json ?? null };
    this.st.insertGrant!.run({
      seq: grant.seq,
      reservationId: grant.reservationId,
      requestId: grant.requestId,
      pubkey: grant.pubkey,
      kind: grant.kind,
      label: grant.label,
      tier: grant.tier,
      absorbedMsats: grant.absorbedMsats,
      chargedMsats: grant.chargedMsats,
      initialMsats: grant.totals.initialMsats,
      creditedMsats: grant.totals.creditedMsats,
      totalAbsorbedMsats: grant.totals.absorbedMsats,
      pendingMsats: grant.totals.pendingMsats,
      poolMsats: grant.totals.poolMsats,
      prevEventId: grant.prevEventId,
      eventId: grant.eventId,
      eventJson: grant.eventJson,
      createdAtMs: nowMs,
    });
    return grant;
  }

  // ---- identities -------------------------------------------------------------

  private trustState(pubkey: string, nowMs: number): TrustState {
    return toTrustState(this.st.identity!.get(pubkey) as IdentityRow | undefined, nowMs);
  }

  private updateTrust(pubkey: string, nowMs: number, change: (s: TrustState) => TrustState, action: string, detail: string | null): TrustState {
    const next = change(this.trustState(pubkey, nowMs));
    this.st.upsertIdentity!.run({
      pubkey,
      score: next.score,
      scoreAtMs: next.scoreAtMs,
      lastActiveMs: next.lastActiveMs,
      pinnedTier: next.pinnedTier,
      banned: next.banned ? 1 : 0,
      wotFloor: next.wotFloor,
      nowMs,
    });
    this.st.logIdentity!.run(pubkey, action, detail, nowMs);
    return next;
  }

  identity(pubkey: string, nowMs: number): IdentityView {
    assertHex64(pubkey, "pubkey");
    assertNow(nowMs);
    const row = this.st.identity!.get(pubkey) as IdentityRow | undefined;
    const s = toTrustState(row, nowMs);
    const tier = effectiveTier(s, nowMs, this.settings.trust);
    const score = scoreAt(s, nowMs, this.settings.trust);
    return {
      pubkey,
      tier,
      scoreTier: tierForScore(score, this.settings.trust.thresholds),
      score,
      lastActiveMs: s.lastActiveMs,
      pinnedTier: s.pinnedTier,
      wotFloor: s.wotFloor,
      banned: s.banned,
      budgetMsats: this.settings.budgetsMsats[tier],
      usedMsats: (this.st.used!.get(pubkey, nowMs - WINDOW_MS) as { used: number }).used,
      pendingCount: (this.st.pendingCount!.get(pubkey) as { n: number }).n,
      known: row !== undefined,
    };
  }

  /** Operator pin; `null` removes the pin and the score decides again. */
  setTier(pubkey: string, tier: Tier | null, nowMs: number): IdentityView {
    assertHex64(pubkey, "pubkey");
    if (tier !== null && !isTier(tier)) throw new LedgerInputError(`tier: expected one of new, established, trusted, elite, got ${JSON.stringify(tier)}`);
    assertNow(nowMs);
    this.tx(() => this.updateTrust(pubkey, nowMs, (s) => ({ ...s, pinnedTier: tier }), "set-tier", tier ?? "unpinned"));
    return this.identity(pubkey, nowMs);
  }

  setBanned(pubkey: string, banned: boolean, reason: string | null, nowMs: number): IdentityView {
    assertHex64(pubkey, "pubkey");
    assertNow(nowMs);
    this.tx(() => this.updateTrust(pubkey, nowMs, (s) => ({ ...s, banned }), banned ? "ban" : "unban", reason));
    return this.identity(pubkey, nowMs);
  }

  /** Web-of-trust floor from signed events of operator-chosen keys; `null` clears it. */
  setWotFloor(pubkey: string, tier: Tier | null, source: string, nowMs: number): void {
    assertHex64(pubkey, "pubkey");
    if (tier !== null && !isTier(tier)) throw new LedgerInputError(`tier: expected one of new, established, trusted, elite`);
    assertNow(nowMs);
    this.tx(() => this.updateTrust(pubkey, nowMs, (s) => ({ ...s, wotFloor: tier }), "wot-floor", `${tier ?? "none"} from ${source}`));
  }

  /**
   * Replaces every web-of-trust floor at once with `floors` (pubkey → tier), in one
   * transaction: pubkeys no longer vouched for lose their floor. Returns how many changed.
   */
  replaceWotFloors(floors: ReadonlyMap<string, Tier>, source: string, nowMs: number): { set: number; cleared: number } {
    for (const [pk, tier] of floors) {
      assertHex64(pk, "pubkey");
      if (!isTier(tier)) throw new LedgerInputError(`tier: expected one of new, established, trusted, elite`);
    }
    assertNow(nowMs);
    return this.tx(() => {
      let set = 0;
      let cleared = 0;
      const current = this.db.prepare("SELECT pubkey FROM identities WHERE wot_floor IS NOT NULL").all() as { pubkey: string }[];
      for (const { pubkey } of current) {
        if (floors.has(pubkey)) continue;
        this.updateTrust(pubkey, nowMs, (s) => ({ ...s, wotFloor: null }), "wot-floor", `none from ${source}`);
        cleared++;
      }
      for (const [pubkey, tier] of floors) {
        const row = this.st.identity!.get(pubkey) as IdentityRow | undefined;
        if (row?.wot_floor === tier) continue;
        this.updateTrust(pubkey, nowMs, (s) => ({ ...s, wotFloor: tier }), "wot-floor", `${tier} from ${source}`);
        set++;
      }
      return { set, cleared };
    });
  }

  /**
   * One abuse each for many pubkeys in one transaction (the relay plugin's rate-limit
   * violations). `attempts` bounds the busy retries: the plugin passes 1 and tries again
   * on its next round rather than keep a relay's writer thread waiting.
   */
  recordAbuseMany(pubkeys: readonly string[], reason: string, nowMs: number, attempts = 8): number {
    for (const pk of pubkeys) assertHex64(pk, "pubkey");
    assertNow(nowMs);
    const why = String(reason).slice(0, 200);
    return withBusyRetry(
      () =>
        this.runImmediate(() => {
          for (const pk of pubkeys) this.updateTrust(pk, nowMs, (s) => applyAbuse(s, nowMs, this.settings.trust), "abuse", why);
          return pubkeys.length;
        }) as number,
      attempts,
    );
  }

  /** Abuse lowers the score by the configured penalty (× `times`). */
  recordAbuse(pubkey: string, reason: string, nowMs: number, times = 1): IdentityView {
    assertHex64(pubkey, "pubkey");
    assertNow(nowMs);
    if (!Number.isSafeInteger(times) || times < 1 || times > 1000) throw new LedgerInputError("times: expected a whole number 1–1000");
    this.tx(() => this.updateTrust(pubkey, nowMs, (s) => applyAbuse(s, nowMs, this.settings.trust, times), "abuse", String(reason).slice(0, 200)));
    return this.identity(pubkey, nowMs);
  }

  // ---- reading grants -----------------------------------------------------------

  grants(opts: { afterSeq?: number; limit?: number; pubkey?: string } = {}): GrantRecord[] {
    for (const [name, v] of [
      ["limit", opts.limit],
      ["afterSeq", opts.afterSeq],
    ] as const)
      if (v !== undefined && (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0))
        throw new LedgerInputError(`${name}: expected a whole non-negative number, got ${String(v)}`);
    const limit = Math.min(Math.max(1, Math.trunc(opts.limit ?? 100)), 10_000);
    const after = Math.max(0, Math.trunc(opts.afterSeq ?? 0));
    if (opts.pubkey !== undefined) assertHex64(opts.pubkey, "pubkey");
    const rows = (
      opts.pubkey
        ? this.db.prepare("SELECT * FROM grants WHERE pubkey = ? AND seq > ? ORDER BY seq LIMIT ?").all(opts.pubkey, after, limit)
        : this.db.prepare("SELECT * FROM grants WHERE seq > ? ORDER BY seq LIMIT ?").all(after, limit)
    ) as GrantRow[];
    return rows.map(toGrant);
  }
}

export interface GrantRow {
  seq: number;
  reservation_id: number;
  request_id: string;
  pubkey: string;
  kind: number;
  label: "free" | "partial";
  tier: Tier;
  absorbed_msats: number;
  charged_msats: number;
  total_initial_msats: number;
  total_credited_msats: number;
  total_absorbed_msats: number;
  total_pending_msats: number;
  total_pool_msats: number;
  prev_event_id: string | null;
  event_id: string | null;
  event_json: string | null;
  created_at_ms: number;
}

export function toGrant(r: GrantRow): GrantRecord {
  return {
    seq: r.seq,
    prevEventId: r.prev_event_id,
    reservationId: r.reservation_id,
    requestId: r.request_id,
    pubkey: r.pubkey,
    kind: r.kind,
    label: r.label,
    tier: r.tier,
    absorbedMsats: r.absorbed_msats,
    chargedMsats: r.charged_msats,
    totals: {
      initialMsats: r.total_initial_msats,
      creditedMsats: r.total_credited_msats,
      absorbedMsats: r.total_absorbed_msats,
      pendingMsats: r.total_pending_msats,
      poolMsats: r.total_pool_msats,
    },
    createdAtMs: r.created_at_ms,
    eventId: r.event_id,
    eventJson: r.event_json,
  };
}
