// Reading an incoming NIP-90 job request (SPEC §4): one pure function that returns a
// verdict. Anything that cannot be shown to be a genuine, current request for this gate
// is ignored silently (answering forged or foreign events would let anyone make the gate
// talk, or blame a customer for what they never signed). A genuine request for the gate
// that is wrong gets an `error` answer, and `abuse` says whether it should cost trust.
//
// Cheap checks (kind, addressing, time window) run before the signature, the costly one;
// the signature runs before anything that leads to an answer or a decryption.
import type { Event, EventTemplate } from "nostr-tools/pure";
import { decryptFrom, detectScheme, encryptFor, type EncryptionScheme } from "./encryption.js";
import { finalizeEvent } from "nostr-tools/pure";
import { eventShapeProblem, isStringArray, toVerifiedEvent, verifyRawSignature } from "./verify.js";
import { expirationSec, readJobTags } from "./nip90-tags.js";

export { I_TAG_TYPES, isRelayUrl, MAX_REPLY_RELAYS } from "./nip90-tags.js";

export const JOB_REQUEST_KIND_MIN = 5000;
export const JOB_REQUEST_KIND_MAX = 5999;
/** SPEC §4: a request may be at most this far ahead of our clock. */
export const MAX_FUTURE_SKEW_SEC = 60;
/** Only these tags are taken from decrypted content (NIP-90 encrypts `i` and `param`). */
const TAGS_FROM_ENCRYPTED: ReadonlySet<string> = new Set(["i", "param", "output", "bid"]);

export interface JobRequestContext {
  gatePubkey: string;
  priceMsatsByKind: ReadonlyMap<number, number>;
  maxRequestBytes: number;
  maxRequestAgeSec: number;
  nowSec: number;
  /** For decrypting encrypted params. */
  gateSecretKey: Uint8Array;
  /** A price that depends on the job itself (SPEC §11 token pricing); null = the kind's price. */
  priceOf?: (kind: number, iTags: string[][], params: string[][]) => number | null;
}

export interface JobRequest {
  event: Event;
  id: string;
  customer: string;
  kind: number;
  priceMsats: number;
  bidMsats: number | null;
  inputs: string[][];
  params: string[][];
  output: string | null;
  replyRelays: string[];
  encryption: "none" | "nip04" | "nip44";
}

export type JobRequestVerdict =
  | { ok: true; request: JobRequest }
  | { ok: false; answer: "ignore"; reason: string }
  | {
      ok: false;
      answer: "error";
      reason: string;
      abuse: boolean;
      customer: string;
      event: Event;
      /** The scheme the error reply must use: an encrypted request's answer is encrypted too. */
      encryption: "none" | "nip04" | "nip44";
    };

type Ignore = Extract<JobRequestVerdict, { answer: "ignore" }>;
type Problem = { reason: string; malformed: boolean };

export function checkJobRequest(ev: unknown, ctx: JobRequestContext): JobRequestVerdict {
  const shape = eventShapeProblem(ev, { allowAnyTags: true });
  if (shape !== null) return ignore(`invalid: ${shape}`);
  const raw = ev as Event;
  const early = checkBeforeSignature(raw, ctx);
  if (early) return early;

  const tagsAreStrings = raw.tags.every(isStringArray);
  // Events with non-string tags are outside what nostr-tools can hash; check them raw so
  // a signed but garbled request still reaches its (abuse-counting) answer.
  const event = tagsAreStrings ? toVerifiedEvent(raw) : verifyRawSignature(raw) ? plainCopy(raw) : null;
  if (event === null) return ignore("invalid: bad id or signature");

  const addressed = pTagValues(event.tags).includes(ctx.gatePubkey);
  // The conversation key depends only on the two keys, so even an undecryptable request
  // can be answered in its own scheme.
  const encryption = event.tags.some((t) => isStringArray(t) && t[0] === "encrypted") ? (detectScheme(event.content) ?? "none") : "none";
  const fail = (p: Problem): JobRequestVerdict => ({
    ok: false,
    answer: "error",
    reason: p.reason,
    // An open request (no p tag) was not sent to us in particular: answer, never penalise.
    abuse: p.malformed && addressed,
    customer: event.pubkey,
    event,
    encryption,
  });

  if (Buffer.byteLength(JSON.stringify(event), "utf8") > ctx.maxRequestBytes) {
    return fail({ reason: "invalid: request too large", malformed: false });
  }
  if (!tagsAreStrings) return fail({ reason: "invalid: tags must be arrays of strings", malformed: true });

  const expiration = event.tags.find((t) => t[0] === "expiration");
  if (expiration && expirationSec(expiration) === null) return fail({ reason: "invalid: expiration tag is not a unix time", malformed: true });

  const opened = openEncrypted(event, ctx, addressed);
  if ("reason" in opened) return fail(opened);

  const parsed = readJobTags([...event.tags, ...opened.hiddenTags]);
  if ("problem" in parsed) return fail({ reason: parsed.problem, malformed: true });

  const priceMsats = ctx.priceOf?.(event.kind, parsed.inputs, parsed.params) ?? ctx.priceMsatsByKind.get(event.kind)!;
  if (parsed.bidMsats !== null && parsed.bidMsats < priceMsats) {
    return fail({ reason: `bid below price: ${priceMsats} msats`, malformed: false });
  }
  return {
    ok: true,
    request: {
      event,
      id: event.id,
      customer: event.pubkey,
      kind: event.kind,
      priceMsats,
      bidMsats: parsed.bidMsats,
      inputs: parsed.inputs,
      params: parsed.params,
      output: parsed.output,
      replyRelays: parsed.replyRelays,
      encryption: opened.encryption,
    },
  };
}

