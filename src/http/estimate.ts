// The dry-run decision behind `GET /estimate`: what the gate would decide for this
// customer and job kind right now, computed by the same pure `decide()` the ledger
// uses, on values read from the ledger. Read-only: no reservation, no row written.
import type { RuntimeConfig } from "../config/load.js";
import type { Ledger } from "../ledger/ledger.js";
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
 * Reads identity and pool in one deferred (read) transaction, so both come from the
 * same snapshot, and decides on them without writing anything.
 */
export function estimate(ledger: Ledger, cfg: RuntimeConfig, req: { pubkey: string; kind: number; priceMsats: number }, nowMs: number): Estimate {
  const { id, poolMsats } = ledger.db.transaction(() => ({ id: ledger.identity(req.pubkey, nowMs), poolMsats: ledger.totals().poolMsats }))();
  // What the decision reads, reported back as it was read.
  const base = {
    kind: req.kind,
    pubkey: req.pubkey,
    priceMsats: req.priceMsats,
    tier: id.tier,
    budgetMsats: id.budgetMsats,
    usedMsats: id.usedMsats,
    poolMsats,
    pendingCount: id.pendingCount,
    maxPendingPerPubkey: cfg.freeTier.maxPendingPerPubkey,
  };
  const outcome = decide({
    ...base,
    banned: id.banned,
    // The same whole-sat rounding the real decision applies with LNbits.
    chargeUnitMsats: ledger.settings.chargeUnitMsats ?? 1,
  });
  switch (outcome.kind) {
    case "blocked":
      return { ...base, decision: "blocked", absorbMsats: 0, chargeMsats: 0, reason: "blocked" };
    case "gate":
      return { ...base, decision: "gate", absorbMsats: 0, chargeMsats: outcome.chargeMsats, reason: outcome.reason };
    default:
      return { ...base, decision: outcome.kind, absorbMsats: outcome.absorbMsats, chargeMsats: outcome.chargeMsats };
  }
}
