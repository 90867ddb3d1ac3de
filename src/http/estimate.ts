// The dry-run decision behind `GET /estimate`: what the gate would decide for this
// customer and job kind right now, computed by the same pure `decide()` the ledger
// uses, on values read from the ledger. Read-only: no reservation, no row written.
import type { RuntimeConfig } from "../config/load.js";
import type { Ledger } from "../ledger/ledger.js";
import { readDecisionInputs } from "../ledger/decision-inputs.js";
import { decide, type GateReason } from "../policy/decision.js";
import { priceFor } from "../policy/pricing.js";
import type { Tier } from "../policy/tiers.js";

export interface Estimate {
  kind: number;
  pubkey: string;
  priceMsats: number;
  tier: Tier;
  budgetMsats: number;
  usedMsats: number;
  poolMsats: number;
  pendingCount: number;
  maxPendingPerPubkey: number;
  /** The customer's prepaid balance (SPEC §12). */
  balanceMsats: number;
  /** What the balance would pay (the whole charge or nothing): no invoice then. */
  fromBalanceMsats: number;
  decision: "free" | "partial" | "gate" | "blocked";
  absorbMsats: number;
  chargeMsats: number;
  /** Why nothing would be absorbed (gate and blocked only). */
  reason?: GateReason | "blocked";
}

export type KindParam = { ok: true; kind: number; priceMsats: number } | { ok: false; message: string };

/** The `kind` query parameter: exactly one, a job kind this gate is configured to serve. */
export function parseKindParam(values: string[], cfg: RuntimeConfig): KindParam {
  const served = [...cfg.jobs.priceMsatsByKind.keys()].sort((a, b) => a - b).join(", ");
  if (values.length === 0) return { ok: false, message: `query parameter kind is required: one of the served job kinds (${served})` };
  if (values.length > 1) return { ok: false, message: "query parameter kind must be given once" };
  const text = values[0]!;
  if (!/^\d{1,5}$/.test(text)) return { ok: false, message: `kind must be a whole number, got ${JSON.stringify(text.slice(0, 20))}` };
  const kind = Number(text);
  const priceMsats = priceFor(cfg.jobs, kind);
  if (priceMsats === null) return { ok: false, message: `kind ${kind} is not served here; served job kinds: ${served}` };
  return { ok: true, kind, priceMsats };
}

/**
 * Reads what the real decision reads (the same function, in one deferred read
 * transaction, so all from one snapshot) and decides on it without writing anything.
 */
export function estimate(ledger: Ledger, cfg: RuntimeConfig, req: { pubkey: string; kind: number; priceMsats: number }, nowMs: number): Estimate {
  const inputs = ledger.db.transaction(() => readDecisionInputs(ledger.db, ledger.settings, req.pubkey, req.priceMsats, nowMs))();
  // What the decision reads, reported back as it was read.
  const base = {
    kind: req.kind,
    pubkey: req.pubkey,
    priceMsats: req.priceMsats,
    tier: inputs.tier,
    budgetMsats: inputs.budgetMsats,
    usedMsats: inputs.usedMsats,
    poolMsats: inputs.poolMsats,
    pendingCount: inputs.pendingCount,
    maxPendingPerPubkey: cfg.freeTier.maxPendingPerPubkey,
    balanceMsats: inputs.balanceMsats ?? 0,
  };
  const outcome = decide(inputs);
  const fromBalanceMsats = "fromBalance" in outcome && outcome.fromBalance ? outcome.chargeMsats : 0;
  switch (outcome.kind) {
    case "blocked":
      return { ...base, fromBalanceMsats: 0, decision: "blocked", absorbMsats: 0, chargeMsats: 0, reason: "blocked" };
    case "gate":
      return { ...base, fromBalanceMsats, decision: "gate", absorbMsats: 0, chargeMsats: outcome.chargeMsats, reason: outcome.reason };
    default:
      return { ...base, fromBalanceMsats, decision: outcome.kind, absorbMsats: outcome.absorbMsats, chargeMsats: outcome.chargeMsats };
  }
}
