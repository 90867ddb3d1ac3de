// Throwaway keys and signing helpers shared by the nostr event tests. Events are really
// signed; `signAny` signs events whose tags nostr-tools refuses to hash (numbers, null,
// nested arrays) with an independent schnorr implementation, as a hostile client would.
import { createHash } from "node:crypto";
import { schnorrSign } from "@nostr-relay/common";
import { finalizeEvent, generateSecretKey, getPublicKey, type Event, type EventTemplate } from "nostr-tools/pure";
import type { JobRequestContext } from "../../src/events/job-request.js";

export const NOW_SEC = 1_750_000_000;
export const PRICE_MSATS = 10_000;

export interface Keys {
  sk: Uint8Array;
  pk: string;
}

export function keys(): Keys {
  const sk = generateSecretKey();
  return { sk, pk: getPublicKey(sk) };
}

export function context(gate: Keys, over: Partial<JobRequestContext> = {}): JobRequestContext {
  return {
    gatePubkey: gate.pk,
    priceMsatsByKind: new Map([
      [5050, PRICE_MSATS],
      [5100, 50_000],
    ]),
    maxRequestBytes: 8_192,
    maxRequestAgeSec: 900,
    nowSec: NOW_SEC,
    gateSecretKey: gate.sk,
    ...over,
  };
}

/** A fresh template each time: finalizeEvent mutates what it is given. */
export function sign(t: EventTemplate, k: Keys): Event {
  const e = finalizeEvent({ ...t, tags: t.tags.map((x) => [...x]) }, k.sk);
  return { id: e.id, pubkey: e.pubkey, created_at: e.created_at, kind: e.kind, tags: e.tags, content: e.content, sig: e.sig };
}

/** Signs an event with arbitrary JSON in its tags (what nostr-tools will not do). */
export function signAny(t: { kind: number; created_at: number; tags: unknown; content: string }, k: Keys): Record<string, unknown> {
  const serialized = JSON.stringify([0, k.pk, t.created_at, t.kind, t.tags, t.content]);
  const id = createHash("sha256").update(serialized, "utf8").digest("hex");
  return { id, pubkey: k.pk, created_at: t.created_at, kind: t.kind, tags: t.tags, content: t.content, sig: schnorrSign(id, k.sk) };
}

export function requestTemplate(gate: Keys, over: Partial<EventTemplate> = {}): EventTemplate {
  return {
    kind: 5050,
    created_at: NOW_SEC - 5,
    tags: [
      ["i", "What is the capital of France?", "text"],
      ["param", "model", "LLaMA-2"],
      ["output", "text/plain"],
      ["bid", "20000"],
      ["relays", "wss://relay.example.com"],
      ["p", gate.pk],
    ],
    content: "",
    ...over,
  };
}

/** Flips one hex digit, keeping the string well formed. */
export function flipHex(hex: string, at = 10): string {
  const c = hex[at] === "0" ? "1" : "0";
  return hex.slice(0, at) + c + hex.slice(at + 1);
}
