import { nip19 } from "nostr-tools";
import type { BalanceView } from "../../ledger/balance-store.js";
import { parseSatsText } from "../../util/money.js";
import { UsageError } from "../context.js";
import type { Command } from "../main.js";
import { msatsLine, noExtraArgs, printJson, pubkeyArg } from "../format.js";

const usage = `Usage:
  dvm-gate balance show PUBKEY [--json]                   a customer's prepaid balance (SPEC §12)
  dvm-gate balance credit PUBKEY SATS --note TEXT [--json] credit SATS by hand (whole sats, more than 0)
  dvm-gate balance refund PUBKEY SATS --note TEXT [--json] take SATS out after paying them back yourself

PUBKEY is an npub or 64 hex characters. A credit that would take the balance (available
plus held by open jobs) over balances.maxBalanceSats is refused and changes nothing.
dvm-gate never sends money: refund pays nothing, it records what you paid back by hand.
Every deposit, debit and refund stays in the ledger's history; \`dvm-gate verify\` checks
that every msat deposited is in a balance, held by an open job, spent or refunded.`;

export const command: Command = {
  name: "balance",
  summary: "balance show PUBKEY | balance credit|refund PUBKEY SATS --note TEXT",
  usage,
  options: { json: { type: "boolean" }, note: { type: "string" } },
  run(ctx, { values, positionals }) {
    const [sub, who, satsArg] = positionals;
    const now = ctx.nowMs();
    const note = typeof values.note === "string" ? values.note.trim().slice(0, 500) : "";
    const amount = (what: string) => {
      noExtraArgs(positionals, 3, `dvm-gate balance ${what} PUBKEY SATS --note TEXT`);
      const pubkey = pubkeyArg(who);
      if (satsArg === undefined) throw new UsageError(`balance ${what}: missing SATS (a whole number of sats)`);
      const msats = parseSatsText(satsArg, `balance ${what} SATS`);
      if (msats === 0) throw new UsageError(`balance ${what}: SATS must be more than 0`);
      if (!note) throw new UsageError(`balance ${what}: --note TEXT is required (why, kept in the ledger's history)`);
      return { pubkey, msats };
    };
    const ledger = ctx.ledger();
    switch (sub) {
      case "show": {
        noExtraArgs(positionals, 2, "dvm-gate balance show PUBKEY [--json]");
        const pubkey = pubkeyArg(who);
        const b = ledger.balance(pubkey);
        const deposits = ledger.balances.recentDeposits(pubkey, 10);
        if (values.json) printJson(ctx.out, { ...b, maxBalanceMsats: ledger.maxBalanceMsats, recentDeposits: deposits });
        else {
          const lines = [`pubkey     ${pubkey}`, `npub       ${nip19.npubEncode(pubkey)}`, ...viewLines(b), msatsLine("cap", ledger.maxBalanceMsats)];
          for (const d of deposits)
            lines.push(
              `deposit    ${new Date(d.createdAtMs).toISOString()} ${d.source} ${d.amountMsats} msats` +
                (d.excessMsats > 0 ? ` (+${d.excessMsats} msats over the cap, not credited: refund by hand)` : "") +
                (d.ref ? ` ref ${d.ref}` : "") +
                (d.note ? ` — ${d.note}` : ""),
            );
          ctx.out(lines.join("\n"));
        }
        return 0;
      }
      case "credit": {
        const { pubkey, msats } = amount("credit");
        const r = ledger.deposit({ pubkey, amountMsats: msats, source: "operator", ref: null, note, overCap: "refuse" }, now);
        if (r.status === "over_cap") {
          ctx.err(`dvm-gate: balance credit: refused, it would exceed balances.maxBalanceSats; room left ${r.roomMsats} msats; nothing changed`);
          return 2;
        }
        if (values.json) printJson(ctx.out, r.balance);
        else ctx.out(`credited ${satsArg!.trim()} sats; balance is now ${r.balance.balanceMsats} msats`);
        return 0;
      }
      case "refund": {
        const { pubkey, msats } = amount("refund");
        const b = ledger.withdraw(pubkey, msats, note, now);
        if (b === null) {
          ctx.err(`dvm-gate: balance refund: refused, the balance is ${ledger.balance(pubkey).balanceMsats} msats; nothing changed`);
          return 2;
        }
        if (values.json) printJson(ctx.out, b);
        else ctx.out(`recorded a refund of ${satsArg!.trim()} sats; balance is now ${b.balanceMsats} msats`);
        return 0;
      }
      default:
        throw new UsageError(sub ? `balance: unknown subcommand "${sub}" (show, credit, refund)` : "balance: missing subcommand (show, credit, refund)");
    }
  },
};

export function viewLines(b: BalanceView): string[] {
  return [
    msatsLine("balance", b.balanceMsats),
    msatsLine("held", b.heldMsats),
    msatsLine("deposited", b.depositedMsats),
    msatsLine("spent", b.spentMsats),
    msatsLine("refunded", b.withdrawnMsats),
  ];
}
