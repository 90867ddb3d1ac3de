// Invoices for partial and gated requests, and watching them get paid.
//
// The deciding transaction cannot call the wallet (no network inside a transaction),
// so it leaves a `needs-invoice` outbox row. After commit we ask the backend for an
// invoice, then one short transaction records it and fills the row with the signed
// payment-required feedback. A crash between the two leaves the row as it was: on
// restart a fresh invoice is created; the first one was never shown to anyone.
//
// Payment is believed only from `lookupInvoice`: hints (NWC notifications, webhooks)
// and a timer only say when to look.
import type { Logger } from "pino";
import type { Ledger } from "../ledger/ledger.js";
import type { PaymentBackend } from "../payments/types.js";
import { abandon, fillPending, getRequestMeta, needingInvoice, staleNeedsInvoice } from "../ledger/outbox-store.js";
import { deadOpenInvoices, dueOpenInvoiceHashes, getOpenInvoice, insertInvoice, listOpenInvoices, markInvoiceExpired, type OpenInvoice } from "../ledger/invoice-store.js";
import { encryptTemplateFor, paymentRequiredFeedback, type ReplyTarget } from "../events/feedback.js";
import { signEvent } from "../events/verify.js";
import { applyPayment, type SettlementDeps } from "./settlement.js";

/** An invoice with less time than this left on its offer is not worth issuing. */
export const MIN_INVOICE_SEC = 5;

export interface InvoicingDeps extends SettlementDeps {
  backend: PaymentBackend;
  invoiceExpirySec: number;
}

export class Invoicing {
  private inFlight = new Set<number>();
  private lookingUp = new Set<string>();
  /** The last answer for an invoice looked up by closeExpired's final check. */
  private lastLookup = new Map<string, "pending" | "settled" | "expired" | "failed">();
  private issuing: Promise<void> | null = null;

  constructor(private readonly d: InvoicingDeps) {}

  /** Issues invoices for every needs-invoice row; concurrent calls share one pass. */
  issuePending(): Promise<void> {
    if (!this.issuing) {
      this.issuing = this.issueAll().finally(() => {
        this.issuing = null;
      });
    }
    return this.issuing;
  }

  private async issueAll(): Promise<void> {
    for (let pass = 0; pass < 50; pass++) {
      const rows = needingInvoice(this.d.ledger.db, 50).filter((r) => !this.inFlight.has(r.outboxId));
      if (rows.length === 0) return;
      await Promise.all(rows.map((r) => this.issueOne(r.outboxId, r.requestId)));
    }
  }

  private async issueOne(outboxId: number, requestId: string): Promise<void> {
    this.inFlight.add(outboxId);
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
        log.warn({ request: requestId, err: (err as Error).message }, "invoice creation failed; will retry");
        return;
      }
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
      this.d.log.error({ request: requestId, err: (err as Error).message }, "issuing an invoice failed");
    } finally {
      this.inFlight.delete(outboxId);
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
          this.lastLookup.set(r.paymentHash, st.state);
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
          this.lastLookup.set(r.paymentHash, "failed");
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

  private markExpired(paymentHash: string): void {
    this.d.ledger.tx(() => markInvoiceExpired(this.d.ledger.db, paymentHash));
  }
}
