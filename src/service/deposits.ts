// Deposits into prepaid balances (SPEC §12) from outside: zaps of the gate's profile
// and invoices made for `POST /deposit`. Money is believed only from evidence that
// cannot be forged by the customer: a zap receipt passing every NIP-57 check of §6
// (signed by the configured LNURL provider), or the payment backend's own lookup.
// Each payment hash is credited once (the deposits table's UNIQUE ref); every credit is
// one ledger transaction; the backend is never called inside one.
import type { Event } from "nostr-tools/pure";
import type { Logger } from "pino";
import type { Ledger } from "../ledger/ledger.js";
import type { PaymentBackend } from "../payments/types.js";
import { checkZapReceipt } from "../payments/zap.js";
import { isWriteFailure } from "./decision-retry.js";

export interface DepositsOptions {
  ledger: Ledger;
  backend: PaymentBackend;
  log: Logger;
  gatePubkey: string;
  /** The LNURL provider's nostrPubkey (payments.zap.providerPubkey); null: zaps are not read. */
  zapProviderPubkey: string | null;
  invoiceExpirySec: number;
  nowMs: () => number;
}

export type DepositInvoiceResult =
  { status: "created"; bolt11: string; paymentHash: string; amountMsats: number; expiresAtMs: number } | { status: "over_cap"; roomMsats: number };

/** Open deposit invoices looked up per pass at most (the rest wait for the next pass). */
const MAX_LOOKUPS_PER_PASS = 200;

export class Deposits {
  private readonly o: DepositsOptions;
  private checking: Promise<void> | null = null;

  constructor(o: DepositsOptions) {
    this.o = o;
  }

  /**
   * `POST /deposit`: an invoice whose payment will credit `pubkey`. Refused before any
   * invoice is made when the amount would take the balance over the cap.
   */
  async createInvoice(pubkey: string, amountMsats: number): Promise<DepositInvoiceResult> {
    const { ledger, backend } = this.o;
    const roomMsats = ledger.balances.room(pubkey, ledger.maxBalanceMsats);
    if (amountMsats > roomMsats) return { status: "over_cap", roomMsats };
    const inv = await backend.createInvoice({
      amountMsats,
      description: `dvm-gate deposit for ${pubkey.slice(0, 16)}…`,
      expirySec: this.o.invoiceExpirySec,
      requestId: `deposit:${pubkey}`,
    });
    const nowMs = this.o.nowMs();
    ledger.tx(() =>
      ledger.balances.insertDepositInvoice({
        paymentHash: inv.paymentHash,
        pubkey,
        bolt11: inv.bolt11,
        amountMsats,
        backend: backend.name,
        expiresAtMs: inv.expiresAtMs,
        nowMs,
      }),
    );
    this.o.log.info({ customer: pubkey, amountMsats, paymentHash: inv.paymentHash }, "deposit invoice made");
    return { status: "created", bolt11: inv.bolt11, paymentHash: inv.paymentHash, amountMsats, expiresAtMs: inv.expiresAtMs };
  }

  /** Looks up open deposit invoices (or just `hashes`) and credits the paid ones. Concurrent calls share one pass. */
  checkInvoices(hashes?: string[]): Promise<void> {
    if (hashes === undefined && this.checking) return this.checking;
    const run = this.checkPass(hashes).catch((err) => this.o.log.warn({ err: (err as Error).message }, "deposit invoice check failed"));
    if (hashes === undefined) {
      this.checking = run.finally(() => {
        this.checking = null;
      });
      return this.checking;
    }
    return run;
  }

  private async checkPass(hashes?: string[]): Promise<void> {
    const { ledger, backend, log } = this.o;
    const rows =
      hashes === undefined
        ? ledger.balances.openDepositInvoices(MAX_LOOKUPS_PER_PASS)
        : hashes.map((h) => ledger.balances.depositInvoice(h)).filter((r) => r !== null && r.state === "open");
    for (const row of rows) {
      if (!row) continue;
      let state;
      try {
        state = await backend.lookupInvoice(row.payment_hash);
      } catch (err) {
        log.warn({ paymentHash: row.payment_hash, err: (err as Error).message }, "deposit invoice lookup failed; will retry");
        continue;
      }
      const nowMs = this.o.nowMs();
      if (state.state === "settled") {
        const r = ledger.tx(() => {
          if (!ledger.balances.closeDepositInvoice(row.payment_hash, "paid", nowMs)) return null;
          return ledger.balances.deposit({
            pubkey: row.pubkey,
            amountMsats: state.amountMsats,
            source: "invoice",
            ref: row.payment_hash,
            note: null,
            maxBalanceMsats: ledger.maxBalanceMsats,
            overCap: "credit-to-cap",
            nowMs,
          });
        });
        if (r) this.logCredit(r, row.pubkey, row.payment_hash, "deposit invoice paid");
      } else if (state.state === "expired" || row.expires_at_ms <= nowMs - 60_000) {
        ledger.tx(() => ledger.balances.closeDepositInvoice(row.payment_hash, "expired", nowMs));
      }
    }
  }

  /**
   * A zap receipt that may be a deposit: a zap of the gate's profile (no e or a tag),
   * addressed to the gate, signed by the configured provider. Returns whether it was one
   * (credited now or before), so the caller can stop looking at it.
   */
  onZapReceipt(ev: Event): boolean {
    const provider = this.o.zapProviderPubkey;
    if (!provider) return false;
    const tags = Array.isArray(ev.tags) ? ev.tags : [];
    if (tags.some((t) => Array.isArray(t) && (t[0] === "e" || t[0] === "a"))) return false;
    const { ledger, log } = this.o;
    const db = ledger.db;
    const used = (hash: string) =>
      db.prepare("SELECT 1 FROM deposits WHERE ref = ?").get(hash) !== undefined ||
      db.prepare("SELECT 1 FROM requests WHERE payment_ref = ?").get(hash) !== undefined ||
      db.prepare("SELECT 1 FROM invoices WHERE payment_hash = ? AND state = 'paid'").get(hash) !== undefined;
    const check = checkZapReceipt(ev, { providerPubkey: provider, recipientPubkey: this.o.gatePubkey, feedbackEventId: null, chargeMsats: 1 }, used);
    if (!check.ok) {
      log.info({ receipt: ev.id, why: check.reason }, "profile zap not credited");
      return true;
    }
    try {
      const r = ledger.deposit(
        { pubkey: check.zapper, amountMsats: check.amountMsats, source: "zap", ref: check.paymentHash, note: `zap receipt ${ev.id}`, overCap: "credit-to-cap" },
        this.o.nowMs(),
      );
      this.logCredit(r, check.zapper, check.paymentHash, "profile zap credited");
    } catch (err) {
      // A failed write (busy, full disk) is the caller's to hold and retry; nothing was written.
      if (isWriteFailure(err)) throw err;
      log.error({ receipt: ev.id, paymentHash: check.paymentHash, err: (err as Error).message }, "could not credit a profile zap");
    }
    return true;
  }

  private logCredit(r: ReturnType<Ledger["deposit"]>, pubkey: string, paymentHash: string, what: string): void {
    if (r.status !== "credited") return;
    this.o.log.info({ customer: pubkey, paymentHash, creditedMsats: r.creditedMsats, balanceMsats: r.balance.balanceMsats }, what);
    if (r.excessMsats > 0)
      this.o.log.warn(
        { customer: pubkey, paymentHash, excessMsats: r.excessMsats, maxBalanceMsats: this.o.ledger.maxBalanceMsats },
        "deposit above the balance cap: the excess was not credited; refund it to the customer by hand",
      );
  }
}
