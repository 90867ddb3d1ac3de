// Event id and signature checks, and signing, for everything the gate reads or writes.
// nostr-tools' wasm backend (libsecp256k1) is several times faster than its pure-JS one,
// so the service switches to it at start; until then, and where wasm cannot load, the
// pure backend answers the same. Both run on fresh plain copies: pure `verifyEvent`
// caches its verdict on the object it is given and `finalizeEvent` mutates its template,
// and neither may leak into objects the caller keeps.
import { createHash, randomFillSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { schnorrVerify } from "@nostr-relay/common";
import * as pure from "nostr-tools/pure";
import * as wasm from "nostr-tools/wasm";
import type { Event, EventTemplate } from "nostr-tools/pure";

export type Verifier = "pure" | "wasm";

let wasmReady = false;

/** Loads the wasm verifier once; false (and pure stays in use) when it cannot load. */
export async function initFastVerify(): Promise<boolean> {
  if (wasmReady) return true;
  try {
    const { initNostrWasm } = await import("nostr-wasm");
    wasm.setNostrWasm(await initNostrWasm());
    wasmReady = true;
    fast = await loadDirectSecp().catch(() => null);
  } catch {
    wasmReady = false;
  }
  return wasmReady;
}

export function activeVerifier(): Verifier {
  return wasmReady ? "wasm" : "pure";
}

const HEX64 = /^[0-9a-f]{64}$/;
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
  if (fast) return fast.verify(copy) ? copy : null;
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

function verifyCopy(verifier: Verifier, copy: Event): boolean {
  try {
    return verifier === "wasm" ? wasm.verifyEvent(copy) : pure.verifyEvent(copy);
  } catch {
    return false;
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
  if (fast) return fast.sign(fresh, secretKey);
  const signed = wasmReady ? wasm.finalizeEvent(fresh, secretKey) : pure.finalizeEvent(fresh, secretKey);
  return copyEvent(signed);
}

// ---- the same libsecp256k1 wasm, called directly -----------------------------------
// nostr-wasm's wrapper derives the keypair from the secret key on every signature (a
// second elliptic-curve multiplication, ~40% of a sign) and converts hex byte by byte
// with parseInt; together that was a fifth of the gate's CPU per request. This instance
// of the same binary keeps the gate's keypair and hashes with node's sha256. It is only
// used after a self-test against nostr-tools, and the service falls back to nostr-tools
// when anything about it does not load.

interface DirectSecp {
  sign(t: EventTemplate, secretKey: Uint8Array): Event;
  verify(ev: Event): boolean;
}

let fast: DirectSecp | null = null;

function eventHash(pubkey: string, t: EventTemplate): Buffer {
  return createHash("sha256").update(JSON.stringify([0, pubkey, t.created_at, t.kind, t.tags, t.content]), "utf8").digest();
}

async function loadDirectSecp(): Promise<DirectSecp | null> {
  const main = readFileSync(createRequire(import.meta.url).resolve("nostr-wasm"), "utf8");
  const b64 = /const sb64_data = "([A-Za-z0-9+/=]+)"/.exec(main)?.[1];
  if (!b64) return null;
  let heap = new Uint8Array(0);
  const fail = () => {
    throw new Error("secp256k1 wasm aborted");
  };
  const imports = {
    a: {
      a: fail,
      f: (dst: number, src: number, n: number) => heap.copyWithin(dst, src, src + n),
      d: fail,
      e: () => 52,
      c: () => 70,
      // The library only writes on illegal arguments; report everything as written.
      b: (_fd: number, iov: number, n: number, written: number) => {
        const u32 = new Uint32Array(heap.buffer);
        let total = 0;
        for (let i = 0; i < n; i++) total += u32[(iov + 8 * i + 4) >> 2]!;
        u32[written >> 2] = total;
        return 0;
      },
    },
  };
  // The tsconfig has no DOM/WebAssembly typings; this is the part of the API used here.
  const wa = (globalThis as unknown as { WebAssembly: { instantiate(b: Uint8Array, i: object): Promise<{ instance: { exports: Record<string, unknown> } }> } })
    .WebAssembly;
  const x = (await wa.instantiate(Buffer.from(b64, "base64"), imports)).instance.exports;
  const fn = (k: string) => {
    if (typeof x[k] !== "function") throw new Error(`secp256k1 wasm: export ${k} missing`);
    return x[k] as (...a: number[]) => number;
  };
  const [malloc, free, ctxCreate, pubParse, pubSerialize, keypairCreate, keypairPub, sign32, verifySig] = ["i", "j", "o", "p", "q", "r", "s", "t", "u"].map(fn) as [
    (n: number) => number,
    (p: number) => void,
    (flags: number) => number,
    (ctx: number, out: number, in32: number) => number,
    (ctx: number, out32: number, pub: number) => number,
    (ctx: number, kp: number, sk: number) => number,
    (ctx: number, pub: number, parity: number, kp: number) => number,
    (ctx: number, sig: number, msg: number, kp: number, aux: number) => number,
    (ctx: number, sig: number, msg: number, len: number, pub: number) => number,
  ];
  heap = new Uint8Array((x.g as { buffer: ArrayBuffer }).buffer);
  fn("h")();
  const ctx = ctxCreate(513 | 257);
  const pSk = malloc(32);
  const pAux = malloc(32);
  const pMsg = malloc(32);
  const pPub32 = malloc(32);
  const pSig = malloc(64);
  const pXonly = malloc(64);
  const keypairs = new Map<string, { kp: number; pubkey: string }>();

  const keypair = (sk: Uint8Array) => {
    const key = Buffer.from(sk.buffer, sk.byteOffset, sk.byteLength).toString("hex");
    let k = keypairs.get(key);
    if (k) return k;
    // The gate signs with one key; anything else (tests, tools) may use many: keep a few.
    if (keypairs.size >= 16) {
      const [oldKey, old] = keypairs.entries().next().value!;
      heap.fill(0, old.kp, old.kp + 96);
      free(old.kp);
      keypairs.delete(oldKey);
    }
    const kp = malloc(96);
    heap.set(sk, pSk);
    const ok = keypairCreate(ctx, kp, pSk) === 1 && keypairPub(ctx, pXonly, 0, kp) === 1;
    heap.fill(0, pSk, pSk + 32);
    if (!ok) {
      free(kp);
      throw new Error("invalid secret key");
    }
    pubSerialize(ctx, pPub32, pXonly);
    k = { kp, pubkey: Buffer.from(heap.subarray(pPub32, pPub32 + 32)).toString("hex") };
    keypairs.set(key, k);
    return k;
  };

  const direct: DirectSecp = {
    sign(t, sk) {
      const { kp, pubkey } = keypair(sk);
      const hash = eventHash(pubkey, t);
      heap.set(hash, pMsg);
      randomFillSync(heap, pAux, 32);
      if (sign32(ctx, pSig, pMsg, kp, pAux) !== 1) throw new Error("failed to sign");
      const sig = Buffer.from(heap.subarray(pSig, pSig + 64)).toString("hex");
      return { kind: t.kind, created_at: t.created_at, tags: t.tags, content: t.content, pubkey, id: hash.toString("hex"), sig };
    },
    verify(ev) {
      const hash = eventHash(ev.pubkey, ev);
      // Callers checked the shape: id, pubkey and sig are lowercase hex of the right length.
      if (hash.toString("hex") !== ev.id) return false;
      heap.set(hash, pMsg);
      heap.set(Buffer.from(ev.sig, "hex"), pSig);
      heap.set(Buffer.from(ev.pubkey, "hex"), pPub32);
      return pubParse(ctx, pXonly, pPub32) === 1 && verifySig(ctx, pSig, pMsg, 32, pXonly) === 1;
    },
  };

  // Known answers against nostr-tools before anything relies on it.
  const sk = pure.generateSecretKey();
  const tpl = (i: number): EventTemplate => ({ kind: 7000, created_at: 1_700_000_000 + i, tags: [["e", "ab".repeat(32)], ["status", "processing", "é ✓"]], content: `self-test ${i} "q" \\ \n` });
  const mine = direct.sign(tpl(1), sk);
  const theirs = wasm.finalizeEvent(tpl(2), sk);
  const tampered = { ...theirs, content: theirs.content + "x" };
  const badSig = { ...mine, sig: mine.sig.slice(0, 127) + (mine.sig.endsWith("0") ? "1" : "0") };
  const ok =
    mine.pubkey === pure.getPublicKey(sk) &&
    pure.verifyEvent(copyEvent(mine)) &&
    direct.verify(copyEvent(theirs)) &&
    !direct.verify(tampered) &&
    !direct.verify(badSig);
  for (const k of keypairs.values()) {
    heap.fill(0, k.kp, k.kp + 96);
    free(k.kp);
  }
  keypairs.clear();
  return ok ? direct : null;
}
