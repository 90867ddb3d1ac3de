// NIP-57 zap receipts (kind 9735) as evidence of payment for a feedback event. A receipt
// is only a claim by the LNURL provider, so every check peers skip is made here: the
// signer is the configured provider, both signatures verify, the invoice commits to the
// zap request, the amount covers the charge, the zap paid the gate (not some other user
// of the same provider) for our event, and the payment hash is spent once.
import { createHash } from "node:crypto";
import * as kinds from "nostr-tools/kinds";
import { verifyEvent, type Event } from "nostr-tools/pure";
import { decodeBolt11 } from "./bolt11.js";
import { HEX64 } from "../util/hex.js";

export interface ZapExpectation {
  providerPubkey: string;
  /** Who must have been paid: the gate. A custodial provider signs receipts for all its users. */
  recipientPubkey: string;
  /**
   * The feedback event the zap pays for; null for a zap of the gate's profile (a
   * deposit, SPEC §12), whose zap request must then name no event at all.
   */
  feedbackEventId: string | null;
  chargeMsats: number;
}

export type ZapCheck = { ok: true; paymentHash: string; amountMsats: number; zapper: string } | { ok: false; reason: string };

const ZAP_RECEIPT_KIND = kinds.Zap;
const ZAP_REQUEST_KIND = kinds.ZapRequest;
/** NIP-57 descriptions are one small event; anything larger is not worth parsing. */
const MAX_DESCRIPTION_CHARS = 65_536;
const HEX128 = /^[0-9a-f]{128}$/;

export function checkZapReceipt(receipt: unknown, expect: ZapExpectation, paymentHashUsed: (hash: string) => boolean): ZapCheck {
  const fail = (reason: string): ZapCheck => ({ ok: false, reason });
  const r = asEvent(receipt);
  if (!r || r.kind !== ZAP_RECEIPT_KIND) return fail("not a zap receipt (kind 9735 event)");
  if (r.pubkey !== expect.providerPubkey) return fail("zap receipt is not signed by the configured LNURL provider");
  if (!verifyEvent(r)) return fail("zap receipt signature does not verify");

  const description = tagValue(r, "description");
  const bolt11 = tagValue(r, "bolt11");
  if (description === undefined || bolt11 === undefined) return fail("zap receipt lacks a description or bolt11 tag");
  if (description.length > MAX_DESCRIPTION_CHARS) return fail("zap request (description tag) is too large");
  let parsed: unknown;
  try {
    parsed = JSON.parse(description);
  } catch {
    return fail("zap request (description tag) is not JSON");
  }
  const zr = asEvent(parsed);
  if (!zr || zr.kind !== ZAP_REQUEST_KIND) return fail("description tag is not a zap request (kind 9734 event)");
  if (!verifyEvent(zr)) return fail("zap request signature does not verify");

  let invoice;
  try {
    invoice = decodeBolt11(bolt11);
  } catch (err) {
    return fail(`zap receipt's ${(err as Error).message}`);
  }
  const descriptionHash = createHash("sha256").update(description, "utf8").digest("hex");
  if (invoice.descriptionHash !== descriptionHash) return fail("bolt11 description hash does not match the zap request");
  if (invoice.amountMsats === null) return fail("bolt11 has no amount");
  if (invoice.amountMsats < expect.chargeMsats) return fail(`zap amount ${invoice.amountMsats} msats is less than the charge ${expect.chargeMsats} msats`);
  // NIP-57: the LNURL server must refuse a zap request whose amount tag differs from the invoice.
  const requested = tagValue(zr, "amount");
  if (requested !== undefined && requested !== String(invoice.amountMsats)) return fail("zap request amount tag does not match the bolt11 amount");

  // One provider key signs receipts for every user of a custodial LNURL service: without
  // this, a customer could zap their own address there, tagged with our feedback event.
  const zp = zr.tags.filter((t) => t[0] === "p");
  if (zp.length !== 1 || zp[0]![1] !== expect.recipientPubkey) return fail("zap request is not addressed to the gate (p tag)");
  if (tagValue(r, "p") !== expect.recipientPubkey) return fail("zap receipt is not addressed to the gate (p tag)");

  const eTags = zr.tags.filter((t) => t[0] === "e");
  if (expect.feedbackEventId === null) {
    // A profile zap: an e (or a) tag would make it a zap of some event, not a deposit.
    if (eTags.length > 0 || zr.tags.some((t) => t[0] === "a") || r.tags.some((t) => t[0] === "e" || t[0] === "a"))
      return fail("zap request names an event (e or a tag): not a zap of the gate's profile");
  } else if (eTags.length !== 1 || eTags[0]![1] !== expect.feedbackEventId) return fail("zap request is not for this feedback event (e tag)");
  if (paymentHashUsed(invoice.paymentHash)) return fail("payment hash was already used");
  return { ok: true, paymentHash: invoice.paymentHash, amountMsats: invoice.amountMsats, zapper: zr.pubkey };
}

/**
 * A fresh, plain copy with only the event's fields: verifyEvent caches its verdict on
 * the object it is given, so checking the caller's object could trust a stale verdict.
 */
function asEvent(v: unknown): Event | null {
  if (typeof v !== "object" || v === null) return null;
  const e = v as Record<string, unknown>;
  if (typeof e.id !== "string" || !HEX64.test(e.id)) return null;
  if (typeof e.pubkey !== "string" || !HEX64.test(e.pubkey)) return null;
  if (typeof e.sig !== "string" || !HEX128.test(e.sig)) return null;
  if (typeof e.kind !== "number" || !Number.isSafeInteger(e.kind)) return null;
  if (typeof e.created_at !== "number" || !Number.isSafeInteger(e.created_at)) return null;
  if (typeof e.content !== "string") return null;
  if (!Array.isArray(e.tags) || !e.tags.every((t) => Array.isArray(t) && t.every((x) => typeof x === "string"))) return null;
  return {
    id: e.id,
    pubkey: e.pubkey,
    sig: e.sig,
    kind: e.kind,
    created_at: e.created_at,
    content: e.content,
    tags: (e.tags as string[][]).map((t) => [...t]),
  };
}

function tagValue(e: Event, name: string): string | undefined {
  return e.tags.find((t) => t[0] === name)?.[1];
}
