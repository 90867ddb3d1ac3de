import { AbstractRelay } from "nostr-tools/abstract-relay";
import { finalizeEvent, getPublicKey } from "nostr-tools/pure";
import { websocketImplementation } from "../../relay/ws.js";
import { announcementTemplate } from "../../events/announce.js";
import { UsageError } from "../context.js";
import type { Command } from "../main.js";
import { gateRelays, gateSecretKey } from "../demo.js";
import { noExtraArgs, printJson } from "../format.js";

const usage = `Usage: dvm-gate announce [--relay URL]… [--name TEXT] [--about TEXT] [--dry-run] [--json]

Signs the gate's NIP-89 handler announcement (kind 31990) with nostr.secretKey: a
["k", kind] tag per configured job kind, and in its content the name, the about text,
each kind's price and the free-tier budgets per tier (msats). Publishes it to
nostr.relays, or to the --relay URLs given. A newer announcement replaces the last.

  --dry-run   print the signed event, publish nothing

Exit 0 when at least one relay accepted it, 1 when none did, 2 on bad input.`;

const MAX_TEXT = 2000;

export const command: Command = {
  name: "announce",
  summary: "publish the gate's NIP-89 announcement (kinds, prices, budgets)",
  usage,
  options: {
    relay: { type: "string", multiple: true },
    name: { type: "string" },
    about: { type: "string" },
    "dry-run": { type: "boolean" },
    json: { type: "boolean" },
  },
  async run(ctx, { values, positionals }) {
    noExtraArgs(positionals, 0, "dvm-gate announce [--relay URL] [--name TEXT] [--about TEXT] [--dry-run] [--json]");
    const relays = (values.relay as string[] | undefined) ?? gateRelays(ctx.cfg);
    for (const u of relays)
      if (!/^wss?:\/\/[^\s/]+/.test(u)) throw new UsageError(`announce: --relay expects a ws:// or wss:// URL, got ${JSON.stringify(u.slice(0, 80))}`);
    // nostr.secretKey, or on the demo defaults the demo's key in the data directory.
    const secretKey = gateSecretKey(ctx.cfg, { createDemoKey: false });
    if (!secretKey)
      throw new UsageError('announce: the gate has no key: set nostr.secretKey in the config (e.g. "env:DVM_GATE_NSEC"; dvm-gate keygen makes one)');
    for (const f of ["name", "about"] as const)
      if (typeof values[f] === "string" && (values[f] as string).length > MAX_TEXT)
        throw new UsageError(`announce: --${f} is longer than ${MAX_TEXT} characters`);
    if (ctx.cfg.jobs.priceMsatsByKind.size === 0) throw new UsageError("announce: no job kinds configured (jobs.kinds)");

    const gatePubkey = getPublicKey(secretKey);
    const template = announcementTemplate(
      {
        gatePubkey,
        kinds: ctx.cfg.jobs.priceMsatsByKind,
        budgetsMsats: ctx.cfg.freeTier.budgetsMsats,
        ...(typeof values.name === "string" ? { name: values.name } : {}),
        ...(typeof values.about === "string" ? { about: values.about } : {}),
      },
      Math.floor(ctx.nowMs() / 1000),
    );
    const event = finalizeEvent(template, secretKey);

    if (values["dry-run"]) {
      printJson(ctx.out, event);
      return 0;
    }
    if (relays.length === 0) throw new UsageError("announce: no relay: pass --relay URL or set nostr.relays in the config");
    const outcomes = await Promise.all(relays.map((url) => publishOnce(url, event)));
    if (values.json) printJson(ctx.out, { event, relays: outcomes });
    else {
      ctx.out(`announcement ${event.id} (kinds ${[...ctx.cfg.jobs.priceMsatsByKind.keys()].join(", ")})`);
      for (const o of outcomes) ctx.out(`  ${o.url}: ${o.ok ? "accepted" : `refused: ${o.message}`}`);
    }
    return outcomes.some((o) => o.ok) ? 0 : 1;
  },
};

async function publishOnce(url: string, event: Parameters<AbstractRelay["publish"]>[0]): Promise<{ url: string; ok: boolean; message: string }> {
  const relay = new AbstractRelay(url, { verifyEvent: () => true, websocketImplementation });
  try {
    await relay.connect({ timeout: 5000 });
    const message = await relay.publish(event);
    return { url, ok: true, message };
  } catch (err) {
    return { url, ok: false, message: String((err as Error)?.message ?? err) || "cannot connect" };
  } finally {
    relay.close();
  }
}
