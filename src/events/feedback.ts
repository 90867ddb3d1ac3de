// The gate's kind 7000 replies (SPEC §4), as unsigned templates: the caller signs them
// (inside its outbox transaction, CPU only). Tags are exactly the SPEC's; the reading
// side (`readFeedback`) is here too so the customer CLI and tests parse what we write.
//
// Encrypted requests get encrypted replies (NIP-90). NIP-90 says only that the
// feedback's content carries the encrypted payload; like the reference DVM framework
// (nostrdvm), we move every tag that says something about the job (status, amount,
// free-tier, and any content as a ["content", …] tag) into that payload and keep in
// the clear only what relays and clients need to route it: e, p, expiration, encrypted.
// Results (kind 6000–6999) follow NIP-90's own rule: content encrypted, `i` tags dropped.
import { JobFeedback } from "nostr-tools/kinds";
import { getPublicKey, type Event, type EventTemplate } from "nostr-tools/pure";
import { decryptFrom, encryptFor } from "./encryption.js";
import { isMsats, parseWireMsats } from "../util/money.js";
import { expirationSec } from "./nip90-tags.js";
import { HEX64 } from "../util/hex.js";

export const FEEDBACK_KIND = JobFeedback;

export interface ReplyTarget {
  requestId: string;
  customer: string;
  relayHint: string;
  encryption: "none" | "nip04" | "nip44";
  expiresAtSec: number;
}

export type FeedbackStatus = "payment-required" | "processing" | "error" | "success" | "partial";

/** Tags that stay readable on an encrypted reply: routing and NIP-40, nothing about the job. */
const CLEAR_TAGS: ReadonlySet<string> = new Set(["e", "p", "expiration", "encrypted"]);

export function processingFeedback(
  t: ReplyTarget,
  opts: {
    text: string;
    freeTier?: { label: "free"; absorbedMsats: number } | { label: "partial"; absorbedMsats: number; chargeMsats: number };
    /** Paid from the prepaid balance (SPEC §12): what is left in it. */
    balanceLeftMsats?: number;
  },
  nowSec: number,
): EventTemplate {
  const tags = [["status", "processing", opts.text]];
  if (opts.freeTier) {
    assertAmount(opts.freeTier.absorbedMsats, "absorbedMsats");
    const charge = opts.freeTier.label === "partial" ? opts.freeTier.chargeMsats : 0;
    assertAmount(charge, "chargeMsats");
    tags.push(["free-tier", opts.freeTier.label, String(opts.freeTier.absorbedMsats), String(charge)]);
  }
  if (opts.balanceLeftMsats !== undefined) {
    assertAmount(opts.balanceLeftMsats, "balanceLeftMsats");
    tags.push(["balance", String(opts.balanceLeftMsats)]);
  }
  return feedback(t, tags, nowSec);
}

export function paymentRequiredFeedback(
  t: ReplyTarget,
  opts: { text: string; chargeMsats: number; bolt11: string; partial?: { absorbMsats: number } },
  nowSec: number,
): EventTemplate {
  assertAmount(opts.chargeMsats, "chargeMsats");
  if (opts.chargeMsats === 0) throw new Error("invariant: payment-required with nothing to pay");
  if (!opts.bolt11) throw new Error("invariant: payment-required without an invoice");
  const tags = [
    ["status", "payment-required", opts.text],
    ["amount", String(opts.chargeMsats), opts.bolt11],
  ];
  if (opts.partial) {
    assertAmount(opts.partial.absorbMsats, "absorbMsats");
    tags.push(["free-tier", "partial", String(opts.partial.absorbMsats), String(opts.chargeMsats)]);
  }
  return feedback(t, tags, nowSec);
}

export function errorFeedback(t: ReplyTarget, reason: string, nowSec: number): EventTemplate {
  return feedback(t, [["status", "error", reason]], nowSec);
}

function feedback(t: ReplyTarget, statusTags: string[][], nowSec: number): EventTemplate {
  if (!HEX64.test(t.requestId)) throw new Error(`invariant: request id ${JSON.stringify(t.requestId)} is not 64 hex`);
  if (!HEX64.test(t.customer)) throw new Error(`invariant: customer ${JSON.stringify(t.customer)} is not 64 hex`);
  if (!Number.isSafeInteger(nowSec) || !Number.isSafeInteger(t.expiresAtSec) || t.expiresAtSec <= nowSec) {
    throw new Error(`invariant: reply expires at ${t.expiresAtSec}, not after now ${nowSec}`);
  }
  // An empty relay hint is left out rather than sent as "": NIP-01 makes it optional.
  const e = t.relayHint ? ["e", t.requestId, t.relayHint] : ["e", t.requestId];
  return {
    kind: FEEDBACK_KIND,
    created_at: nowSec,
    tags: [e, ["p", t.customer], ["expiration", String(t.expiresAtSec)], ...statusTags],
    content: "",
  };
}

function assertAmount(v: number, what: string): void {
  if (!isMsats(v)) throw new Error(`invariant: ${what} ${v} is not whole millisats`);
}

