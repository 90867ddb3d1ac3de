// Invoices for partial and gated requests, and watching them get paid.
//
// The deciding transaction cannot call the wallet (no network inside a transaction),
// so it leaves a `needs-invoice` outbox row. After commit we ask the backend for an
// invoice, then one short transaction records it and fills the row with the signed
// payment-required feedback. A crash between the two leaves the row as it was: on
// restart a fresh invoice is created; the first one was never shown to anyone.
//
// A wallet that fails is asked again on a schedule (invoice-retry.ts), never at once:
// each row's next attempt is stored with it, one pass takes each row at most once, a
// backend failing for every job is probed by one call per interval, and a job that
// cannot get an invoice after MAX_INVOICE_ATTEMPTS calls is answered with an error.
//
// Payment is believed only from `lookupInvoice`: hints (NWC notifications, webhooks)
// and a timer only say when to look.
import type { Logger } from "pino";
import type { Ledger } from "../ledger/ledger.js";
import type { PaymentBackend } from "../payments/types.js";
import {
  abandon,
  dueNeedingInvoice,
  enqueue,
  fillPending,
  getRequestMeta,
  needsInvoiceEndingBefore,
  recordInvoiceFailure,
  staleNeedsInvoice,
  type DueInvoiceRow,
} from "../ledger/outbox-store.js";
import {
  deadOpenInvoices,
  dueOpenInvoiceHashes,
  getBackendState,
  getOpenInvoice,
  insertInvoice,
  listOpenInvoices,
  markInvoiceExpired,
  saveBackendState,
  type OpenInvoice,
} from "../ledger/invoice-store.js";
import { encryptTemplateFor, errorFeedback, paymentRequiredFeedback, type ReplyTarget } from "../events/feedback.js";
import { signEvent } from "../events/verify.js";
import { applyPayment, replyRelaysFor, type SettlementDeps } from "./settlement.js";
import { BACKEND_TRIP_FAILURES, MAX_INVOICE_ATTEMPTS, backendFailuresAfter, backendRetryDelayMs, invoiceRetryDelayMs } from "./invoice-retry.js";

/** An invoice with less time than this left on its offer is not worth issuing. */
export const MIN_INVOICE_SEC = 5;
/** Rows read (and at most called for) at once in a pass. */
const ISSUE_BATCH = 50;
/** Lookup answers kept for closeExpired; the oldest go first past this. */
const MAX_LAST_LOOKUPS = 10_000;

export interface InvoicingDeps extends SettlementDeps {
  backend: PaymentBackend;
  invoiceExpirySec: number;
  /** Jitter source of the retry schedule. */
  random?: () => number;
}

export class Invoicing {
  private lookingUp = new Set<string>();
  /**
   * The last answer for an open invoice, read by closeExpired's final check. Only open
   * invoices are kept (a paid or expired one is dropped) and at most MAX_LAST_LOOKUPS.
   */
  private lastLookup = new Map<string, "pending" | "failed">();
  private issuing: Promise<void> | null = null;

  constructor(private readonly d: InvoicingDeps) {}

  /** Lookup answers held for closeExpired (bounded; for tests and metrics). */
  get trackedLookups(): number {
    return this.lastLookup.size;
  }

  /** Issues invoices for every due needs-invoice row; concurrent calls share one pass. */
  issuePending(): Promise<void> {
    if (!this.issuing) {
      this.issuing = this.issueAll().finally(() => {
        this.issuing = null;
      });
    }
    return this.issuing;
  }

