import { UsageError } from "../context.js";
import type { Command } from "../main.js";
import { noExtraArgs, printJson, pubkeyArg, wholeNumberArg } from "../format.js";

export const command: Command = {
  name: "grants",
  summary: "list grants (posted subsidies), oldest first",
  usage: `Usage: dvm-gate grants [--after SEQ] [--limit N] [--pubkey PUBKEY] [--json]

Each grant is one job the pool paid for (all or part), with its place in the
hash-chained grant log (seq, prev) and the pool totals after it.`,
  options: { json: { type: "boolean" }, after: { type: "string" }, limit: { type: "string" }, pubkey: { type: "string" } },
  run(ctx, { values, positionals }) {
    noExtraArgs(positionals, 0, "dvm-gate grants [--after SEQ] [--limit N] [--pubkey PUBKEY] [--json]");
    const int = (v: unknown, name: string, dflt: number, min: number, max: number) => {
      if (v === undefined) return dflt;
      return wholeNumberArg(String(v), `grants: --${name}`, min, max);
    };
    // Arguments are checked before the database is opened: bad input changes nothing.
    const query = {
      afterSeq: int(values.after, "after", 0, 0, 999_999_999),
      limit: int(values.limit, "limit", 100, 1, 10_000),
      ...(typeof values.pubkey === "string" ? { pubkey: pubkeyArg(values.pubkey, "--pubkey") } : {}),
    };
    const list = ctx.ledger().grants(query);
    if (values.json) {
      printJson(
        ctx.out,
        list.map(({ eventJson, ...g }) => ({ ...g, event: eventJson ? JSON.parse(eventJson) : null })),
      );
      return 0;
    }
    if (list.length === 0) ctx.out("no grants");
    for (const g of list)
      ctx.out(
        `#${g.seq} ${new Date(g.createdAtMs).toISOString()} ${g.label.padEnd(7)} ${String(g.absorbedMsats).padStart(9)} msats absorbed, ${g.chargedMsats} charged, kind ${g.kind}, ${g.tier} ${g.pubkey.slice(0, 12)}… request ${g.requestId.slice(0, 12)}…${g.eventId ? ` event ${g.eventId.slice(0, 12)}…` : ""}`,
      );
    return 0;
  },
};
