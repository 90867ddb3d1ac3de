// Job-request rate limits for live clients: per pubkey, with an allowance that grows
// with the pubkey's tier, and per source address for `new` pubkeys only (fresh keys
// cost nothing to make, so the address is what limits a flood of them; a trusted key
// is not held back by its neighbours behind the same NAT). Both limits are checked
// before either is spent, so a rejected event costs the sender nothing.
import type { Tier } from "../../src/policy/tiers.js";
import { ACCEPT, isLiveSource, reject, type Policy, type PolicyInput, type PolicyResult } from "../policy.js";
import type { TierLookup } from "../tier-lookup.js";
import { TokenBuckets } from "../token-buckets.js";

export interface RateLimitPolicyOptions {
  /** The gate's job kinds: only these are counted. */
  kinds: ReadonlySet<number>;
  perPubkeyPerMinute: Readonly<Record<Tier, number>>;
  perIpPerMinute: number;
  /** Most pubkeys and addresses remembered at once (each map). */
  maxKeys?: number;
  /** Told of each event refused by the per-pubkey limit (the sender, who can be penalised). */
  onPubkeyViolation?: (pubkey: string, nowMs: number) => void;
}

export class RateLimitPolicy implements Policy {
  readonly name = "rate-limit";
  private readonly byPubkey: TokenBuckets;
  private readonly byAddress: TokenBuckets;

  constructor(
    private readonly opts: RateLimitPolicyOptions,
    private readonly tiers: TierLookup,
  ) {
    this.byPubkey = new TokenBuckets(opts.maxKeys ?? 100_000);
    this.byAddress = new TokenBuckets(opts.maxKeys ?? 100_000);
  }

  call(input: PolicyInput): PolicyResult {
    const ev = input.event;
    if (!this.opts.kinds.has(ev.kind) || !isLiveSource(input.sourceType)) return ACCEPT;
    const now = input.nowMs;
    const tier = this.tiers.lookup(ev.pubkey, now).tier;
    const pubkeyAllowance = this.opts.perPubkeyPerMinute[tier];
    if (!this.byPubkey.has(ev.pubkey, pubkeyAllowance, now)) {
      // Only the per-pubkey limit is the sender's own doing; an address limit may be a neighbour's.
      this.opts.onPubkeyViolation?.(ev.pubkey, now);
      return reject(`rate-limited: at most ${pubkeyAllowance} job requests per minute for trust tier ${tier}`);
    }
    const address = tier === "new" ? addressKey(input.sourceInfo) : null;
    if (address !== null && !this.byAddress.has(address, this.opts.perIpPerMinute, now))
      return reject(`rate-limited: at most ${this.opts.perIpPerMinute} job requests per minute from new pubkeys at your address`);
    this.byPubkey.take(ev.pubkey, pubkeyAllowance, now);
    if (address !== null) this.byAddress.take(address, this.opts.perIpPerMinute, now);
    return ACCEPT;
  }
}

/**
 * The unit an address limit applies to: the IPv4 address, or the /64 of an IPv6
 * address (one subscriber usually holds a whole /64). Null when there is no address.
 */
export function addressKey(sourceInfo: string): string | null {
  if (sourceInfo === "") return null;
  if (!sourceInfo.includes(":")) return sourceInfo;
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(sourceInfo);
  if (mapped) return mapped[1]!;
  const groups = expandIpv6(sourceInfo);
  return groups ? `${groups.slice(0, 4).join(":")}::/64` : sourceInfo;
}

// Runs for every job request from a `new` pubkey over IPv6; written without per-group
// regexes and array spreads, which made it the costliest step of such an event.
function expandIpv6(addr: string): string[] | null {
  const halves = addr.toLowerCase().split("::");
  if (halves.length > 2) return null;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const missing = 8 - head.length - tail.length;
  if (missing < 0 || (halves.length === 1 && missing !== 0)) return null;
  const all: string[] = [];
  for (const g of head) {
    const n = hexGroup(g);
    if (n === null) return null;
    all.push(n);
  }
  for (let i = 0; i < missing; i++) all.push("0");
  for (const g of tail) {
    const n = hexGroup(g);
    if (n === null) return null;
    all.push(n);
  }
  return all;
}

/** One to four lowercase hex digits without their leading zeros ("0" stays), or null. */
function hexGroup(g: string): string | null {
  if (g.length < 1 || g.length > 4) return null;
  let firstNonZero = -1;
  for (let i = 0; i < g.length; i++) {
    const c = g.charCodeAt(i);
    // 0-9 is 48–57, a-f is 97–102.
    if (c < 48 || (c > 57 && (c < 97 || c > 102))) return null;
    if (firstNonZero === -1 && c !== 48) firstNonZero = i;
  }
  return firstNonZero === -1 ? "0" : g.slice(firstNonZero);
}