  /**
   * One pass over the due needs-invoice rows, in id order with a cursor, so each row is
   * taken at most once (a failed row is not due again until its backoff has passed).
   * While the backend's breaker is open, one row is the probe and the rest wait; jobs
   * whose offer would end before the next probe are answered at once.
   */
  private async issueAll(): Promise<void> {
    const { ledger } = this.d;
    const name = this.d.backend.name;
    for (let afterId = 0; ;) {
      const breaker = getBackendState(ledger.db, name);
      const open = breaker.failures >= BACKEND_TRIP_FAILURES;
      const now = this.d.nowMs();
      if (open && now < breaker.nextAttemptAtMs) {
        for (const r of needsInvoiceEndingBefore(ledger.db, breaker.nextAttemptAtMs + MIN_INVOICE_SEC * 1000, 500)) this.refuseForNoInvoice(r, now);
        return;
      }
      const batch = dueNeedingInvoice(ledger.db, { nowMs: now, afterId, limit: open ? 1 : ISSUE_BATCH });
      if (batch.length === 0) return;
      afterId = batch[batch.length - 1]!.outboxId;
      await Promise.all(batch.map((r) => this.issueOne(r, open)));
    }
  }

  private async issueOne(row: DueInvoiceRow, probe: boolean): Promise<void> {
    const { outboxId, requestId } = row;
    try {
      const { ledger, log } = this.d;
      const req = ledger.getRequest(requestId);
      const now = this.d.nowMs();
      const leftSec = req?.expiresAtMs != null ? Math.floor((req.expiresAtMs - now) / 1000) : 0;
      if (!req || req.state !== "awaiting-payment" || req.chargeMsats <= 0 || leftSec < MIN_INVOICE_SEC) {
        ledger.tx(() => abandon(ledger.db, outboxId, now));
        log.info({ request: requestId, state: req?.state }, "no invoice: the request is no longer awaiting payment");
        return;
      }
      // The invoice never outlives the offer it pays for.
      const expirySec = Math.min(this.d.invoiceExpirySec, leftSec);
      let inv;
      try {
        inv = await this.d.backend.createInvoice({
          amountMsats: req.chargeMsats,
          description: `dvm-gate job ${requestId.slice(0, 12)}`,
          expirySec,
          requestId,
        });
      } catch (err) {
        this.recordFailure(row, req.expiresAtMs!, (err as Error).message, probe);
        return;
      }
      this.recordSuccess();
      const filledAt = this.d.nowMs();
      const filled = ledger.tx(() => {
        const cur = ledger.getRequest(requestId);
        if (!cur || cur.state !== "awaiting-payment") {
          abandon(ledger.db, outboxId, filledAt);
          return false;
        }
        const meta = getRequestMeta(ledger.db, requestId);
        const target: ReplyTarget = {
          requestId,
          customer: cur.pubkey,
          relayHint: meta?.relayHint ?? "",
          encryption: meta?.encryption ?? "none",
          expiresAtSec: Math.floor(Math.min(inv.expiresAtMs, cur.expiresAtMs ?? inv.expiresAtMs) / 1000),
        };
        const nowSec = Math.min(Math.floor(filledAt / 1000), target.expiresAtSec - 1);
        const text =
          cur.decision === "partial"
            ? `the free tier covers ${cur.absorbMsats} of ${cur.priceMsats} msats; pay the rest to start the job`
            : `pay ${cur.chargeMsats} msats to start the job`;
        const tpl = paymentRequiredFeedback(
          target,
          { text, chargeMsats: cur.chargeMsats, bolt11: inv.bolt11, ...(cur.decision === "partial" ? { partial: { absorbMsats: cur.absorbMsats } } : {}) },
          nowSec,
        );
        const ev = signEvent(encryptTemplateFor(tpl, target, this.d.secretKey), this.d.secretKey);
        insertInvoice(ledger.db, {
          paymentHash: inv.paymentHash,
          requestId,
          bolt11: inv.bolt11,
          amountMsats: cur.chargeMsats,
          backend: this.d.backend.name,
          expiresAtMs: inv.expiresAtMs,
          createdAtMs: filledAt,
        });
        return fillPending(ledger.db, outboxId, ev, filledAt);
      });
      if (filled) {
        log.info({ request: requestId, chargeMsats: req.chargeMsats, paymentHash: inv.paymentHash }, "invoice issued");
        this.d.onQueued();
      }
    } catch (err) {
      // Not the wallet's answer: recording it failed. Back off all the same, if that can be written.
      this.d.log.error({ request: requestId, err: (err as Error).message }, "issuing an invoice failed");
      try {
        const now = this.d.nowMs();
        const nextAtMs = now + invoiceRetryDelayMs(1, this.random);
        this.d.ledger.tx(() =>
          recordInvoiceFailure(this.d.ledger.db, outboxId, { attempts: row.invoiceAttempts, nextAtMs, error: (err as Error).message, nowMs: now }),
        );
      } catch {
        // Nothing can be written: the next pass, a timer away, tries again.
      }
    }
  }

