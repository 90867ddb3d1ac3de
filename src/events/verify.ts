// Event id and signature checks, and signing, for everything the gate reads or writes.
// nostr-tools' wasm backend (libsecp256k1) is several times faster than its pure-JS one,
// so the service switches to it at start; until then, and where wasm cannot load, the
// pure backend answers the same. Both run on fresh plain copies: pure `verifyEvent`
// caches its verdict on the object it is given and `finalizeEvent` mutates its template,
// and neither may leak into objects the caller keeps.
import { createHash } from "node:crypto";
import { schnorrVerify } from "@nostr-relay/common";
import * as pure from "nostr-tools/pure";
import * as wasm from "nostr-tools/wasm";
import type { Event, EventTemplate } from "nostr-tools/pure";
import { HEX64 } from "../util/hex.js";

export type Verifier = "pure" | "wasm";

let wasmReady = false;

/** Loads the wasm verifier once; false (and pure stays in use) when it cannot load. */
export async function initFastVerify(): Promise<boolean> {
  if (wasmReady) return true;
  try {
    const { initNostrWasm } = await import("nostr-wasm");
    wasm.setNostrWasm(await initNostrWasm());
    wasmReady = true;
  } catch {
    wasmReady = false;
  }
  return wasmReady;
}

export function activeVerifier(): Verifier {
  return wasmReady ? "wasm" : "pure";
}

/** CPU time spent inside the verifier and the signer, counted while a meter is set. */
export interface CryptoMeter {
  verifies: number;
  verifyCpuUs: number;
  signs: number;
  signCpuUs: number;
}

let meter: CryptoMeter | null = null;

/**
 * Counts, until called again with null, the process CPU time of every signature check
 * and signing into `m`. For the end-to-end benchmark: it tells the signature work the
 * gate cannot avoid from everything around it. Off (one null check per call) otherwise.
 */
export function meterCrypto(m: CryptoMeter | null): void {
  meter = m;
}

function cpuSinceUs(c0: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(c0);
  return d.user + d.system;
}

const HEX128 = /^[0-9a-f]{128}$/;

/**
 * Why an object is not a NIP-01 event, or null when its shape is right. Checked before
 * any crypto: the wasm backend parses hex leniently and compares only as many id bytes
 * as the given id has, so it must never see a malformed id, pubkey or sig.
 */
export function eventShapeProblem(ev: unknown, opts: { allowAnyTags?: boolean } = {}): string | null {
  if (typeof ev !== "object" || ev === null || Array.isArray(ev)) return "not an object";
  const e = ev as Record<string, unknown>;
  if (typeof e.id !== "string" || !HEX64.test(e.id)) return "id is not 64 lowercase hex";
  if (typeof e.pubkey !== "string" || !HEX64.test(e.pubkey)) return "pubkey is not 64 lowercase hex";
  if (typeof e.sig !== "string" || !HEX128.test(e.sig)) return "sig is not 128 lowercase hex";
  if (typeof e.kind !== "number" || !Number.isInteger(e.kind) || e.kind < 0 || e.kind > 65535) return "kind is not an integer 0–65535";
  if (typeof e.created_at !== "number" || !Number.isSafeInteger(e.created_at) || e.created_at < 0) return "created_at is not a non-negative integer";
  if (typeof e.content !== "string") return "content is not a string";
  if (!Array.isArray(e.tags)) return "tags is not an array";
  if (!opts.allowAnyTags && !e.tags.every(isStringArray)) return "tags are not arrays of strings";
  return null;
}

export function isStringArray(t: unknown): t is string[] {
  return Array.isArray(t) && t.every((v) => typeof v === "string");
}

/** A fresh plain copy holding exactly the NIP-01 fields (tags copied too). */
export function copyEvent(ev: Event): Event {
  return {
    id: ev.id,
    pubkey: ev.pubkey,
    created_at: ev.created_at,
    kind: ev.kind,
    tags: ev.tags.map((t) => [...t]),
    content: ev.content,
    sig: ev.sig,
  };
}

