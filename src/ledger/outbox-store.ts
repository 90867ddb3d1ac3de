// The outbox's rows. Replies are written here inside the transaction that decided
// them (so a crash can neither lose nor duplicate a reply) and delivered after commit
// by the publisher. All functions are synchronous and expect to run inside a
// transaction the caller opened (Ledger.tx or a ledger hook), except the readers.
import type { Event } from "nostr-tools/pure";
import type { Db } from "./db.js";
import { stmt } from "./stmt.js";

export type OutboxPurpose =
  | "feedback-processing"
  | "feedback-payment-required"
  | "feedback-paid"
  | "feedback-error"
  | "grant"
  | "pool-status"
  | "announce"
  // SPEC §11: the gate's own backends' results, an upstream DVM's progress re-signed, liveness.
  | "result"
  | "feedback-upstream-processing"
  | "feedback-upstream-partial"
  | "heartbeat";

export interface RequestMeta {
  requestId: string;
  encryption: "none" | "nip04" | "nip44";
  relayHint: string;
  replyRelays: string[];
  eventJson: string;
}

/** Retries per relay before a delivery is given up (the event stays in the outbox, state done). */
export const MAX_DELIVERY_ATTEMPTS = 12;
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 5 * 60_000;

/** Outbox rows given deliveries while a collectEnqueued call runs (synchronous code only: no interleaving). */
let enqueuedTap: number[] | null = null;

/**
 * Runs `fn` (which opens and commits its own transaction) and returns, beside its value,
 * the ids of the outbox rows it gave deliveries to, so that the publisher can send them
 * at once instead of scanning for them. The ids are hints: a row of a rolled-back
 * savepoint is in the list too, and the publisher reads only the rows that exist.
 */
export function collectEnqueued<T>(fn: () => T): { value: T; outboxIds: number[] } {
  const outer = enqueuedTap;
  const ids: number[] = [];
  enqueuedTap = ids;
  try {
    return { value: fn(), outboxIds: ids };
  } finally {
    enqueuedTap = outer;
    if (outer !== null) outer.push(...ids);
  }
}

export function saveRequestMeta(db: Db, m: RequestMeta): void {
  stmt(db, "INSERT OR IGNORE INTO request_meta (request_id, encryption, relay_hint, reply_relays_json, event_json) VALUES (?, ?, ?, ?, ?)").run(
    m.requestId,
    m.encryption,
    m.relayHint,
    JSON.stringify(m.replyRelays),
    m.eventJson,
  );
}

export function getRequestMeta(db: Db, requestId: string): RequestMeta | null {
  const r = stmt(db, "SELECT request_id, encryption, relay_hint, reply_relays_json, event_json FROM request_meta WHERE request_id = ?").get(requestId) as
    { request_id: string; encryption: RequestMeta["encryption"]; relay_hint: string; reply_relays_json: string; event_json: string } | undefined;
  return r
    ? { requestId: r.request_id, encryption: r.encryption, relayHint: r.relay_hint, replyRelays: JSON.parse(r.reply_relays_json), eventJson: r.event_json }
    : null;
}

/**
 * Queues a signed event (or, with `event: null`, a reply still waiting for its invoice)
 * for delivery to `relays`. Idempotent per (requestId, purpose): the second call
 * changes nothing and returns `created: false`.
 */
