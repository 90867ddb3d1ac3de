import { getPublicKey, generateSecretKey, nip19 } from "nostr-tools";
import { ConfigError, resolveSecret, secretKeyToHex } from "../../config/load.js";
import { signJobRequest } from "../../events/job-request.js";
import { defaultStop, runRequest, RelayConnectError, type JobReply } from "../../peers/customer.js";
import { UsageError } from "../context.js";
import { gateRelays, gateSecretKey } from "../demo.js";
import type { Command } from "../main.js";
import { noExtraArgs, plural, pubkeyArg, satsArg, wholeNumberArg } from "../format.js";

const usage = `Usage: dvm-gate request [--relay URL]… [--gate NPUB|HEX] [--kind N] [--input TEXT]…
                        [--param K=V]… [--bid SATS] [--encrypt nip04|nip44] [--key NSEC|HEX]
                        [--wait SEC] [--until-status LIST] [--json]

Acts as a customer (NIP-90): signs a job request addressed to the gate, publishes it,
and prints the gate's feedback and the worker's result as they arrive.

  --relay URL          relay to publish to and listen on (repeatable; default nostr.relays,
                       or the demo relay ws://127.0.0.1:7777 when there is no config file)
  --gate NPUB|HEX      the gate's pubkey (default: the pubkey of the config's nostr.secretKey,
                       or of the demo's key in the data directory)
  --kind N             job kind 5000–5999 (default 5050)
  --input TEXT         an ["i", TEXT, "text"] input (repeatable)
  --param K=V          a ["param", K, V] tag (repeatable)
  --bid SATS           the most you will pay, whole sats (sent as msats)
  --encrypt SCHEME     encrypt inputs and params to the gate: nip04 or nip44
  --key KEY            the customer's key: an nsec or hex, or env:VAR / file:PATH holding one
                       (default: a fresh throwaway key, printed as npub)
  --wait SEC           stop waiting after SEC seconds (default 30, at most 3600)
  --until-status LIST  stop at the first reply whose status is in LIST (comma-separated:
                       payment-required, processing, partial, success, error, result);
                       default: a result, or an error or success status
  --json               one JSON object per line: the request, then each reply

A bolt11 invoice is printed on its own line, ready for \`dvm-gate dev-pay\`.
Exit 0 when the stop condition was reached, 1 when the wait ran out or no relay
accepted the request, 2 on bad input.`;

const STATUSES = new Set(["payment-required", "processing", "partial", "success", "error", "result"]);
const MAX_WAIT_SEC = 3600;

function stringList(v: unknown): string[] {
  return Array.isArray(v) ? (v as string[]) : typeof v === "string" ? [v] : [];
}

function relayUrl(u: string): string {
  if (!/^wss?:\/\/[^\s/]+/.test(u)) throw new UsageError(`request: --relay expects a ws:// or wss:// URL, got ${JSON.stringify(u.slice(0, 80))}`);
  return u;
}

function intArg(v: unknown, name: string, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt;
  return wholeNumberArg(String(v), `request: --${name}`, min, max);
}

function replyJson(r: JobReply): Record<string, unknown> {
  return {
    type: r.type,
    status: r.status,
    statusInfo: r.statusInfo,
    amountMsats: r.amountMsats,
    bolt11: r.bolt11,
    freeTier: r.freeTier,
    balanceMsats: r.balanceMsats,
    id: r.id,
    pubkey: r.pubkey,
    kind: r.kind,
    createdAt: r.createdAt,
    encrypted: r.encrypted,
    ...(r.undecryptable ? { undecryptable: true } : {}),
    content: r.content,
  };
}

function replyText(r: JobReply): string {
  if (r.type === "result") return `result (kind ${r.kind}, ${r.id.slice(0, 12)}…):\n${r.content}`;
  const lines = [`${r.status}${r.statusInfo ? `: ${r.statusInfo}` : ""}`];
  if (r.freeTier) lines.push(`  free tier: ${r.freeTier.label}, ${r.freeTier.absorbedMsats} msats from the pool, ${r.freeTier.chargeMsats} msats to pay`);
  if (r.amountMsats !== null) lines.push(`  amount: ${r.amountMsats} msats`);
  if (r.balanceMsats !== null) lines.push(`  paid from your prepaid balance: ${r.balanceMsats} msats left`);
  if (r.bolt11) lines.push("  invoice:", r.bolt11);
  if (r.undecryptable) lines.push("  (encrypted reply that this key cannot decrypt)");
  else if (r.content && r.encrypted) lines.push(`  ${r.content}`);
  return lines.join("\n");
}