/**
 * The event as a fresh verified copy, or null when its shape, id or signature is wrong.
 * Callers keep the copy, so nothing they hold can differ from what was verified.
 */
export function toVerifiedEvent(ev: unknown): Event | null {
  if (eventShapeProblem(ev) !== null) return null;
  const copy = copyEvent(ev as Event);
  // Verified on a second copy: both backends leave a marker on what they verify, and the
  // event we hand back should be plain data.
  return verifyCopy(wasmReady ? "wasm" : "pure", copyEvent(copy)) ? copy : null;
}

/** Shape + id hash + signature, with the active backend. */
export function verifySignedEvent(ev: unknown): ev is Event {
  return toVerifiedEvent(ev) !== null;
}

/** Same check with a named backend: lets tests and benchmarks compare the two. */
export function verifyEventWith(verifier: Verifier, ev: unknown): boolean {
  if (verifier === "wasm" && !wasmReady) throw new Error("invariant: wasm verifier requested before initFastVerify()");
  if (eventShapeProblem(ev) !== null) return false;
  return verifyCopy(verifier, copyEvent(ev as Event));
}

/**
 * Events longer than this (UTF-16 units of content and tags) are hashed natively, not by
 * either backend. The wasm backend serialises and hashes inside a fixed heap that cannot
 * grow: above roughly 0.5–0.9 MB (depending on what the heap holds) it answers "bad
 * signature" for a valid event, which would hide an oversize request's answer (SPEC §4)
 * behind "forged". 65,536 units are at most 393 KB serialised (6 bytes per escaped
 * character), well inside that; the pure backend's JS hashing is slow at such sizes.
 */
export const LARGE_EVENT_UNITS = 65_536;

function eventUnits(ev: Event): number {
  let n = ev.content.length;
  for (const t of ev.tags) for (const v of t) n += v.length;
  return n;
}

function verifyCopy(verifier: Verifier, copy: Event): boolean {
  const m = meter;
  const c0 = m ? process.cpuUsage() : null;
  try {
    if (eventUnits(copy) > LARGE_EVENT_UNITS) return verifyRawSignature(copy);
    return verifier === "wasm" ? wasm.verifyEvent(copy) : pure.verifyEvent(copy);
  } catch {
    return false;
  } finally {
    if (m && c0) {
      m.verifies++;
      m.verifyCpuUs += cpuSinceUs(c0);
    }
  }
}

/**
 * Checks id and signature over the event exactly as serialised, whatever its tags hold.
 * nostr-tools refuses to hash tags that are not strings, but a customer can still sign
 * such an event; to answer it (and count it as abuse) we must know it is really theirs.
 */
export function verifyRawSignature(ev: unknown): boolean {
  if (eventShapeProblem(ev, { allowAnyTags: true }) !== null) return false;
  const e = ev as Event;
  let serialized: string;
  try {
    serialized = JSON.stringify([0, e.pubkey, e.created_at, e.kind, e.tags, e.content]);
  } catch {
    return false; // cycles or BigInt: cannot have been signed as JSON
  }
  const id = createHash("sha256").update(serialized, "utf8").digest("hex");
  return id === e.id && schnorrVerify(e.sig, id, e.pubkey);
}

/** Signs a fresh copy of the template (the caller's template is never touched). */
export function signEvent(template: EventTemplate, secretKey: Uint8Array): Event {
  const fresh: EventTemplate = {
    kind: template.kind,
    created_at: template.created_at,
    tags: template.tags.map((t) => [...t]),
    content: template.content,
  };
  const m = meter;
  const c0 = m ? process.cpuUsage() : null;
  const signed = wasmReady ? wasm.finalizeEvent(fresh, secretKey) : pure.finalizeEvent(fresh, secretKey);
  if (m && c0) {
    m.signs++;
    m.signCpuUs += cpuSinceUs(c0);
  }
  return copyEvent(signed);
}
