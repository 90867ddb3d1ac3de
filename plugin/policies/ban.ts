// A pubkey the operator banned in dvm-gate writes nothing to this relay: the ban is
// the operator's judgement of the person, not of one kind of event.
import { ACCEPT, reject, type Policy, type PolicyInput, type PolicyResult } from "../policy.js";
import type { TierLookup } from "../tier-lookup.js";

export class BanPolicy implements Policy {
  readonly name = "ban";
  constructor(private readonly tiers: TierLookup) {}

  call(input: PolicyInput): PolicyResult {
    if (this.tiers.lookup(input.event.pubkey, input.nowMs).banned) return reject("blocked: this pubkey is banned by the relay operator");
    return ACCEPT;
  }
}
