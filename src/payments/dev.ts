// The dev wallet: an embedded "node" for the demo and the tests. It issues real,
// signed regtest bolt11 invoices and keeps them in `dev_wallet_invoices`; nothing pays
// them but `dvm-gate dev-pay` (devPay below), possibly from another process sharing
// the database file, which is why hints come from polling the table.
import { createHash, randomBytes } from "node:crypto";
import { withBusyRetry, type Db } from "../ledger/db.js";
import { isMsats } from "../util/money.js";
import { decodeBolt11, encodeBolt11, normalizeBolt11 } from "./bolt11.js";
import { PaymentBackendError, type InvoiceRequest, type InvoiceState, type IssuedInvoice, type PaymentBackend } from "./types.js";

/** Regtest prefix ("lnbcrt…"): no real wallet would try to pay it on mainnet. */
export const DEV_NETWORK = "bcrt";

/**
 * The schema has no place for a per-database key, and the dev wallet moves no real
 * money, so its node key is a fixed, published one: anybody can recompute it, which is
 * fine for a wallet whose only payer is `dvm-gate dev-pay`.
 */
export const DEV_NODE_SECRET_KEY: Uint8Array = createHash("sha256").update("dvm-gate/dev-wallet/node-key/v1").digest();

/** Long enough to cover the commit-vs-timestamp order of payments from other processes. */
const HINT_OVERLAP_MS = 5_000;
const MAX_EXPIRY_SEC = 7 * 86_400;

interface DevRow {
  payment_hash: string;
  bolt11: string;
  amount_msats: number;
  description: string;
  expires_at_ms: number;
  created_at_ms: number;
  paid_at_ms: number | null;
}

export interface DevWalletOptions {
  nodeSecretKey?: Uint8Array;
  /** How often to look for payments made by other processes (default 250 ms). */
  pollMs?: number;
  /** Clock, for tests of expiry. */
  nowMs?: () => number;
}

export class DevWalletBackend implements PaymentBackend {
  readonly name = "dev" as const;
  private readonly nodeSecretKey: Uint8Array;
  private readonly pollMs: number;
  private readonly nowMs: () => number;
  private readonly hintCallbacks = new Set<(paymentHash: string) => void>();
  private pollTimer: NodeJS.Timeout | null = null;
  private hintCursorMs = 0;
  /** Payments already hinted inside the overlap window, so each is hinted once. */
  private hinted = new Map<string, number>();
  private closed = false;

  constructor(
    private readonly db: Db,
    opts: DevWalletOptions = {},
  ) {
    this.nodeSecretKey = opts.nodeSecretKey ?? DEV_NODE_SECRET_KEY;
    if (this.nodeSecretKey.length !== 32) throw new PaymentBackendError("dev wallet node key must be 32 bytes");
    this.pollMs = opts.pollMs ?? 250;
    if (!Number.isSafeInteger(this.pollMs) || this.pollMs < 10)
      throw new PaymentBackendError(`dev wallet pollMs must be a whole number ≥ 10, got ${this.pollMs}`);
    this.nowMs = opts.nowMs ?? Date.now;
  }

  async createInvoice(req: InvoiceRequest): Promise<IssuedInvoice> {
    this.assertOpen();
    if (!isMsats(req.amountMsats) || req.amountMsats === 0) throw new PaymentBackendError(`invoice amount must be whole millisats ≥ 1, got ${req.amountMsats}`);
    if (!Number.isSafeInteger(req.expirySec) || req.expirySec < 1 || req.expirySec > MAX_EXPIRY_SEC)
      throw new PaymentBackendError(`invoice expiry must be 1–${MAX_EXPIRY_SEC} s, got ${req.expirySec}`);
    const preimage = randomBytes(32);
    const paymentHash = createHash("sha256").update(preimage).digest("hex");
    // BOLT 11 timestamps are whole seconds: expiry is counted from that second, so the
    // stored expiry is exactly what any decoder of the invoice computes.
    const createdAtSec = Math.floor(this.nowMs() / 1000);
    const bolt11 = encodeBolt11({
      network: DEV_NETWORK,
      amountMsats: req.amountMsats,
      paymentHash,
      description: req.description,
      createdAtSec,
      expirySec: req.expirySec,
      nodeSecretKey: this.nodeSecretKey,
    });
    const expiresAtMs = (createdAtSec + req.expirySec) * 1000;
    withBusyRetry(() =>
      this.db
        .prepare(
          `INSERT INTO dev_wallet_invoices (payment_hash, bolt11, amount_msats, description, expires_at_ms, created_at_ms, paid_at_ms)
           VALUES (?, ?, ?, ?, ?, ?, NULL)`,
        )
        .run(paymentHash, bolt11, req.amountMsats, req.description, expiresAtMs, createdAtSec * 1000),
    );
    return { bolt11, paymentHash, expiresAtMs };
  }

