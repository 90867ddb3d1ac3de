// The one policy both adapters run, built from the service's own config: validation
// first (no I/O), then who the sender is (ban, minimum tier), then the rate limits, so
// that only events that would otherwise get in spend rate-limit tokens.
import type { RuntimeConfig } from "../src/config/load.js";
import { BanPolicy } from "./policies/ban.js";
import { JobRequestPolicy } from "./policies/job-request.js";
import { MinTierPolicy } from "./policies/min-tier.js";
import { RateLimitPolicy } from "./policies/rate-limit.js";
import { PolicyPipeline, type PipelineErrorSink, type Policy } from "./policy.js";
import { PerEventTierLookup, type TierLookup } from "./tier-lookup.js";

export type GatePolicyConfig = Pick<RuntimeConfig, "jobs" | "plugin">;

export function buildGatePolicy(
  cfg: GatePolicyConfig,
  tiers: TierLookup,
  onError?: PipelineErrorSink,
  onPubkeyViolation?: (pubkey: string, nowMs: number) => void,
): Policy {
  const kinds = new Set(cfg.jobs.priceMsatsByKind.keys());
  const perEvent = new PerEventTierLookup(tiers);
  const pipeline = new PolicyPipeline(
    [
      new JobRequestPolicy({ kinds, maxRequestBytes: cfg.jobs.maxRequestBytes, maxRequestAgeSec: cfg.jobs.maxRequestAgeSec }),
      new BanPolicy(perEvent),
      new MinTierPolicy(cfg.plugin.minTierForKinds, perEvent),
      new RateLimitPolicy(
        {
          kinds,
          perPubkeyPerMinute: cfg.plugin.perPubkeyPerMinute,
          perIpPerMinute: cfg.plugin.perIpPerMinute,
          ...(onPubkeyViolation ? { onPubkeyViolation } : {}),
        },
        perEvent,
      ),
    ],
    onError,
  );
  return {
    name: "dvm-gate",
    call: (input) => {
      perEvent.forget();
      return pipeline.call(input);
    },
  };
}
