import { describe, expect, it } from "vitest";
import { DEFAULT_INVOICE_LIMITS as S, invoiceLimitHit, limitReplyDue } from "../../src/policy/invoice-limits.js";

describe("invoice limits (SPEC §6)", () => {
  it("refuses an invoice to a pubkey holding maxOpenInvoicesPerPubkey open ones, whatever its tier", () => {
    expect(invoiceLimitHit({ tier: "elite", openInvoices: 2, newTierInvoicesLastMinute: 1000 }, S)).toBeNull();
    expect(invoiceLimitHit({ tier: "elite", openInvoices: 3, newTierInvoicesLastMinute: 0 }, S)?.limit).toBe("open-invoices");
  });

  it("refuses tier new once new customers together had newTierInvoicesPerMinute invoices this minute", () => {
    expect(invoiceLimitHit({ tier: "new", openInvoices: 0, newTierInvoicesLastMinute: 59 }, S)).toBeNull();
    expect(invoiceLimitHit({ tier: "new", openInvoices: 0, newTierInvoicesLastMinute: 60 }, S)?.limit).toBe("new-tier-rate");
    expect(invoiceLimitHit({ tier: "established", openInvoices: 0, newTierInvoicesLastMinute: 60 }, S)).toBeNull();
  });

  it("answers rate-limited at most once a minute per pubkey, and a bounded number a minute to tier new", () => {
    const now = 1_000_000;
    expect(limitReplyDue({ tier: "trusted", lastReplyAtMs: null, newTierRepliesLastMinute: 0, nowMs: now }, S)).toBe(true);
    expect(limitReplyDue({ tier: "trusted", lastReplyAtMs: now - 59_999, newTierRepliesLastMinute: 0, nowMs: now }, S)).toBe(false);
    expect(limitReplyDue({ tier: "trusted", lastReplyAtMs: now - 60_000, newTierRepliesLastMinute: 0, nowMs: now }, S)).toBe(true);
    expect(limitReplyDue({ tier: "new", lastReplyAtMs: null, newTierRepliesLastMinute: 60, nowMs: now }, S)).toBe(false);
    expect(limitReplyDue({ tier: "trusted", lastReplyAtMs: null, newTierRepliesLastMinute: 60, nowMs: now }, S)).toBe(true);
  });
});
