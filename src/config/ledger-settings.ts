// The ledger's settings from the config: one mapping for every process that opens the
// ledger (the service, the CLI, the plugin's abuse reporter).
import type { RuntimeConfig } from "./load.js";
import type { LedgerSettings } from "../ledger/ledger.js";

export function ledgerSettings(cfg: RuntimeConfig): LedgerSettings {
  return {
    budgetsMsats: cfg.freeTier.budgetsMsats,
    poolInitialMsats: cfg.freeTier.poolInitialMsats,
    poolCreditPct: cfg.freeTier.poolCreditPct,
    maxPendingPerPubkey: cfg.freeTier.maxPendingPerPubkey,
    timeoutSec: cfg.jobs.timeoutSec,
    invoiceExpirySec: cfg.payments.invoiceExpirySec,
    trust: cfg.trust,
    // LNbits invoices whole sats only: partial charges must come out whole.
    chargeUnitMsats: cfg.payments.backend === "lnbits" ? 1000 : 1,
    paymentGraceSec: cfg.payments.paymentGraceSec,
    maxBalanceMsats: cfg.balances.maxBalanceMsats,
    invoiceLimits: cfg.payments.invoiceLimits,
  };
}
