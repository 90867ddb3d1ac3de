// Writes of some kinds reserved to members the gate trusts, the way relays give write
// access to their community: `plugin.minTierForKinds` maps a kind to the lowest tier
// that may publish it.
import type { Tier } from "../../src/policy/tiers.js";
import { tierRank } from "../../src/policy/tiers.js";
import { ACCEPT, reject, type Policy, type PolicyInput, type PolicyResult } from "../policy.js";
import type { TierLookup } from "../tier-lookup.js";

export class MinTierPolicy implements Policy {
  readonly name = "min-tier";
  constructor(
    private readonly minTierForKinds: ReadonlyMap<number, Tier>,
    private readonly tiers: TierLookup,
  ) {}

  call(input: PolicyInput): PolicyResult {
    const min = this.minTierForKinds.get(input.event.kind);
    if (min === undefined || min === "new") return ACCEPT;
    const tier = this.tiers.lookup(input.event.pubkey, input.nowMs).tier;
    if (tierRank(tier) >= tierRank(min)) return ACCEPT;
    return reject(`restricted: kind ${input.event.kind} needs trust tier ${min} or above on this relay; this pubkey is ${tier}`);
  }
}
