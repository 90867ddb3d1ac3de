import { auditGrants, fetchAuditEvents, RelayFetchError } from "../../peers/audit.js";
import { UsageError } from "../context.js";
import type { Command } from "../main.js";
import { noExtraArgs, printJson, pubkeyArg, wholeNumberArg } from "../format.js";

const usage = `Usage: dvm-gate audit --relay URL [--relay URL]… --gate NPUB|HEX [--since UNIX] [--budgets-from-config] [--json]

Checks a gate's generosity pool from its public events alone: fetches every grant
event (kind 1985, L dvm-gate/grant) signed by the gate and its pool status event
(kind 30078, d dvm-gate/pool) from the relays, then checks
  signature  every event's id and signature, signed by the gate
  format     every grant is well-formed
  chain      seq 1, 2, 3 … without gaps or duplicates, prev = id of the grant before
  totals     initial + credited = pool + pending + absorbed on every grant, and totals
             that move only as grants and credits move them
  budget     per customer, absorbed in any rolling 24 h ≤ the budget of the grant's tier
             (budgets from the pool status event, or --budgets-from-config)

  --since UNIX           only grants from this time on (the chain may then start above 1)
  --budgets-from-config  use freeTier.budgetsSats of the config instead of the pool status

Exit 0 when every check passes, 1 naming each break, 1 with "nothing to audit" when the
key published no grant event and no pool status event on those relays, 2 on bad input
or an unreachable relay.`;

export const command: Command = {
  name: "audit",
  summary: "audit a gate's pool from its public grant events on relays",
  usage,
  options: {
    relay: { type: "string", multiple: true },
    gate: { type: "string" },
    since: { type: "string" },
    "budgets-from-config": { type: "boolean" },
    json: { type: "boolean" },
  },
  async run(ctx, { values, positionals }) {
    noExtraArgs(positionals, 0, "dvm-gate audit --relay URL --gate NPUB [--since UNIX] [--json]");
    const relays = (values.relay as string[] | undefined) ?? [];
    if (relays.length === 0) throw new UsageError("audit: missing --relay URL (the relay(s) the gate publishes to)");
    for (const u of relays)
      if (!/^wss?:\/\/[^\s/]+/.test(u)) throw new UsageError(`audit: --relay expects a ws:// or wss:// URL, got ${JSON.stringify(u.slice(0, 80))}`);
    if (typeof values.gate !== "string") throw new UsageError("audit: missing --gate NPUB (the gate's public key)");
    let gatePubkey: string;
    gatePubkey = pubkeyArg(values.gate, "audit: --gate");
    let sinceSec: number | undefined;
    if (values.since !== undefined) {
      sinceSec = wholeNumberArg(String(values.since), "audit: --since (unix time)", 0, 99_999_999_999, "seconds");
    }

    let fetched;
    try {
      fetched = await fetchAuditEvents({ relayUrls: relays, gatePubkey, ...(sinceSec !== undefined ? { sinceSec } : {}) });
    } catch (err) {
      if (err instanceof RelayFetchError) throw new UsageError(`audit: ${err.message}`);
      throw err;
    }
    // No grant and no pool status signed by this key: a wrong key or wrong relays, not a
    // clean pool. Passing would tell an auditor something nobody showed (docs/AUDIT.md).
    if (fetched.events.length === 0) {
      const line = `nothing to audit: ${gatePubkey} published no grant events and no pool status event on ${relays.join(", ")}${sinceSec !== undefined ? ` since ${sinceSec}` : ""}`;
      if (values.json) printJson(ctx.out, { ok: false, nothingToAudit: true, grants: 0, customers: 0, problems: [], notes: [line] });
      else ctx.out(`gate ${gatePubkey}\n${line}\naudit FAILED: nothing to audit`);
      return 1;
    }
    const budgets = values["budgets-from-config"] ? ctx.cfg.freeTier.budgetsMsats : undefined;
    const report = auditGrants(fetched.events, gatePubkey, budgets, { partial: sinceSec !== undefined });
    if (fetched.truncated) report.notes = [...(report.notes ?? []), "stopped fetching at the event cap: later checks saw only part of the history"];

    if (values.json) {
      printJson(ctx.out, report);
    } else {
      const lines = [`gate ${gatePubkey}`, `grants ${report.grants}, customers ${report.customers}`];
      if (report.last) {
        const t = report.last.totals;
        lines.push(
          `last grant seq ${report.last.seq}: initial ${t.initialMsats}, credited ${t.creditedMsats}, absorbed ${t.absorbedMsats}, pending ${t.pendingMsats}, pool ${t.poolMsats} msats`,
        );
      }
      for (const n of report.notes ?? []) lines.push(`note: ${n}`);
      for (const p of report.problems) lines.push(`FAIL ${p.check}: ${p.detail}`);
      lines.push(report.ok ? "audit passed" : `audit FAILED: ${[...new Set(report.problems.map((p) => p.check))].join(", ")}`);
      ctx.out(lines.join("\n"));
    }
    return report.ok ? 0 : 1;
  },
};
