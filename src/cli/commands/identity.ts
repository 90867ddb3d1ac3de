import { isTier, TIERS } from "../../policy/tiers.js";
import { UsageError } from "../context.js";
import type { Command } from "../main.js";
import { noExtraArgs, printJson, pubkeyArg, textArg } from "../format.js";
import { nip19 } from "nostr-tools";

const usage = `Usage:
  dvm-gate identity show PUBKEY                tier, score, budget and usage
  dvm-gate identity set-tier PUBKEY TIER       pin a tier (${TIERS.join("|")}), or "auto" to unpin
  dvm-gate identity ban PUBKEY [--reason TEXT] block every request from PUBKEY (reason: at most 200 characters)
  dvm-gate identity unban PUBKEY

PUBKEY is an npub or 64 hex characters. Every subcommand prints the customer's view
afterwards (budget in msats per rolling 24 h); --json prints it as one JSON object.`;

export const command: Command = {
  name: "identity",
  summary: "identity show|set-tier|ban|unban PUBKEY",
  usage,
  options: { json: { type: "boolean" }, reason: { type: "string" } },
  run(ctx, { values, positionals }) {
    const [sub, who, tierArg] = positionals;
    const now = ctx.nowMs();
    let view;
    switch (sub) {
      case "show": {
        noExtraArgs(positionals, 2, "dvm-gate identity show PUBKEY");
        // The argument before the ledger, like the other subcommands: a bad PUBKEY is
        // the answer even where no database exists yet.
        const pubkey = pubkeyArg(who);
        view = ctx.ledger().identity(pubkey, now);
        break;
      }
      case "set-tier": {
        noExtraArgs(positionals, 3, "dvm-gate identity set-tier PUBKEY TIER");
        const pubkey = pubkeyArg(who);
        if (!tierArg) throw new UsageError(`identity set-tier: missing TIER (${TIERS.join(", ")} or auto)`);
        if (tierArg !== "auto" && !isTier(tierArg)) throw new UsageError(`identity set-tier: unknown tier "${tierArg}" (expected ${TIERS.join(", ")} or auto)`);
        view = ctx.ledger({ create: true }).setTier(pubkey, tierArg === "auto" ? null : tierArg, now);
        break;
      }
      case "ban":
      case "unban": {
        noExtraArgs(positionals, 2, `dvm-gate identity ${sub} PUBKEY`);
        // Arguments first: bad input must not create or change the database.
        const pubkey = pubkeyArg(who);
        const reason = typeof values.reason === "string" ? textArg(values.reason, `identity ${sub}: --reason`, 200) : null;
        view = ctx.ledger({ create: true }).setBanned(pubkey, sub === "ban", reason, now);
        break;
      }
      default:
        throw new UsageError(
          sub ? `identity: unknown subcommand "${sub}" (show, set-tier, ban, unban)` : "identity: missing subcommand (show, set-tier, ban, unban)",
        );
    }
    const balanceMsats = ctx.ledger().balance(view.pubkey).balanceMsats;
    const heldMsats = ctx.ledger().balance(view.pubkey).heldMsats;
    if (values.json) printJson(ctx.out, { ...view, balanceMsats, balanceHeldMsats: heldMsats });
    else
      ctx.out(
        [
          `pubkey   ${view.pubkey}`,
          `npub     ${nip19.npubEncode(view.pubkey)}`,
          `tier     ${view.banned ? "BANNED" : view.tier}${view.pinnedTier ? " (pinned)" : ""}${view.wotFloor ? ` (web-of-trust floor ${view.wotFloor})` : ""}`,
          `score    ${view.score} (${view.scoreTier} by score)`,
          `budget   ${view.budgetMsats} msats/day, ${view.usedMsats} used in the last 24 h, ${view.pendingCount} pending`,
          `balance  ${balanceMsats} msats prepaid, ${heldMsats} held by open jobs`,
        ].join("\n"),
      );
    return 0;
  },
};
