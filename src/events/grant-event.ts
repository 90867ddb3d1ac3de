// The grant event of SPEC §4: a NIP-32 label (kind 1985) published for every posted
// reservation that absorbed msats, hash-chained by `seq` and `prev`, carrying the
// pool totals after the grant so anyone can audit the pool from these events alone.
import { Label } from "nostr-tools/kinds";
import type { Event, EventTemplate } from "nostr-tools/pure";
import type { Totals } from "../policy/pool.js";
import type { Tier } from "../policy/tiers.js";
import { HEX64 } from "../util/hex.js";
import { parseWireMsats } from "../util/money.js";
import { signEvent } from "./verify.js";

export const GRANT_KIND = Label;
export const GRANT_NAMESPACE = "dvm-gate/grant";

/** What a grant event states; the ledger fills it inside the posting transaction. */
export interface GrantFields {
  seq: number;
  prevEventId: string | null;
  requestId: string;
  pubkey: string;
  kind: number;
  label: "free" | "partial";
  tier: Tier;
  absorbedMsats: number;
  chargedMsats: number;
  totals: Totals;
  /** When the grant was posted: the event's created_at. */
  createdAtMs: number;
  /** When the reservation was decided: the start of what the 24 h budget window counts. */
  decidedAtMs: number;
}

/** Signs the grant event inside the posting transaction (CPU only, no I/O). */
export type GrantSigner = (g: GrantFields) => { id: string; json: string };

export function grantTemplate(g: GrantFields): EventTemplate {
  const t = g.totals;
  const tags: string[][] = [
    ["L", GRANT_NAMESPACE],
    ["l", g.label, GRANT_NAMESPACE],
    ["e", g.requestId],
    ["p", g.pubkey],
    ["k", String(g.kind)],
    ["absorbed", String(g.absorbedMsats)],
    ["charged", String(g.chargedMsats)],
    ["tier", g.tier],
    ["decided", String(Math.floor(g.decidedAtMs / 1000))],
    ["seq", String(g.seq)],
  ];
  if (g.seq > 1) {
    if (!g.prevEventId) throw new Error(`invariant: grant seq ${g.seq} has no previous event id`);
    tags.push(["prev", g.prevEventId]);
  }
  tags.push(["totals", String(t.initialMsats), String(t.creditedMsats), String(t.absorbedMsats), String(t.pendingMsats), String(t.poolMsats)]);
  return {
    kind: GRANT_KIND,
    created_at: Math.floor(g.createdAtMs / 1000),
    tags,
    content: `dvm-gate grant #${g.seq}: ${g.absorbedMsats} msats absorbed for a kind ${g.kind} job`,
  };
}

/** A GrantSigner for the ledger: signs inside the posting transaction (CPU only). */
export function grantSigner(secretKey: Uint8Array): GrantSigner {
  return (g) => {
    // The wasm signer when it is loaded: the pure-JS one cost ~3 ms a grant, more than the rest of a job.
    const ev = signEvent(grantTemplate(g), secretKey);
    return { id: ev.id, json: JSON.stringify(ev) };
  };
}

export interface ParsedGrant {
  event: Event;
  label: "free" | "partial";
  requestId: string;
  pubkey: string;
  kind: number;
  absorbedMsats: number;
  chargedMsats: number;
  tier: string;
  /** Unix s of the decision; null on grants from gates older than the `decided` tag. */
  decidedSec: number | null;
  seq: number;
  prevEventId: string | null;
  totals: Totals;
}

/** Seconds, seq numbers and kinds: digits, and few enough of them to stay exact. */
const UNIX_SEC = /^\d{1,12}$/;

/** Reads a grant event's tags; returns a reason string when it is not a well-formed grant. */
export function parseGrantEvent(ev: Event): ParsedGrant | string {
  if (ev.kind !== GRANT_KIND) return `kind ${ev.kind} is not ${GRANT_KIND}`;
  const tag = (name: string) => ev.tags.find((t) => t[0] === name);
  const num = (v: string | undefined) => (v !== undefined && UNIX_SEC.test(v) ? Number(v) : null);
  if (tag("L")?.[1] !== GRANT_NAMESPACE) return "missing L tag";
  const l = ev.tags.find((t) => t[0] === "l" && t[2] === GRANT_NAMESPACE)?.[1];
  if (l !== "free" && l !== "partial") return "missing or unknown l label";
  const requestId = tag("e")?.[1];
  const pubkey = tag("p")?.[1];
  if (!requestId || !HEX64.test(requestId)) return "bad e tag";
  if (!pubkey || !HEX64.test(pubkey)) return "bad p tag";
  const kind = num(tag("k")?.[1]);
  const absorbed = parseWireMsats(tag("absorbed")?.[1]);
  const charged = parseWireMsats(tag("charged")?.[1]);
  const seq = num(tag("seq")?.[1]);
  const tier = tag("tier")?.[1];
  const totals = tag("totals");
  if (kind === null || absorbed === null || charged === null || seq === null || seq < 1 || !tier) return "missing k, absorbed, charged, seq or tier";
  const tv = totals?.slice(1, 6).map((v) => parseWireMsats(v)) ?? [];
  if (tv.length !== 5 || tv.some((v) => v === null)) return "bad totals tag";
  const decidedText = tag("decided")?.[1];
  if (decidedText !== undefined && !UNIX_SEC.test(decidedText)) return "bad decided tag";
  const decidedSec = decidedText === undefined ? null : Number(decidedText);
  if (decidedSec !== null && decidedSec > ev.created_at) return "decided after the grant was posted";
  const prev = tag("prev")?.[1] ?? null;
  if (seq > 1 && (!prev || !HEX64.test(prev))) return `seq ${seq} without a prev tag`;
  return {
    event: ev,
    label: l,
    requestId,
    pubkey,
    kind,
    absorbedMsats: absorbed,
    chargedMsats: charged,
    tier,
    decidedSec,
    seq,
    prevEventId: prev,
    totals: { initialMsats: tv[0]!, creditedMsats: tv[1]!, absorbedMsats: tv[2]!, pendingMsats: tv[3]!, poolMsats: tv[4]! },
  };
}
