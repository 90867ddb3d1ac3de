import { formatSats } from "../../util/money.js";
import { UsageError } from "../context.js";
import type { Command } from "../main.js";
import { msatsLine, noExtraArgs, printJson, satsArg, textArg } from "../format.js";

const usage = `Usage:
  dvm-gate pool status [--json]                      the generosity pool's totals
  dvm-gate pool credit SATS [--note TEXT] [--json]   add SATS (whole sats, more than 0) to the pool

--note TEXT (at most 200 characters) is kept with the credit in the ledger; --json prints the totals after it.
Totals always satisfy initial + credited = pool + pending + absorbed.`;

export const command: Command = {
  name: "pool",
  summary: "pool status [--json] | pool credit SATS [--json]",
  usage,
  options: { json: { type: "boolean" }, note: { type: "string" } },
  run(ctx, { values, positionals }) {
    const [sub, arg] = positionals;
    if (sub === "status") {
      noExtraArgs(positionals, 1, "dvm-gate pool status [--json]");
      const t = ctx.ledger().totals();
      if (values.json) printJson(ctx.out, t);
      else
        ctx.out(
          [
            msatsLine("initial", t.initialMsats),
            msatsLine("credited", t.creditedMsats),
            msatsLine("absorbed", t.absorbedMsats),
            msatsLine("pending", t.pendingMsats),
            msatsLine("pool", t.poolMsats),
          ].join("\n"),
        );
      return 0;
    }
    if (sub === "credit") {
      noExtraArgs(positionals, 2, "dvm-gate pool credit SATS");
      if (arg === undefined) throw new UsageError("pool credit: missing SATS (a whole number of sats)");
      const msats = satsArg(arg, "pool credit SATS", 1);
      const note = typeof values.note === "string" ? textArg(values.note, "pool credit: --note", 200) : null;
      const t = ctx.ledger({ create: true }).credit(msats, "operator", note, ctx.nowMs());
      if (values.json) printJson(ctx.out, t);
      else ctx.out(`credited ${formatSats(msats)}; pool is now ${t.poolMsats} msats`);
      return 0;
    }
    throw new UsageError(sub ? `pool: unknown subcommand "${sub}" (status or credit)` : "pool: missing subcommand (status or credit)");
  },
};
