// The grant event of SPEC §4: a NIP-32 label (kind 1985) published for every posted
// reservation that absorbed msats, hash-chained by `seq` and `prev`, carrying the
// pool totals after the grant so anyone can audit the pool from these events alone.
import type { Event, EventTemplate } from "nostr-tools/pure";
import { signEvent } from "./verify.js";
import type { GrantRecord, GrantSigner, Totals } from "../ledger/ledger.js";

export const GRANT_KIND = 1985;
export const GRANT_NAMESPACE = "dvm-gate/grant";

export type GrantFields = Omit<GrantRecord, "eventId" | "eventJson">;

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
  seq: number;
  prevEventId: string | null;
  totals: Totals;
}

const DIGITS = /^\d{1,16}$/;

/** Reads a grant event's tags; returns a reason string when it is not a well-formed grant. */
export function parseGrantEvent(ev: Event): ParsedGrant | string {
  if (ev.kind !== GRANT_KIND) return `kind ${ev.kind} is not ${GRANT_KIND}`;
  const tag = (name: string) => ev.tags.find((t) => t[0] === name);
  const num = (v: string | undefined) => (v !== undefined && DIGITS.test(v) ? Number(v) : null);
  if (tag("L")?.[1] !== GRANT_NAMESPACE) return "missing L tag";
  const l = ev.tags.find((t) => t[0] === "l" && t[2] === GRANT_NAMESPACE)?.[1];
  if (l !== "free" && l !== "partial") return "missing or unknown l label";
  const requestId = tag("e")?.[1];
  const pubkey = tag("p")?.[1];
  if (!requestId || !/^[0-9a-f]{64}$/.test(requestId)) return "bad e tag";
  if (!pubkey || !/^[0-9a-f]{64}$/.test(pubkey)) return "bad p tag";
  const kind = num(tag("k")?.[1]);
  const absorbed = num(tag("absorbed")?.[1]);
  const charged = num(tag("charged")?.[1]);
  const seq = num(tag("seq")?.[1]);
  const tier = tag("tier")?.[1];
  const totals = tag("totals");
  if (kind === null || absorbed === null || charged === null || seq === null || seq < 1 || !tier) return "missing k, absorbed, charged, seq or tier";
  const tv = totals?.slice(1, 6).map((v) => num(v)) ?? [];
  if (tv.length !== 5 || tv.some((v) => v === null)) return "bad totals tag";
  const prev = tag("prev")?.[1] ?? null;
  if (seq > 1 && (!prev || !/^[0-9a-f]{64}$/.test(prev))) return `seq ${seq} without a prev tag`;
  return {
    event: ev,
    label: l,
    requestId,
    pubkey,
    kind,
    absorbedMsats: absorbed,
    chargedMsats: charged,
    tier,
    seq,
    prevEventId: prev,
    totals: { initialMsats: tv[0]!, creditedMsats: tv[1]!, absorbedMsats: tv[2]!, pendingMsats: tv[3]!, poolMsats: tv[4]! },
  };
}