export const command: Command = {
  name: "request",
  summary: "act as a customer: publish a job request, print the replies",
  usage,
  options: {
    relay: { type: "string", multiple: true },
    gate: { type: "string" },
    kind: { type: "string" },
    input: { type: "string", multiple: true },
    param: { type: "string", multiple: true },
    bid: { type: "string" },
    encrypt: { type: "string" },
    key: { type: "string" },
    wait: { type: "string" },
    "until-status": { type: "string" },
    json: { type: "boolean" },
  },
  async run(ctx, { values, positionals }) {
    noExtraArgs(positionals, 0, "dvm-gate request [options] (see --help)");
    const relays = stringList(values.relay).map(relayUrl);
    // On the demo defaults (no config file) the demo's relay and key are the natural target.
    const relayUrls = relays.length > 0 ? relays : gateRelays(ctx.cfg);
    if (relayUrls.length === 0) throw new UsageError("request: no relay: pass --relay URL or set nostr.relays in the config");

    let gatePubkey: string;
    if (typeof values.gate === "string") {
      gatePubkey = pubkeyArg(values.gate, "request: --gate");
    } else {
      const sk = gateSecretKey(ctx.cfg, { createDemoKey: false });
      if (!sk) throw new UsageError("request: no gate: pass --gate NPUB (or set nostr.secretKey in the config to use the gate's own key)");
      gatePubkey = getPublicKey(sk);
    }

    const kind = intArg(values.kind, "kind", 5000, 5999, 5050);
    const params = stringList(values.param).map((p): [string, string] => {
      const at = p.indexOf("=");
      if (at <= 0) throw new UsageError(`request: --param expects K=V, got ${JSON.stringify(p.slice(0, 80))}`);
      return [p.slice(0, at), p.slice(at + 1)];
    });
    const inputs = stringList(values.input);
    const bidMsats = typeof values.bid === "string" ? satsArg(values.bid, "request: --bid") : undefined;
    const encrypt = values.encrypt;
    if (encrypt !== undefined && encrypt !== "nip04" && encrypt !== "nip44")
      throw new UsageError(`request: --encrypt expects nip04 or nip44, got ${JSON.stringify(String(encrypt).slice(0, 40))}`);
    const waitSec = intArg(values.wait, "wait", 1, MAX_WAIT_SEC, 30);
    let stopWhen = defaultStop;
    let stopText = "a result, error or success";
    if (typeof values["until-status"] === "string") {
      const wanted = values["until-status"]
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean);
      const bad = wanted.find((s) => !STATUSES.has(s));
      if (wanted.length === 0 || bad !== undefined)
        throw new UsageError(
          `request: --until-status expects a comma-separated list of ${[...STATUSES].join(", ")}${bad ? `, got ${JSON.stringify(bad.slice(0, 40))}` : ""}`,
        );
      const set = new Set(wanted);
      stopWhen = (r) => set.has(r.status);
      stopText = wanted.join(" or ");
    }

    let secretKey: Uint8Array;
    let throwaway = false;
    if (typeof values.key === "string") {
      // Like the config's secrets: "env:VAR" or "file:PATH" keeps the key off the command line.
      let text: string;
      try {
        text = resolveSecret("request: --key", values.key, ctx.env, process.cwd());
      } catch (err) {
        throw new UsageError(err instanceof ConfigError ? err.message : "request: --key could not be read");
      }
      try {
        secretKey = Buffer.from(secretKeyToHex(text), "hex");
      } catch {
        throw new UsageError("request: --key expects an nsec or 64 hex characters, or env:VAR / file:PATH holding one (value not shown)");
      }
    } else {
      secretKey = generateSecretKey();
      throwaway = true;
    }
    const customer = getPublicKey(secretKey);

    const request = signJobRequest(
      {
        kind,
        gatePubkey,
        inputs: inputs.map((text) => ["i", text, "text"]),
        params: params.map(([k, v]) => ["param", k, v]),
        relays: relayUrls,
        createdAtSec: Math.floor(ctx.nowMs() / 1000),
        ...(bidMsats !== undefined ? { bidMsats } : {}),
        ...(encrypt ? { encryption: encrypt } : {}),
      },
      secretKey,
    );

    const json = values.json === true;
    let session;
    try {
      session = await runRequest({
        relayUrls,
        request,
        secretKey,
        waitMs: waitSec * 1000,
        stopWhen,
        onPublished: (outcomes) => {
          const ok = outcomes.filter((o) => o.ok);
          for (const o of outcomes) if (!o.ok) ctx.err(`dvm-gate: ${o.url} refused the request: ${o.message || "no reason given"}`);
          if (ok.length === 0) return;
          if (json)
            ctx.out(
              JSON.stringify({
                type: "request",
                id: request.id,
                kind,
                customer,
                customerNpub: nip19.npubEncode(customer),
                gate: gatePubkey,
                relays: ok.map((o) => o.url),
                throwawayKey: throwaway,
              }),
            );
          else
            ctx.out(
              [
                `request ${request.id}`,
                `  kind ${kind} to gate ${nip19.npubEncode(gatePubkey)}, published to ${ok.length} of ${outcomes.length} relays`,
                `  customer ${nip19.npubEncode(customer)}${throwaway ? " (a throwaway key made for this request)" : ""}`,
                `waiting up to ${waitSec} s for ${stopText}…`,
              ].join("\n"),
            );
        },
        onReply: (r) => ctx.out(json ? JSON.stringify(replyJson(r)) : replyText(r)),
      });
    } catch (err) {
      if (err instanceof RelayConnectError) {
        ctx.err(`dvm-gate: ${err.message}`);
        return 1;
      }
      throw err;
    }
    if (!session.published.some((p) => p.ok)) return 1;
    if (!session.stopped) {
      ctx.err(`dvm-gate: waited ${waitSec} s without ${stopText} (${plural(session.replies.length, "reply", "replies")})`);
      return 1;
    }
    return 0;
  },
};