  async lookupInvoice(paymentHash: string): Promise<InvoiceState> {
    this.assertOpen();
    const row = readRow(this.db, paymentHash.toLowerCase());
    if (!row) throw new PaymentBackendError(`dev wallet: no invoice with payment hash ${paymentHash.slice(0, 64)}`);
    if (row.paid_at_ms !== null) return { state: "settled", amountMsats: row.amount_msats, settledAtMs: row.paid_at_ms };
    if (this.nowMs() >= row.expires_at_ms) return { state: "expired" };
    return { state: "pending" };
  }

  onPaymentHint(cb: (paymentHash: string) => void): () => void {
    this.assertOpen();
    if (this.hintCallbacks.size === 0) this.startPolling();
    this.hintCallbacks.add(cb);
    return () => {
      this.hintCallbacks.delete(cb);
      if (this.hintCallbacks.size === 0) this.stopPolling();
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.hintCallbacks.clear();
    this.stopPolling();
  }

  private assertOpen(): void {
    if (this.closed) throw new PaymentBackendError("dev wallet backend is closed");
  }

  private startPolling(): void {
    // Hints are for payments from now on; whoever subscribes looks up what is older.
    const max = this.db.prepare("SELECT max(paid_at_ms) AS m FROM dev_wallet_invoices").get() as { m: number | null };
    this.hintCursorMs = max.m ?? 0;
    this.hinted = new Map(this.paidSince(this.hintCursorMs - HINT_OVERLAP_MS).map((r) => [r.payment_hash, r.paid_at_ms]));
    this.pollTimer = setInterval(() => this.poll(), this.pollMs);
    this.pollTimer.unref();
  }

  private stopPolling(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = null;
  }

  private paidSince(fromMs: number): { payment_hash: string; paid_at_ms: number }[] {
    return this.db
      .prepare("SELECT payment_hash, paid_at_ms FROM dev_wallet_invoices WHERE paid_at_ms IS NOT NULL AND paid_at_ms >= ? ORDER BY paid_at_ms LIMIT 1000")
      .all(fromMs) as { payment_hash: string; paid_at_ms: number }[];
  }

  private poll(): void {
    let rows: { payment_hash: string; paid_at_ms: number }[];
    try {
      rows = this.paidSince(this.hintCursorMs - HINT_OVERLAP_MS);
    } catch {
      return; // a locked or closing database: the next tick tries again
    }
    for (const r of rows) {
      if (this.hinted.has(r.payment_hash)) continue;
      this.hinted.set(r.payment_hash, r.paid_at_ms);
      if (r.paid_at_ms > this.hintCursorMs) this.hintCursorMs = r.paid_at_ms;
      for (const cb of [...this.hintCallbacks]) {
        try {
          cb(r.payment_hash);
        } catch {
          /* a subscriber's bug must not stop hints for the others */
        }
      }
    }
    const horizon = this.hintCursorMs - HINT_OVERLAP_MS;
    for (const [hash, at] of this.hinted) if (at < horizon) this.hinted.delete(hash);
  }
}

function readRow(db: Db, paymentHash: string): DevRow | undefined {
  return db.prepare("SELECT * FROM dev_wallet_invoices WHERE payment_hash = ?").get(paymentHash) as DevRow | undefined;
}

export interface DevPayResult {
  status: "paid" | "already_paid" | "unknown" | "expired" | "invalid";
  paymentHash?: string;
  amountMsats?: number;
  reason?: string;
}

/**
 * Pays a dev-wallet invoice: one BEGIN IMMEDIATE transaction, idempotent. Anything that
 * is not an unpaid, unexpired invoice this wallet issued is refused with a reason and
 * changes nothing.
 */
export function devPay(db: Db, bolt11: string, nowMs: number): DevPayResult {
  let decoded;
  try {
    decoded = decodeBolt11(bolt11);
  } catch (err) {
    return { status: "invalid", reason: (err as Error).message };
  }
  const paymentHash = decoded.paymentHash;
  const text = normalizeBolt11(bolt11);
  return withBusyRetry(() =>
    db
      .transaction((): DevPayResult => {
        const row = readRow(db, paymentHash);
        if (!row) return { status: "unknown", paymentHash, reason: `unknown invoice: the dev wallet did not issue payment hash ${paymentHash}` };
        // Same hash, different invoice: someone re-signed our hash with another amount.
        if (row.bolt11 !== text) return { status: "invalid", paymentHash, reason: "this is not the invoice the dev wallet issued for that payment hash" };
        if (row.paid_at_ms !== null) return { status: "already_paid", paymentHash, amountMsats: row.amount_msats, reason: "already paid" };
        if (nowMs >= row.expires_at_ms) return { status: "expired", paymentHash, reason: `invoice expired at ${new Date(row.expires_at_ms).toISOString()}` };
        db.prepare("UPDATE dev_wallet_invoices SET paid_at_ms = ? WHERE payment_hash = ? AND paid_at_ms IS NULL").run(nowMs, paymentHash);
        return { status: "paid", paymentHash, amountMsats: row.amount_msats };
      })
      .immediate(),
  );
}
