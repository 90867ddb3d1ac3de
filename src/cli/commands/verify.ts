import { verifyLedger } from "../../ledger/verify.js";
import type { Command } from "../main.js";
import { noExtraArgs, printJson } from "../format.js";

export const command: Command = {
  name: "verify",
  summary: "check every ledger guarantee (SPEC §3); exit 1 naming any break",
  usage: `Usage: dvm-gate verify [--json] [--config FILE]

Re-derives the ledger's guarantees from its history rows: conservation to the msat,
non-negative balances, per-customer 24 h budgets, resolve-at-most-once, request-id
idempotency, database integrity, the grant chain, and prepaid balances (every msat
deposited is in a balance, held by an open job, spent or refunded). Exits 0 when all hold, 1 when
any is broken (each break is named on its own line).`,
  options: { json: { type: "boolean" } },
  run(ctx, { values, positionals }) {
    noExtraArgs(positionals, 0, "dvm-gate verify [--json]");
    // Look before touching: no expiry sweep on open, so verify reports the file as it is.
    const violations = verifyLedger(ctx.ledger({ sweep: false }).db);
    if (values.json) printJson(ctx.out, { ok: violations.length === 0, violations });
    else if (violations.length === 0) ctx.out("ok: every guarantee holds");
    else for (const v of violations) ctx.out(`BROKEN ${v.guarantee}: ${v.detail}`);
    return violations.length === 0 ? 0 : 1;
  },
};