export function enqueue(
  db: Db,
  o: { requestId: string | null; purpose: OutboxPurpose; event: Event | null; relays: string[]; nowMs: number },
): { id: number; created: boolean } {
  const relays = [...new Set(o.relays)];
  // One statement when the row is new (the usual case); the unique index outbox_once
  // turns a second call for the same (request, purpose) into a no-op.
  const ins = stmt(
    db,
    `INSERT INTO outbox (request_id, purpose, state, event_id, event_json, relays_json, created_at_ms, updated_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (request_id, purpose) WHERE request_id IS NOT NULL DO NOTHING`,
  ).run(
    o.requestId,
    o.purpose,
    o.event ? "ready" : "needs-invoice",
    o.event?.id ?? null,
    o.event ? JSON.stringify(o.event) : null,
    JSON.stringify(relays),
    o.nowMs,
    o.nowMs,
  );
  if (ins.changes === 0) {
    const existing = stmt(db, "SELECT id FROM outbox WHERE request_id = ? AND purpose = ?").get(o.requestId, o.purpose) as { id: number };
    return { id: existing.id, created: false };
  }
  const id = Number(ins.lastInsertRowid);
  if (o.event) addDeliveries(db, id, relays, o.nowMs);
  return { id, created: true };
}

/** Gives a `needs-invoice` row its signed event; returns false if it was already filled. */
export function fillPending(db: Db, outboxId: number, event: Event, nowMs: number): boolean {
  const row = stmt(db, "SELECT state, relays_json FROM outbox WHERE id = ?").get(outboxId) as { state: string; relays_json: string } | undefined;
  if (!row || row.state !== "needs-invoice") return false;
  stmt(db, "UPDATE outbox SET state = 'ready', event_id = ?, event_json = ?, updated_at_ms = ? WHERE id = ?").run(
    event.id,
    JSON.stringify(event),
    nowMs,
    outboxId,
  );
  addDeliveries(db, outboxId, JSON.parse(row.relays_json) as string[], nowMs);
  return true;
}

/** A reply that will never be sent (e.g. its request expired before an invoice existed). */
export function abandon(db: Db, outboxId: number, nowMs: number): void {
  stmt(db, "UPDATE outbox SET state = 'abandoned', updated_at_ms = ? WHERE id = ? AND state = 'needs-invoice'").run(nowMs, outboxId);
}

function addDeliveries(db: Db, outboxId: number, relays: string[], nowMs: number): void {
  enqueuedTap?.push(outboxId);
  const ins = stmt(db, "INSERT OR IGNORE INTO outbox_delivery (outbox_id, relay, state, attempts, next_attempt_at_ms) VALUES (?, ?, 'pending', 0, ?)");
  for (const r of relays) ins.run(outboxId, r, nowMs);
}

export interface NeedsInvoice {
  outboxId: number;
  requestId: string;
  purpose: OutboxPurpose;
  createdAtMs: number;
}

export interface DueInvoiceRow extends NeedsInvoice {
  /** Failed calls to the wallet so far for this row. */
  invoiceAttempts: number;
}

/**
 * `needs-invoice` rows whose next attempt is due, after `afterId` in id order: a pass
 * walks them with a cursor, so it takes each row at most once.
 */
export function dueNeedingInvoice(db: Db, o: { nowMs: number; afterId: number; limit: number }): DueInvoiceRow[] {
  return (
    stmt(
      db,
      `SELECT id, request_id, purpose, created_at_ms, invoice_attempts FROM outbox
       WHERE state = 'needs-invoice' AND next_invoice_at_ms <= ? AND id > ? ORDER BY id LIMIT ?`,
    ).all(o.nowMs, o.afterId, o.limit) as { id: number; request_id: string; purpose: OutboxPurpose; created_at_ms: number; invoice_attempts: number }[]
  ).map((r) => ({ outboxId: r.id, requestId: r.request_id, purpose: r.purpose, createdAtMs: r.created_at_ms, invoiceAttempts: r.invoice_attempts }));
}

/** A failed call to the wallet for this row: counts it and sets when the next may happen. */
export function recordInvoiceFailure(db: Db, outboxId: number, o: { attempts: number; nextAtMs: number; error: string; nowMs: number }): void {
  stmt(
    db,
    "UPDATE outbox SET invoice_attempts = ?, next_invoice_at_ms = ?, last_invoice_error = ?, updated_at_ms = ? WHERE id = ? AND state = 'needs-invoice'",
  ).run(o.attempts, o.nextAtMs, o.error.slice(0, 300), o.nowMs, outboxId);
}

