// The rows behind the invoice limits (SPEC §6): counts read inside the deciding
// transaction, and the requests a limit refused (`limited_requests`), which make a
// refused request idempotent and the once-a-minute reply survive restarts.
// Synchronous; the writers expect the caller's transaction (Ledger.decide).
import type { Db } from "./db.js";
import { stmt } from "./stmt.js";
import type { Tier } from "../policy/tiers.js";
import { invoiceLimitHit, limitReplyDue, LIMIT_WINDOW_MS, type InvoiceLimit, type InvoiceLimitSettings } from "../policy/invoice-limits.js";

export interface LimitedRequest {
  requestId: string;
  pubkey: string;
  tier: Tier;
  limit: InvoiceLimit;
  why: string;
  /** Whether this refusal is answered (`rate-limited: why`); else it is dropped silently. */
  reply: boolean;
  atMs: number;
}

export function findLimited(db: Db, requestId: string): LimitedRequest | null {
  const r = stmt(db, "SELECT * FROM limited_requests WHERE request_id = ?").get(requestId) as
    { request_id: string; pubkey: string; tier: Tier; limit_hit: InvoiceLimit; replied: number; at_ms: number } | undefined;
  return r ? { requestId: r.request_id, pubkey: r.pubkey, tier: r.tier, limit: r.limit_hit, why: "", reply: r.replied === 1, atMs: r.at_ms } : null;
}

/**
 * The invoice-limit inputs of one decision, read in one place (called from Ledger.decide
 * beside the free-tier inputs): null when an invoice may be made, else the refusal,
 * recorded, with whether it is answered.
 */
export function applyInvoiceLimits(
  db: Db,
  req: { requestId: string; pubkey: string; tier: Tier },
  nowMs: number,
  s: InvoiceLimitSettings,
): LimitedRequest | null {
  const openInvoices = (
    stmt(db, "SELECT COUNT(*) AS n FROM requests WHERE pubkey = ? AND state = 'awaiting-payment' AND expires_at_ms > ?").get(req.pubkey, nowMs) as { n: number }
  ).n;
  const newTierInvoicesLastMinute =
    req.tier === "new" && openInvoices < s.maxOpenInvoicesPerPubkey
      ? (
          stmt(db, "SELECT COUNT(*) AS n FROM requests WHERE tier = 'new' AND decision IN ('partial','gate') AND created_at_ms > ?").get(
            nowMs - LIMIT_WINDOW_MS,
          ) as { n: number }
        ).n
      : 0;
  const hit = invoiceLimitHit({ tier: req.tier, openInvoices, newTierInvoicesLastMinute }, s);
  if (!hit) return null;
  const last = stmt(db, "SELECT MAX(at_ms) AS at FROM limited_requests WHERE pubkey = ? AND replied = 1").get(req.pubkey) as { at: number | null };
  const newTierRepliesLastMinute =
    req.tier === "new"
      ? (stmt(db, "SELECT COUNT(*) AS n FROM limited_requests WHERE replied = 1 AND tier = 'new' AND at_ms > ?").get(nowMs - LIMIT_WINDOW_MS) as { n: number })
          .n
      : 0;
  const reply = limitReplyDue({ tier: req.tier, lastReplyAtMs: last.at, newTierRepliesLastMinute, nowMs }, s);
  stmt(db, "INSERT INTO limited_requests (request_id, pubkey, tier, limit_hit, replied, at_ms) VALUES (?, ?, ?, ?, ?, ?)").run(
    req.requestId,
    req.pubkey,
    req.tier,
    hit.limit,
    reply ? 1 : 0,
    nowMs,
  );
  return { requestId: req.requestId, pubkey: req.pubkey, tier: req.tier, limit: hit.limit, why: hit.why, reply, atMs: nowMs };
}

/** Refusals older than any request that could still be accepted go (the caller's transaction). */
export function pruneLimited(db: Db, beforeMs: number, batch = 5000): number {
  return stmt(db, "DELETE FROM limited_requests WHERE request_id IN (SELECT request_id FROM limited_requests WHERE at_ms < ? LIMIT ?)").run(beforeMs, batch)
    .changes;
}

/** Refusals by limit since `sinceMs` (operator page). */
export function limitedCounts(db: Db, sinceMs: number): Record<InvoiceLimit, number> {
  const out: Record<InvoiceLimit, number> = { "open-invoices": 0, "new-tier-rate": 0 };
  for (const r of stmt(db, "SELECT limit_hit, COUNT(*) AS n FROM limited_requests WHERE at_ms > ? GROUP BY limit_hit").all(sinceMs) as {
    limit_hit: InvoiceLimit;
    n: number;
  }[])
    out[r.limit_hit] = r.n;
  return out;
}
