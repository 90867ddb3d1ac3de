// A pubkey's effective tier straight from its identity row (one prepared primary-key
// read, no transaction): the intake orders arrivals by it before any signature check.
// A missing row is tier `new`; a banned pubkey sorts with `new` (it is answered `blocked`
// when decided, in turn with the fresh keys).
import type { TrustSettings } from "../config/load.js";
import { effectiveTier, type Tier } from "../policy/tiers.js";
import type { Db } from "./db.js";
import { SELECT_IDENTITY_SQL, toTrustState, type IdentityRow } from "./identity-row.js";

export type TierLookup = (pubkey: string, nowMs: number) => Tier;

export function tierLookup(db: Db, trust: TrustSettings): TierLookup {
  const st = db.prepare(SELECT_IDENTITY_SQL);
  return (pubkey, nowMs) => {
    const row = st.get(pubkey) as IdentityRow | undefined;
    if (!row) return "new";
    const s = toTrustState(row, nowMs);
    return s.banned ? "new" : effectiveTier(s, nowMs, trust);
  };
}
