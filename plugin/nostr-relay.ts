// The gate policy for in-process relays built on @nostr-relay/core, as a
// `beforeHandleEvent` plugin. That hook runs before the library checks the event's id
// and signature, so this adapter checks them itself first: otherwise anyone could
// spend a victim's rate-limit allowance with forged events in the victim's name. Only
// events that can spend an allowance (the gate's job kinds) are checked, because the
// library verifies every event again after us and a pure-JS check costs about 1 ms.
import type { BeforeHandleEventPlugin, BeforeHandleEventResult, Event as RelayEvent } from "@nostr-relay/common";
import { verifyEvent, type Event } from "nostr-tools/pure";
import { buildGatePolicy, type GatePolicyConfig } from "./gate-policy.js";
import type { PipelineErrorSink, Policy } from "./policy.js";
import type { TierLookup } from "./tier-lookup.js";

export interface NostrRelayGateOptions {
  /** Defaults to Date.now; tests inject their own. */
  clock?: () => number;
  /** Kinds whose signature this plugin checks before the policy; default: every kind. */
  verifyKinds?: ReadonlySet<number>;
}

export class NostrRelayGatePlugin implements BeforeHandleEventPlugin {
  private readonly clock: () => number;
  private readonly verifyKinds: ReadonlySet<number> | null;

  constructor(
    private readonly policy: Policy,
    opts: NostrRelayGateOptions = {},
  ) {
    this.clock = opts.clock ?? Date.now;
    this.verifyKinds = opts.verifyKinds ?? null;
  }

  beforeHandleEvent(event: RelayEvent): BeforeHandleEventResult {
    // A fresh copy built from the fields: nostr-tools caches its verdict on the object
    // under a symbol, and object spread would copy that symbol (and the stale verdict).
    const { id, pubkey, created_at, kind, tags, content, sig } = event;
    const ev: Event = { id, pubkey, created_at, kind, tags: tags.map((t) => [...t]), content, sig };
    const verify = this.verifyKinds === null || this.verifyKinds.has(ev.kind);
    let valid = true;
    if (verify) {
      try {
        valid = verifyEvent(ev);
      } catch {
        valid = false;
      }
    }
    if (!valid) return { canHandle: false, message: "invalid: bad event id or signature" };
    // The library does not tell plugins the client's address: no per-address limit here.
    const r = this.policy.call({ event: ev, sourceType: "Client", sourceInfo: "", nowMs: this.clock() });
    if (r.action === "accept") return { canHandle: true };
    // The library has no silent drop; a shadow reject is refused like any other.
    return { canHandle: false, message: r.msg };
  }
}

/** The gate policy from the service config, ready for `relay.register(...)`. */
export function createNostrRelayGatePlugin(
  cfg: GatePolicyConfig,
  tiers: TierLookup,
  opts: { clock?: () => number; onError?: PipelineErrorSink } = {},
): NostrRelayGatePlugin {
  return new NostrRelayGatePlugin(buildGatePolicy(cfg, tiers, opts.onError), {
    ...(opts.clock ? { clock: opts.clock } : {}),
    verifyKinds: new Set(cfg.jobs.priceMsatsByKind.keys()),
  });
}