function checkBeforeSignature(ev: Event, ctx: JobRequestContext): Ignore | null {
  if (ev.kind < JOB_REQUEST_KIND_MIN || ev.kind > JOB_REQUEST_KIND_MAX) return ignore(`kind ${ev.kind} is not a job request`);
  if (!ctx.priceMsatsByKind.has(ev.kind)) return ignore(`kind ${ev.kind} is not served here`);
  const providers = pTagValues(ev.tags);
  if (providers.length > 0 && !providers.includes(ctx.gatePubkey)) return ignore("addressed to another provider");
  if (ev.created_at > ctx.nowSec + MAX_FUTURE_SKEW_SEC) return ignore("created_at is too far in the future");
  if (ev.created_at < ctx.nowSec - ctx.maxRequestAgeSec) return ignore("created_at is too old");
  const expiration = firstTag(ev.tags, "expiration");
  const expiresAtSec = expiration?.every((v) => typeof v === "string") ? expirationSec(expiration as string[]) : null;
  if (expiresAtSec !== null && expiresAtSec <= ctx.nowSec) return ignore("expired (NIP-40)");
  return null;
}

/** p tag values, read leniently: garbage tags are judged after the signature check. */
function pTagValues(tags: unknown[]): string[] {
  const out: string[] = [];
  for (const t of tags) if (Array.isArray(t) && t[0] === "p" && typeof t[1] === "string") out.push(t[1]);
  return out;
}

function firstTag(tags: unknown[], name: string): unknown[] | undefined {
  return tags.find((t): t is unknown[] => Array.isArray(t) && t[0] === name);
}

function openEncrypted(event: Event, ctx: JobRequestContext, addressed: boolean): { encryption: "none" | EncryptionScheme; hiddenTags: string[][] } | Problem {
  if (!event.tags.some((t) => t[0] === "encrypted")) return { encryption: "none", hiddenTags: [] };
  // NIP-90 encrypts to the provider named in the p tag: without it there is no recipient.
  if (!addressed) return { reason: "invalid: encrypted request without a p tag for this provider", malformed: true };
  const opened = decryptFrom(event.content, ctx.gateSecretKey, event.pubkey);
  if (opened === null) return { reason: "invalid: cannot decrypt the encrypted content", malformed: true };
  let tags: unknown;
  try {
    tags = JSON.parse(opened.plaintext);
  } catch {
    tags = null;
  }
  if (!Array.isArray(tags) || !tags.every(isStringArray)) {
    return { reason: "invalid: encrypted content is not a JSON array of tags", malformed: true };
  }
  return { encryption: opened.scheme, hiddenTags: tags.filter((t) => TAGS_FROM_ENCRYPTED.has(t[0] ?? "")) };
}

/** A detached copy of an event whose tags may hold anything JSON can. */
function plainCopy(ev: Event): Event {
  const tags = JSON.parse(JSON.stringify(ev.tags)) as string[][];
  return { id: ev.id, pubkey: ev.pubkey, created_at: ev.created_at, kind: ev.kind, tags, content: ev.content, sig: ev.sig };
}

function ignore(reason: string): Ignore {
  return { ok: false, answer: "ignore", reason };
}

export interface JobRequestSpec {
  kind: number;
  inputs: string[][];
  params?: string[][];
  output?: string;
  bidMsats?: number;
  relays?: string[];
  /** The provider addressed; required when encrypting. */
  gatePubkey?: string;
  encryption?: "none" | EncryptionScheme;
  createdAtSec: number;
  expiresAtSec?: number;
}

/**
 * The one job-request builder (for `dvm-gate request`, the customer peer, the demo and
 * tests). With encryption, `i` and `param` tags go into the content, encrypted to the
 * gate (NIP-90).
 */
export function jobRequestTemplate(spec: JobRequestSpec, customerSecretKey: Uint8Array): EventTemplate {
  const secret = [...spec.inputs.map((t) => [...t]), ...(spec.params ?? []).map((t) => [...t])];
  const tags: string[][] = [];
  const encryption = spec.encryption ?? "none";
  if (encryption === "none") tags.push(...secret);
  if (spec.output !== undefined) tags.push(["output", spec.output]);
  if (spec.bidMsats !== undefined) tags.push(["bid", String(spec.bidMsats)]);
  if (spec.relays?.length) tags.push(["relays", ...spec.relays]);
  if (spec.gatePubkey !== undefined) tags.push(["p", spec.gatePubkey]);
  if (spec.expiresAtSec !== undefined) tags.push(["expiration", String(spec.expiresAtSec)]);
  let content = "";
  if (encryption !== "none") {
    if (spec.gatePubkey === undefined) throw new Error("invariant: an encrypted job request needs the provider's pubkey");
    content = encryptFor(encryption, JSON.stringify(secret), customerSecretKey, spec.gatePubkey);
    tags.push(["encrypted"]);
  }
  return { kind: spec.kind, created_at: spec.createdAtSec, tags, content };
}

/** The signed request: what `dvm-gate request`, the peers and the tests publish. */
export function signJobRequest(spec: JobRequestSpec, customerSecretKey: Uint8Array): Event {
  return finalizeEvent(jobRequestTemplate(spec, customerSecretKey), customerSecretKey);
}
