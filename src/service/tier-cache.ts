// Tiers of recent pubkeys for ordering arrivals (IntakeQueue), remembered for a short
// while so a busy customer costs one map lookup per request. Bounded: past `maxEntries`
// the oldest entries go. A tier changed by another process (`identity set-tier`) is seen
// after at most `ttlMs`. Only orders the queue: the decision reads the ledger afresh.
import type { Tier } from "../policy/tiers.js";
import type { KnownIdentities } from "../ledger/tier-lookup.js";

const HEX64 = /^[0-9a-f]{64}$/;

export class TierCache {
  private readonly entries = new Map<string, { tier: Tier; atMs: number }>();
  private refreshedAtMs = 0;

  constructor(
    private readonly identities: KnownIdentities,
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
  ) {}

  tierOf(pubkey: unknown, nowMs: number): Tier {
    // Not a pubkey: the request will be ignored when checked; it waits with the fresh keys.
    if (typeof pubkey !== "string" || !HEX64.test(pubkey)) return "new";
    const hit = this.entries.get(pubkey);
    if (hit && nowMs - hit.atMs < this.ttlMs && nowMs >= hit.atMs) return hit.tier;
    let tier: Tier;
    try {
      if (Math.abs(nowMs - this.refreshedAtMs) >= this.ttlMs) {
        this.refreshedAtMs = nowMs;
        this.identities.refresh();
      }
      tier = this.identities.tierOf(pubkey, nowMs);
    } catch {
      // The database busy or gone: order it as new; the decision will say what holds.
      return "new";
    }
    // Fresh keys are not remembered: a flood of them would only push the known ones out.
    if (tier === "new") return tier;
    this.entries.delete(pubkey);
    this.entries.set(pubkey, { tier, atMs: nowMs });
    if (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    return tier;
  }
}