  private get random(): () => number {
    return this.d.random ?? Math.random;
  }

  /**
   * A failed call: the row waits its turn on the schedule, or, after MAX_INVOICE_ATTEMPTS
   * calls or when the next could not come before the offer ends, the customer is told.
   * The backend-wide count moves in the same transaction.
   */
  private recordFailure(row: DueInvoiceRow, offerEndsAtMs: number, message: string, probe: boolean): void {
    const { ledger, log } = this.d;
    const name = this.d.backend.name;
    const now = this.d.nowMs();
    const attempts = row.invoiceAttempts + 1;
    const nextAtMs = now + invoiceRetryDelayMs(attempts, this.random);
    const retry = attempts < MAX_INVOICE_ATTEMPTS && nextAtMs <= offerEndsAtMs - MIN_INVOICE_SEC * 1000;
    ledger.tx(() => {
      const failures = backendFailuresAfter(getBackendState(ledger.db, name).failures, probe);
      const backendNextAtMs = failures >= BACKEND_TRIP_FAILURES ? now + backendRetryDelayMs(failures, this.random) : 0;
      saveBackendState(ledger.db, name, { failures, nextAttemptAtMs: backendNextAtMs, lastError: message }, now);
      if (retry) recordInvoiceFailure(ledger.db, row.outboxId, { attempts, nextAtMs, error: message, nowMs: now });
    });
    if (retry) {
      log.warn({ request: row.requestId, attempts, retryInMs: nextAtMs - now, err: message }, "invoice creation failed; will retry");
      return;
    }
    log.warn({ request: row.requestId, attempts, err: message }, "invoice creation failed; giving up on this job");
    this.refuseForNoInvoice(row, now);
  }

  private recordSuccess(): void {
    const { ledger } = this.d;
    const name = this.d.backend.name;
    if (getBackendState(ledger.db, name).failures === 0) return;
    const now = this.d.nowMs();
    ledger.tx(() => saveBackendState(ledger.db, name, { failures: 0, nextAttemptAtMs: 0, lastError: null }, now));
    this.d.log.info("invoice backend answers again");
  }

  /**
   * No invoice can be had for this job: its reservation is voided and the customer gets
   * an `error` feedback, in one transaction that also retires the waiting row. The
   * wallet's message stays in our log; the customer is told only that it failed.
   */
  private refuseForNoInvoice(row: { outboxId: number; requestId: string }, now: number): void {
    const { ledger } = this.d;
    const result = ledger.fail(row.requestId, "no invoice: the payment backend did not issue one", now, (db, r) => {
      abandon(db, row.outboxId, now);
      if (r.status !== "voided") return;
      const meta = getRequestMeta(db, row.requestId);
      const target: ReplyTarget = {
        requestId: row.requestId,
        customer: r.request.pubkey,
        relayHint: meta?.relayHint ?? "",
        encryption: meta?.encryption ?? "none",
        // The reply is about a finished matter: let relays drop it after a day.
        expiresAtSec: Math.ceil(now / 1000) + 86_400,
      };
      const tpl = errorFeedback(target, "no invoice: the gate's wallet could not issue one; try again later", Math.floor(now / 1000));
      const ev = signEvent(encryptTemplateFor(tpl, target, this.d.secretKey), this.d.secretKey);
      enqueue(db, { requestId: row.requestId, purpose: "feedback-error", event: ev, relays: replyRelaysFor(this.d, meta?.replyRelays ?? []), nowMs: now });
    });
    if (result.status === "voided") {
      this.d.log.info({ request: row.requestId, returnedMsats: result.returnedMsats }, "no invoice could be issued: voided, customer told");
      this.d.onQueued();
    } else {
      ledger.tx(() => abandon(ledger.db, row.outboxId, now));
    }
  }