/**
 * Applies the request's encryption to a reply template, as a new template. Feedback
 * keeps e/p/expiration in the clear and carries the rest as encrypted JSON tags; a job
 * result gets its content encrypted and loses its `i` tags. No-op for "none".
 */
export function encryptTemplateFor(t: EventTemplate, target: ReplyTarget, gateSecretKey: Uint8Array): EventTemplate {
  const tags = t.tags.map((tag) => [...tag]);
  if (target.encryption === "none") return { ...t, tags };
  if (t.kind >= 6000 && t.kind <= 6999) {
    return {
      ...t,
      tags: [...tags.filter((tag) => tag[0] !== "i" && tag[0] !== "encrypted"), ["encrypted"]],
      content: encryptFor(target.encryption, t.content, gateSecretKey, target.customer),
    };
  }
  const clear = tags.filter((tag) => CLEAR_TAGS.has(tag[0] ?? "") && tag[0] !== "encrypted");
  const hidden = tags.filter((tag) => !CLEAR_TAGS.has(tag[0] ?? ""));
  if (t.content !== "") hidden.push(["content", t.content]);
  return {
    ...t,
    tags: [...clear, ["encrypted"]],
    content: encryptFor(target.encryption, JSON.stringify(hidden), gateSecretKey, target.customer),
  };
}

export interface Feedback {
  event: Event;
  requestId: string;
  customer: string;
  status: FeedbackStatus;
  text: string;
  amountMsats: number | null;
  bolt11: string | null;
  freeTier: { label: "free" | "partial"; absorbedMsats: number; chargeMsats: number } | null;
  /** `["balance", "<msats left>"]`: the job was paid from the prepaid balance. */
  balanceMsats: number | null;
  expiresAtSec: number | null;
  encrypted: boolean;
}

/**
 * Reads a kind 7000 feedback event (already verified by the caller). For an encrypted
 * one, pass the key that can open it: the customer's secret key (sender = the event's
 * author) or the author's own key (sender = the customer). Returns a reason string
 * when the event is not readable feedback.
 */
export function readFeedback(ev: Event, opts: { secretKey?: Uint8Array } = {}): Feedback | string {
  if (ev.kind !== FEEDBACK_KIND) return `kind ${ev.kind} is not feedback`;
  const requestId = ev.tags.find((t) => t[0] === "e")?.[1];
  const customer = ev.tags.find((t) => t[0] === "p")?.[1];
  if (!requestId || !HEX64.test(requestId)) return "feedback without a valid e tag";
  if (!customer || !HEX64.test(customer)) return "feedback without a valid p tag";
  const encrypted = ev.tags.some((t) => t[0] === "encrypted");
  let tags = ev.tags;
  if (encrypted) {
    const hidden = openHiddenTags(ev, customer, opts.secretKey);
    if (typeof hidden === "string") return hidden;
    tags = [...ev.tags, ...hidden];
  }
  const status = tags.find((t) => t[0] === "status");
  const state = status?.[1] === "payment_required" ? "payment-required" : status?.[1]; // NDK spells it with _
  if (!isStatus(state)) return "feedback without a known status";
  const amount = tags.find((t) => t[0] === "amount");
  const amountMsats = parseWireMsats(amount?.[1]);
  const ft = tags.find((t) => t[0] === "free-tier");
  const freeTier =
    ft && (ft[1] === "free" || ft[1] === "partial") && parseWireMsats(ft[2]) !== null && parseWireMsats(ft[3]) !== null
      ? { label: ft[1] as "free" | "partial", absorbedMsats: parseWireMsats(ft[2])!, chargeMsats: parseWireMsats(ft[3])! }
      : null;
  const balance = tags.find((t) => t[0] === "balance")?.[1];
  return {
    event: ev,
    requestId,
    customer,
    status: state,
    text: status?.[2] ?? "",
    amountMsats,
    bolt11: amount?.[2] || null,
    freeTier,
    balanceMsats: parseWireMsats(balance),
    expiresAtSec: expirationSec(ev.tags.find((t) => t[0] === "expiration")),
    encrypted,
  };
}

function openHiddenTags(ev: Event, customer: string, secretKey: Uint8Array | undefined): string[][] | string {
  if (!secretKey) return "encrypted feedback and no key to open it";
  // Either side can open it: the customer with the author's pubkey, the author with the customer's.
  const counterpart = getPublicKey(secretKey) === ev.pubkey ? customer : ev.pubkey;
  const opened = decryptFrom(ev.content, secretKey, counterpart);
  if (opened === null) return "cannot decrypt the feedback";
  try {
    const tags: unknown = JSON.parse(opened.plaintext);
    if (Array.isArray(tags) && tags.every((t) => Array.isArray(t) && t.every((v) => typeof v === "string"))) return tags as string[][];
  } catch {
    // fall through
  }
  return "encrypted feedback is not a JSON array of tags";
}

function isStatus(s: string | undefined): s is FeedbackStatus {
  return s === "payment-required" || s === "processing" || s === "error" || s === "success" || s === "partial";
}
