import { devPay } from "../../payments/dev.js";
import { formatSats } from "../../util/money.js";
import { UsageError } from "../context.js";
import { noExtraArgs, printJson } from "../format.js";
import type { Command } from "../main.js";

const SHORT_USAGE = "dvm-gate dev-pay BOLT11 [--json] [--config FILE]";

export const command: Command = {
  name: "dev-pay",
  summary: "pay an invoice of the embedded dev wallet (demo and tests only)",
  usage: `Usage: ${SHORT_USAGE}

Marks an invoice issued by the dev wallet (payments.backend "dev") as paid, in the
database the config points to. A running dvm-gate sharing that database notices the
payment within a fraction of a second and starts the job. Paying the same invoice
again changes nothing. Unknown, expired or malformed invoices are refused.

Refused unless the dev wallet is enabled: payments.dev.enabled = true, or the demo
defaults (no config file). The dev wallet moves no real money.

Options:
  --json     print {"status", "paymentHash", "amountMsats"}`,
  options: { json: { type: "boolean" } },
  run(ctx, { values, positionals }) {
    if (!ctx.cfg.payments.devEnabled)
      throw new UsageError("dev-pay: the dev wallet is not enabled (payments.dev.enabled is false); it pays only the embedded demo wallet's invoices");
    const bolt11 = positionals[0];
    if (!bolt11) throw new UsageError(`dev-pay: missing BOLT11; usage: ${SHORT_USAGE}`);
    noExtraArgs(positionals, 1, SHORT_USAGE);
    const result = devPay(ctx.ledger().db, bolt11, ctx.nowMs());
    if (result.status !== "paid" && result.status !== "already_paid") {
      const where = result.status === "unknown" ? ` (database ${ctx.cfg.database.path})` : "";
      throw new UsageError(`dev-pay: ${result.reason ?? result.status}${where}`);
    }
    const amountMsats = result.amountMsats ?? 0;
    if (values.json) printJson(ctx.out, { status: result.status, paymentHash: result.paymentHash, amountMsats });
    else if (result.status === "paid") ctx.out(`paid ${amountMsats} msats (${formatSats(amountMsats)}) for payment hash ${result.paymentHash}`);
    else ctx.out(`already paid: ${amountMsats} msats (${formatSats(amountMsats)}) for payment hash ${result.paymentHash}, nothing changed`);
    return 0;
  },
};