  /** Looks up open invoices (all of them, or those whose hash is given) and applies payments. */
  async checkPayments(only?: string[]): Promise<number> {
    const db = this.d.ledger.db;
    const rows = only ? only.map((h) => getOpenInvoice(db, h)).filter((r): r is OpenInvoice => r !== null) : listOpenInvoices(db, 200);
    let paid = 0;
    await Promise.all(
      rows.map(async (r) => {
        if (this.lookingUp.has(r.paymentHash)) return;
        this.lookingUp.add(r.paymentHash);
        try {
          const st = await this.d.backend.lookupInvoice(r.paymentHash);
          if (st.state === "pending") this.remember(r.paymentHash, "pending");
          else this.lastLookup.delete(r.paymentHash);
          if (st.state === "settled") {
            // A node never settles an expired invoice: a backend that does not report the
            // settle time (LNbits) paid no later than the invoice's expiry.
            const atMs = Math.min(this.d.nowMs(), Math.max(0, st.settledAtMs), r.expiresAtMs);
            const res = applyPayment(this.d, { requestId: r.requestId, paymentHash: r.paymentHash, amountMsats: st.amountMsats, atMs });
            if (res.status === "paid") paid++;
          } else if (st.state === "expired") {
            this.markExpired(r.paymentHash);
          }
        } catch (err) {
          this.remember(r.paymentHash, "failed");
          this.d.log.warn({ paymentHash: r.paymentHash, err: (err as Error).message }, "invoice lookup failed");
        } finally {
          this.lookingUp.delete(r.paymentHash);
        }
      }),
    );
    return paid;
  }

  /**
   * Before the expiry sweep: a last lookup of open invoices whose request is due, so a
   * payment that arrived just before the deadline is not lost to the sweep.
   */
  async checkDue(nowMs: number): Promise<void> {
    const due = dueOpenInvoiceHashes(this.d.ledger.db, nowMs, 200);
    if (due.length > 0) await this.checkPayments(due);
  }

  /**
   * After the expiry sweep: invoices of requests that can no longer take a payment
   * (expired, failed, deleted, or paid another way). Each is looked up once more first,
   * so money that did arrive is seen (and logged for a refund by hand) rather than
   * silently closed; an invoice whose lookup keeps failing is closed a day after it
   * expired. Replies still waiting for an invoice that will never be made are abandoned.
   */
  async closeExpired(nowMs: number): Promise<void> {
    const { ledger } = this.d;
    const dead = deadOpenInvoices(ledger.db, 200);
    if (dead.length > 0) await this.checkPayments(dead.map((d) => d.paymentHash));
    ledger.tx(() => {
      for (const d of dead) {
        // Still payable: keep watching until the invoice itself expires, so a late
        // payment is seen. Unanswered lookups: give up a day after its expiry.
        const answered = this.lastLookup.get(d.paymentHash) === "pending";
        if ((answered && d.expiresAtMs <= nowMs) || d.expiresAtMs <= nowMs - 86_400_000) markInvoiceExpired(ledger.db, d.paymentHash);
      }
      for (const id of staleNeedsInvoice(ledger.db, 500)) abandon(ledger.db, id, nowMs);
    });
    for (const d of dead) this.lastLookup.delete(d.paymentHash);
  }

  private remember(paymentHash: string, answer: "pending" | "failed"): void {
    // Re-inserted so the Map's order is oldest answer first, and that one goes first.
    this.lastLookup.delete(paymentHash);
    this.lastLookup.set(paymentHash, answer);
    if (this.lastLookup.size > MAX_LAST_LOOKUPS) this.lastLookup.delete(this.lastLookup.keys().next().value!);
  }

  private markExpired(paymentHash: string): void {
    this.d.ledger.tx(() => markInvoiceExpired(this.d.ledger.db, paymentHash));
  }
}