export function needingInvoice(db: Db, limit = 100): NeedsInvoice[] {
  return (
    stmt(db, "SELECT id, request_id, purpose, created_at_ms FROM outbox WHERE state = 'needs-invoice' ORDER BY id LIMIT ?").all(limit) as {
      id: number;
      request_id: string;
      purpose: OutboxPurpose;
      created_at_ms: number;
    }[]
  ).map((r) => ({ outboxId: r.id, requestId: r.request_id, purpose: r.purpose, createdAtMs: r.created_at_ms }));
}

export interface DueDelivery {
  outboxId: number;
  relay: string;
  attempts: number;
  event: Event;
}

export function dueDeliveries(
  db: Db,
  nowMs: number,
  limit = 200,
  exceptRelays: readonly string[] = [],
  onlyRelays: readonly string[] | null = null,
): DueDelivery[] {
  // Relays with a delivery already in flight are left out in SQL: under load every
  // decision kicks a round, and reading (and parsing) a busy relay's whole backlog each
  // time only to drop it cost more than the deliveries themselves. `onlyRelays` reads one
  // class of relays (the configured ones) so that another's backlog cannot crowd it out of `limit`.
  const rows = (
    onlyRelays !== null
      ? stmt(
          db,
          `SELECT d.outbox_id, d.relay, d.attempts, o.event_json FROM outbox_delivery d JOIN outbox o ON o.id = d.outbox_id
           WHERE d.state = 'pending' AND d.next_attempt_at_ms <= ? AND d.relay IN (SELECT value FROM json_each(?))
             AND d.relay NOT IN (SELECT value FROM json_each(?))
           ORDER BY d.next_attempt_at_ms LIMIT ?`,
        ).all(nowMs, JSON.stringify(onlyRelays), JSON.stringify(exceptRelays), limit)
      : exceptRelays.length === 0
        ? stmt(
            db,
            `SELECT d.outbox_id, d.relay, d.attempts, o.event_json FROM outbox_delivery d JOIN outbox o ON o.id = d.outbox_id
           WHERE d.state = 'pending' AND d.next_attempt_at_ms <= ? ORDER BY d.next_attempt_at_ms LIMIT ?`,
          ).all(nowMs, limit)
        : stmt(
            db,
            `SELECT d.outbox_id, d.relay, d.attempts, o.event_json FROM outbox_delivery d JOIN outbox o ON o.id = d.outbox_id
           WHERE d.state = 'pending' AND d.next_attempt_at_ms <= ? AND d.relay NOT IN (SELECT value FROM json_each(?))
           ORDER BY d.next_attempt_at_ms LIMIT ?`,
          ).all(nowMs, JSON.stringify(exceptRelays), limit)
  ) as { outbox_id: number; relay: string; attempts: number; event_json: string }[];
  return rows.map((r) => ({ outboxId: r.outbox_id, relay: r.relay, attempts: r.attempts, event: JSON.parse(r.event_json) as Event }));
}

/** The pending deliveries of these outbox rows (just written: see collectEnqueued), by primary key. */
export function pendingDeliveriesOf(db: Db, outboxIds: readonly number[]): DueDelivery[] {
  if (outboxIds.length === 0) return [];
  const rows = (
    outboxIds.length === 1
      ? stmt(
          db,
          `SELECT d.outbox_id, d.relay, d.attempts, o.event_json FROM outbox_delivery d JOIN outbox o ON o.id = d.outbox_id
           WHERE d.outbox_id = ? AND d.state = 'pending'`,
        ).all(outboxIds[0])
      : stmt(
          db,
          `SELECT d.outbox_id, d.relay, d.attempts, o.event_json FROM outbox_delivery d JOIN outbox o ON o.id = d.outbox_id
           WHERE d.outbox_id IN (SELECT value FROM json_each(?)) AND d.state = 'pending' ORDER BY d.outbox_id`,
        ).all(JSON.stringify(outboxIds))
  ) as { outbox_id: number; relay: string; attempts: number; event_json: string }[];
  return rows.map((r) => ({ outboxId: r.outbox_id, relay: r.relay, attempts: r.attempts, event: JSON.parse(r.event_json) as Event }));
}

