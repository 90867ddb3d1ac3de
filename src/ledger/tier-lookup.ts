// A pubkey's effective tier straight from its identity row (one prepared primary-key
// read, no transaction): the intake orders arrivals by it before any signature check.
// A missing row is tier `new`; a banned pubkey sorts with `new` (it is answered `blocked`
// when decided, in turn with the fresh keys).
//
// Most of a flood is keys never seen: the set of pubkeys that have a row is kept in
// memory (read again incrementally by `updated_at_ms`), so a fresh key costs a set
// lookup, not a SQLite read. Past `maxKnown` rows the set is dropped and every lookup reads.
import type { Statement } from "better-sqlite3";
import { effectiveTier, type Tier, type TrustSettings } from "../policy/tiers.js";
import type { Db } from "./db.js";
import { SELECT_IDENTITY_SQL, toTrustState, type IdentityRow } from "./identity-row.js";

export type TierLookup = (pubkey: string, nowMs: number) => Tier;

export class KnownIdentities {
  private known: Set<string> | null = new Set();
  private readonly row: Statement;
  private readonly changed: Statement;
  private sinceMs = -1;

  constructor(
    db: Db,
    private readonly trust: TrustSettings,
    private readonly maxKnown = 1_000_000,
  ) {
    this.row = db.prepare(SELECT_IDENTITY_SQL);
    // Clocks of processes sharing the file may differ a little: read a minute back each time.
    this.changed = db.prepare("SELECT pubkey, updated_at_ms FROM identities WHERE updated_at_ms >= ?");
    this.refresh();
  }

  /** Reads the rows written since the last refresh (by any process). */
  refresh(): void {
    if (!this.known) return;
    let newest = this.sinceMs;
    for (const r of this.changed.iterate(this.sinceMs < 0 ? -1 : this.sinceMs - 60_000) as Iterable<{ pubkey: string; updated_at_ms: number }>) {
      this.known.add(r.pubkey);
      if (r.updated_at_ms > newest) newest = r.updated_at_ms;
      if (this.known.size > this.maxKnown) {
        this.known = null;
        return;
      }
    }
    this.sinceMs = newest;
  }

  tierOf: TierLookup = (pubkey, nowMs) => {
    if (this.known && !this.known.has(pubkey)) return "new";
    const row = this.row.get(pubkey) as IdentityRow | undefined;
    if (!row) return "new";
    const s = toTrustState(row, nowMs);
    return s.banned ? "new" : effectiveTier(s, nowMs, this.trust);
  };
}
