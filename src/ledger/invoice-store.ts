// The `invoices` table: the invoices the gate issued for partial and gated requests,
// and whether each was paid or closed. Writers expect to run inside a transaction the
// caller opened (Ledger.tx or a ledger hook); readers may run outside one.
import type { Db } from "./db.js";
import { stmt } from "./stmt.js";

export interface OpenInvoice {
  paymentHash: string;
  requestId: string;
  expiresAtMs: number;
}

type OpenRow = { payment_hash: string; request_id: string; expires_at_ms: number };
const toOpen = (r: OpenRow): OpenInvoice => ({ paymentHash: r.payment_hash, requestId: r.request_id, expiresAtMs: r.expires_at_ms });

export function insertInvoice(
  db: Db,
  i: { paymentHash: string; requestId: string; bolt11: string; amountMsats: number; backend: string; expiresAtMs: number; createdAtMs: number },
): void {
  stmt(
    db,
    "INSERT INTO invoices (payment_hash, request_id, bolt11, amount_msats, backend, state, expires_at_ms, created_at_ms) VALUES (?, ?, ?, ?, ?, 'open', ?, ?)",
  ).run(i.paymentHash, i.requestId, i.bolt11, i.amountMsats, i.backend, i.expiresAtMs, i.createdAtMs);
}

/** The open invoice with this payment hash, if any. */
export function getOpenInvoice(db: Db, paymentHash: string): OpenInvoice | null {
  const r = stmt(db, "SELECT payment_hash, request_id, expires_at_ms FROM invoices WHERE payment_hash = ? AND state = 'open'").get(paymentHash) as
    OpenRow | undefined;
  return r ? toOpen(r) : null;
}

/** Open invoices, soonest to expire first. */
export function listOpenInvoices(db: Db, limit: number): OpenInvoice[] {
  return (
    stmt(db, "SELECT payment_hash, request_id, expires_at_ms FROM invoices WHERE state = 'open' ORDER BY expires_at_ms LIMIT ?").all(limit) as OpenRow[]
  ).map(toOpen);
}

/** Open invoices whose request is still awaiting payment but due to expire by `nowMs`. */
export function dueOpenInvoiceHashes(db: Db, nowMs: number, limit: number): string[] {
  return (
    stmt(
      db,
      `SELECT i.payment_hash FROM invoices i JOIN requests r ON r.request_id = i.request_id
       WHERE i.state = 'open' AND r.state = 'awaiting-payment' AND r.expires_at_ms <= ? LIMIT ?`,
    ).all(nowMs, limit) as { payment_hash: string }[]
  ).map((r) => r.payment_hash);
}

/** Open invoices whose request can no longer take a payment. */
export function deadOpenInvoices(db: Db, limit: number): { paymentHash: string; expiresAtMs: number }[] {
  return (
    stmt(
      db,
      `SELECT i.payment_hash, i.expires_at_ms FROM invoices i JOIN requests r ON r.request_id = i.request_id
       WHERE i.state = 'open' AND r.state <> 'awaiting-payment' LIMIT ?`,
    ).all(limit) as { payment_hash: string; expires_at_ms: number }[]
  ).map((r) => ({ paymentHash: r.payment_hash, expiresAtMs: r.expires_at_ms }));
}

/** Closes an open invoice as expired (nothing to watch any more). */
export function markInvoiceExpired(db: Db, paymentHash: string): void {
  stmt(db, "UPDATE invoices SET state = 'expired' WHERE payment_hash = ? AND state = 'open'").run(paymentHash);
}

/**
 * Marks an invoice paid. `onlyIfUnpaid` keeps the first paid time when the invoice was
 * already marked (the refund-by-hand path runs after the paying transaction may have).
 */
export function markInvoicePaid(db: Db, paymentHash: string, paidAtMs: number, o: { onlyIfUnpaid?: boolean } = {}): void {
  if (o.onlyIfUnpaid) stmt(db, "UPDATE invoices SET state = 'paid', paid_at_ms = ? WHERE payment_hash = ? AND state <> 'paid'").run(paidAtMs, paymentHash);
  else stmt(db, "UPDATE invoices SET state = 'paid', paid_at_ms = ? WHERE payment_hash = ?").run(paidAtMs, paymentHash);
}

/**
 * True when a payment hash already paid something: a request's payment reference or a
 * paid invoice (the zap receipt check's replay guard). Reads `requests`, owned by ledger.ts.
 */
export function isPaymentHashUsed(db: Db, paymentHash: string): boolean {
  return (
    stmt(db, "SELECT 1 FROM requests WHERE payment_ref = ?").get(paymentHash) !== undefined ||
    stmt(db, "SELECT 1 FROM invoices WHERE payment_hash = ? AND state = 'paid'").get(paymentHash) !== undefined
  );
}

// ---- the backend-wide breaker (table invoice_backend_state) ----------------------

export interface BackendState {
  /** Consecutive failed invoice calls, any jobs; 0 after a success. */
  failures: number;
  /** No call before this while the breaker is open. */
  nextAttemptAtMs: number;
  lastError: string | null;
}

export function getBackendState(db: Db, backend: string): BackendState {
  const r = stmt(db, "SELECT failures, next_attempt_at_ms, last_error FROM invoice_backend_state WHERE backend = ?").get(backend) as
    { failures: number; next_attempt_at_ms: number; last_error: string | null } | undefined;
  return r ? { failures: r.failures, nextAttemptAtMs: r.next_attempt_at_ms, lastError: r.last_error } : { failures: 0, nextAttemptAtMs: 0, lastError: null };
}

export function saveBackendState(db: Db, backend: string, s: BackendState, nowMs: number): void {
  stmt(
    db,
    `INSERT INTO invoice_backend_state (backend, failures, next_attempt_at_ms, last_error, updated_at_ms) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT(backend) DO UPDATE SET failures = excluded.failures, next_attempt_at_ms = excluded.next_attempt_at_ms,
       last_error = excluded.last_error, updated_at_ms = excluded.updated_at_ms`,
  ).run(backend, s.failures, s.nextAttemptAtMs, s.lastError === null ? null : s.lastError.slice(0, 300), nowMs);
}