/** Earliest pending delivery time, so the publisher can sleep until then. */
export function nextDeliveryAtMs(db: Db): number | null {
  const r = stmt(db, "SELECT MIN(next_attempt_at_ms) AS t FROM outbox_delivery WHERE state = 'pending'").get() as { t: number | null };
  return r.t;
}

/**
 * Records a relay's answer. `ok` (OK true, or "duplicate:") ends the delivery; a failure
 * is retried with capped exponential backoff and jitter, at most MAX_DELIVERY_ATTEMPTS times.
 */
export function recordDelivery(
  db: Db,
  outboxId: number,
  relay: string,
  ok: boolean,
  message: string,
  nowMs: number,
  maxAttempts = MAX_DELIVERY_ATTEMPTS,
): void {
  const msg = message.slice(0, 300);
  if (ok) {
    // The usual answer, in two statements: this delivery ends, and the row is done once none is pending.
    const ended = stmt(
      db,
      "UPDATE outbox_delivery SET state = 'ok', attempts = attempts + 1, last_message = ? WHERE outbox_id = ? AND relay = ? AND state = 'pending'",
    ).run(msg, outboxId, relay).changes;
    if (ended === 1) markDoneIfDelivered(db, outboxId, nowMs);
    return;
  }
  const row = stmt(db, "SELECT attempts, state FROM outbox_delivery WHERE outbox_id = ? AND relay = ?").get(outboxId, relay) as
    { attempts: number; state: string } | undefined;
  if (!row || row.state !== "pending") return;
  const attempts = row.attempts + 1;
  if (attempts >= maxAttempts) {
    stmt(db, "UPDATE outbox_delivery SET state = 'failed', attempts = ?, last_message = ? WHERE outbox_id = ? AND relay = ?").run(
      attempts,
      msg,
      outboxId,
      relay,
    );
    markDoneIfDelivered(db, outboxId, nowMs);
  } else {
    const backoff = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (attempts - 1));
    const jitter = Math.floor(Math.random() * (backoff / 2));
    stmt(db, "UPDATE outbox_delivery SET attempts = ?, next_attempt_at_ms = ?, last_message = ? WHERE outbox_id = ? AND relay = ?").run(
      attempts,
      nowMs + backoff + jitter,
      msg,
      outboxId,
      relay,
    );
  }
}

/**
 * A relay that failed as a whole (no connection, refused us) backs off as a whole: its
 * pending deliveries, tried this round or not, wait until `untilMs`. Not an attempt for
 * the rows that were not tried. Durable, so a restart does not hammer it either.
 */
export function deferRelay(db: Db, relay: string, untilMs: number): void {
  stmt(db, "UPDATE outbox_delivery SET next_attempt_at_ms = ? WHERE relay = ? AND state = 'pending' AND next_attempt_at_ms < ?").run(untilMs, relay, untilMs);
}

/** A row whose every delivery has ended (ok or given up) is done. */
function markDoneIfDelivered(db: Db, outboxId: number, nowMs: number): void {
  stmt(
    db,
    `UPDATE outbox SET state = 'done', updated_at_ms = ? WHERE id = ? AND state = 'ready'
       AND NOT EXISTS (SELECT 1 FROM outbox_delivery WHERE outbox_id = ? AND state = 'pending')`,
  ).run(nowMs, outboxId, outboxId);
}

// ---- intake bookkeeping -------------------------------------------------------

export function getCursorSec(db: Db, relay: string): number | null {
  const r = stmt(db, "SELECT since_sec FROM relay_cursors WHERE relay = ?").get(relay) as { since_sec: number } | undefined;
  return r ? r.since_sec : null;
}

