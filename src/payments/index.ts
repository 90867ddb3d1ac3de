// Picks the configured invoice backend. The dev wallet is refused unless the operator
// enabled it (or runs the demo defaults), so a production config cannot end up issuing
// invoices that only `dvm-gate dev-pay` can pay.
import type { Logger } from "pino";
import { ConfigError, type RuntimeConfig } from "../config/load.js";
import type { Db } from "../ledger/db.js";
import { DevWalletBackend } from "./dev.js";
import { checkLnbitsOptions, LnbitsBackend } from "./lnbits.js";
import { NwcBackend, parseNwcUri } from "./nwc.js";
import { PaymentBackendError, type PaymentBackend } from "./types.js";

export function createPaymentBackend(cfg: RuntimeConfig, deps: { db: Db; log: Logger }): PaymentBackend {
  checkPaymentConfig(cfg);
  const p = cfg.payments;
  const log = deps.log.child({ component: "payments", backend: p.backend });
  switch (p.backend) {
    case "dev":
      log.warn("payments: dev wallet in use, invoices are paid only by `dvm-gate dev-pay` and move no real money");
      return new DevWalletBackend(deps.db);
    case "nwc":
      return asConfigError(() => new NwcBackend({ uri: p.nwcUri!, log }));
    case "lnbits":
      return asConfigError(() => new LnbitsBackend({ url: p.lnbits!.url, invoiceKey: p.lnbits!.invoiceKey, log }));
  }
}

/**
 * Every config check createPaymentBackend makes (its secrets resolved), with no
 * database and no connection: `start` runs it before it locks or creates anything, so
 * a bad wallet setting leaves no ledger behind.
 */
export function checkPaymentConfig(cfg: RuntimeConfig): void {
  const p = cfg.payments;
  switch (p.backend) {
    case "dev":
      if (!p.devEnabled) throw new ConfigError('payments.backend is "dev" but payments.dev.enabled is false: the dev wallet is for demos and tests');
      return;
    case "nwc":
      if (!p.nwcUri) throw new ConfigError('payments.nwc.uri: required when payments.backend is "nwc"');
      asConfigError(() => parseNwcUri(p.nwcUri!));
      return;
    case "lnbits":
      if (!p.lnbits) throw new ConfigError('payments.lnbits: required when payments.backend is "lnbits"');
      asConfigError(() => checkLnbitsOptions(p.lnbits!));
      return;
  }
}

/** A malformed URI or URL is a config problem: one clear line at start, exit 2. */
function asConfigError<T>(make: () => T): T {
  try {
    return make();
  } catch (err) {
    if (err instanceof PaymentBackendError) throw new ConfigError(err.message);
    throw err;
  }
}
