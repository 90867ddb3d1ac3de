// The invoice limits of SPEC §6 as a pure function of counts the ledger read inside the
// deciding transaction. An invoice costs the operator's wallet a call and fresh keys cost
// nothing, so a request that would need one is refused it past either limit.
import type { Tier } from "./tiers.js";

export type InvoiceLimit = "open-invoices" | "new-tier-rate";

export interface InvoiceLimitSettings {
  /** Unpaid, unexpired invoices one pubkey may hold (SPEC default 3). */
  maxOpenInvoicesPerPubkey: number;
  /** New invoices a minute for all customers of tier `new` together (SPEC default 60). */
  newTierInvoicesPerMinute: number;
  /**
   * `rate-limited:` replies a minute for tier `new` together. The SPEC allows one a minute
   * per pubkey; a flood of fresh keys would otherwise cost a signature and a reply per key.
   */
  newTierLimitRepliesPerMinute: number;
}

export const DEFAULT_INVOICE_LIMITS: InvoiceLimitSettings = {
  maxOpenInvoicesPerPubkey: 3,
  newTierInvoicesPerMinute: 60,
  newTierLimitRepliesPerMinute: 60,
};

export const LIMIT_WINDOW_MS = 60_000;

export interface InvoiceLimitInputs {
  tier: Tier;
  /** The pubkey's requests awaiting payment whose offer has not expired. */
  openInvoices: number;
  /** Invoiced (partial or gate) decisions for tier `new` in the last minute. */
  newTierInvoicesLastMinute: number;
}

export interface InvoiceLimitHit {
  limit: InvoiceLimit;
  why: string;
}

export function invoiceLimitHit(i: InvoiceLimitInputs, s: InvoiceLimitSettings): InvoiceLimitHit | null {
  if (i.openInvoices >= s.maxOpenInvoicesPerPubkey)
    return {
      limit: "open-invoices",
      why: `${i.openInvoices} unpaid invoices open for this pubkey (at most ${s.maxOpenInvoicesPerPubkey}); pay or let one expire`,
    };
  if (i.tier === "new" && i.newTierInvoicesLastMinute >= s.newTierInvoicesPerMinute)
    return { limit: "new-tier-rate", why: `new customers together get at most ${s.newTierInvoicesPerMinute} invoices a minute; try again later` };
  return null;
}

export interface LimitReplyInputs {
  tier: Tier;
  /** When this pubkey last got a `rate-limited:` reply, or null. */
  lastReplyAtMs: number | null;
  /** `rate-limited:` replies to tier `new` in the last minute. */
  newTierRepliesLastMinute: number;
  nowMs: number;
}

/** At most one `rate-limited:` reply a minute per pubkey (and a bounded number for tier `new`); silence otherwise. */
export function limitReplyDue(i: LimitReplyInputs, s: InvoiceLimitSettings): boolean {
  if (i.lastReplyAtMs !== null && i.nowMs - i.lastReplyAtMs < LIMIT_WINDOW_MS) return false;
  if (i.tier === "new" && i.newTierRepliesLastMinute >= s.newTierLimitRepliesPerMinute) return false;
  return true;
}