/**
 * The intake moves a cursor forward, and back only to hold it before a request whose
 * decision could not be written yet (so a restart reads that request again).
 */
export function saveCursorSec(db: Db, relay: string, sinceSec: number, nowMs: number): void {
  stmt(
    db,
    `INSERT INTO relay_cursors (relay, since_sec, updated_at_ms) VALUES (?, ?, ?)
     ON CONFLICT(relay) DO UPDATE SET since_sec = excluded.since_sec, updated_at_ms = excluded.updated_at_ms`,
  ).run(relay, sinceSec, nowMs);
}

/** True the first time an event id is seen (dedupe across relays and restarts). */
export function markSeen(db: Db, eventId: string, kind: number, nowMs: number): boolean {
  return stmt(db, "INSERT OR IGNORE INTO seen_events (event_id, kind, seen_at_ms) VALUES (?, ?, ?)").run(eventId, kind, nowMs).changes === 1;
}

/**
 * Keeps the service's bookkeeping bounded: event ids seen longer ago than any event
 * could still be accepted (older requests are ignored by age anyway), and outbox rows
 * whose delivery finished long ago. At most `batch` rows of each per call, one short
 * transaction (the caller's). Returns how many rows went.
 */
export function pruneBookkeeping(db: Db, o: { seenBeforeMs: number; doneBeforeMs: number; batch?: number }): { seen: number; outbox: number } {
  const batch = o.batch ?? 5000;
  const seen = stmt(db, "DELETE FROM seen_events WHERE event_id IN (SELECT event_id FROM seen_events WHERE seen_at_ms < ? LIMIT ?)").run(
    o.seenBeforeMs,
    batch,
  ).changes;
  const ids = (
    stmt(db, "SELECT id FROM outbox WHERE state IN ('done','abandoned') AND updated_at_ms < ? ORDER BY id LIMIT ?").all(o.doneBeforeMs, batch) as {
      id: number;
    }[]
  ).map((r) => r.id);
  const delDeliveries = stmt(db, "DELETE FROM outbox_delivery WHERE outbox_id = ?");
  const delOutbox = stmt(db, "DELETE FROM outbox WHERE id = ?");
  for (const id of ids) {
    delDeliveries.run(id);
    delOutbox.run(id);
  }
  return { seen, outbox: ids.length };
}

// ---- lookups for invoicing and zaps ---------------------------------------------

/** The request whose payment-required reply is the event `eventId` (a zap names it). */
export function requestOfPaymentRequiredEvent(db: Db, eventId: string): string | null {
  const r = stmt(db, "SELECT request_id FROM outbox WHERE event_id = ? AND purpose = 'feedback-payment-required'").get(eventId) as
    { request_id: string } | undefined;
  return r ? r.request_id : null;
}

/** `needs-invoice` rows whose request no longer awaits payment: their invoice will never be made. */
export function staleNeedsInvoice(db: Db, limit: number): number[] {
  return (
    stmt(
      db,
      `SELECT o.id FROM outbox o JOIN requests r ON r.request_id = o.request_id
       WHERE o.state = 'needs-invoice' AND r.state <> 'awaiting-payment' LIMIT ?`,
    ).all(limit) as { id: number }[]
  ).map((r) => r.id);
}

/** `needs-invoice` rows whose request still awaits payment but whose offer ends before `endsBeforeMs`. */
export function needsInvoiceEndingBefore(db: Db, endsBeforeMs: number, limit: number): { outboxId: number; requestId: string }[] {
  return (
    stmt(
      db,
      `SELECT o.id, o.request_id FROM outbox o JOIN requests r ON r.request_id = o.request_id
       WHERE o.state = 'needs-invoice' AND r.state = 'awaiting-payment' AND r.expires_at_ms < ? LIMIT ?`,
    ).all(endsBeforeMs, limit) as { id: number; request_id: string }[]
  ).map((r) => ({ outboxId: r.id, requestId: r.request_id }));
}
