// How a pubkey's trust state is stored: the one place outside schema.ts that knows the
// `identities` columns, shared by the ledger and the relay plugin's read-only lookup.
import { freshTrustState, type Tier, type TrustState } from "../policy/tiers.js";

export const SELECT_IDENTITY_SQL = "SELECT score, score_at_ms, last_active_ms, pinned_tier, banned, wot_floor FROM identities WHERE pubkey = ?";

export interface IdentityRow {
  score: number;
  score_at_ms: number;
  last_active_ms: number | null;
  pinned_tier: Tier | null;
  banned: number;
  wot_floor: Tier | null;
}

/** A missing row is a pubkey never seen: fresh state, tier `new`. */
export function toTrustState(row: IdentityRow | undefined, nowMs: number): TrustState {
  if (!row) return freshTrustState(nowMs);
  return {
    score: row.score,
    scoreAtMs: row.score_at_ms,
    lastActiveMs: row.last_active_ms,
    pinnedTier: row.pinned_tier,
    banned: row.banned === 1,
    wotFloor: row.wot_floor,
  };
}
