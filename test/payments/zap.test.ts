import { describe, expect, it } from "vitest";
import { createHash, randomBytes } from "node:crypto";
import { finalizeEvent, generateSecretKey, getPublicKey, verifyEvent, type Event } from "nostr-tools/pure";
import { encodeBolt11 } from "../../src/payments/bolt11.js";
import { checkZapReceipt } from "../../src/payments/zap.js";

// A fake LNURL provider: its key signs receipts; its "node" signs the bolt11.
const providerSk = generateSecretKey();
const providerPk = getPublicKey(providerSk);
const nodeSk = randomBytes(32);
const zapperSk = generateSecretKey();
const zapperPk = getPublicKey(zapperSk);
const gatePk = getPublicKey(generateSecretKey());
const feedbackEventId = createHash("sha256").update("feedback").digest("hex");
const CHARGE_MSATS = 21_000;
const nowSec = Math.floor(Date.now() / 1000);

const sha256Hex = (s: string) => createHash("sha256").update(s, "utf8").digest("hex");

interface Build {
  amountMsats?: number;
  eventId?: string;
  signer?: Uint8Array;
  /** Alter the zap request after signing it (breaks its signature). */
  tamperRequest?: (zr: Event) => void;
  /** The bolt11 commits to this text instead of the real description. */
  hashedDescription?: string;
  paymentHash?: string;
  /** Who the zap pays (p tag of the request and the receipt); the gate by default. */
  recipient?: string;
}

function buildReceipt(b: Build = {}): { receipt: Event; paymentHash: string } {
  const amountMsats = b.amountMsats ?? CHARGE_MSATS;
  const zapRequest = finalizeEvent(
    {
      kind: 9734,
      created_at: nowSec,
      content: "",
      tags: [
        ["p", b.recipient ?? gatePk],
        ["e", b.eventId ?? feedbackEventId],
        ["amount", String(amountMsats)],
        ["relays", "ws://127.0.0.1:1"],
      ],
    },
    zapperSk,
  );
  b.tamperRequest?.(zapRequest);
  const description = JSON.stringify(zapRequest);
  const paymentHash = b.paymentHash ?? randomBytes(32).toString("hex");
  const bolt11 = encodeBolt11({
    network: "bcrt",
    amountMsats,
    paymentHash,
    descriptionHash: sha256Hex(b.hashedDescription ?? description),
    createdAtSec: nowSec,
    expirySec: 600,
    nodeSecretKey: nodeSk,
  });
  const receipt = finalizeEvent(
    {
      kind: 9735,
      created_at: nowSec,
      content: "",
      tags: [
        ["p", b.recipient ?? gatePk],
        ["e", b.eventId ?? feedbackEventId],
        ["P", zapperPk],
        ["bolt11", bolt11],
        ["description", description],
      ],
    },
    b.signer ?? providerSk,
  );
  return { receipt, paymentHash };
}

const expectation = { providerPubkey: providerPk, recipientPubkey: gatePk, feedbackEventId, chargeMsats: CHARGE_MSATS };
const neverUsed = () => false;

function reasonOf(receipt: unknown, used: (h: string) => boolean = neverUsed): string {
  const r = checkZapReceipt(receipt, expectation, used);
  if (r.ok) throw new Error("expected the receipt to be refused");
  return r.reason;
}

describe("checkZapReceipt", () => {
  it("accepts a receipt from the provider for our feedback event that covers the charge", () => {
    const { receipt, paymentHash } = buildReceipt({ amountMsats: CHARGE_MSATS + 1000 });
    const seen: string[] = [];
    const r = checkZapReceipt(receipt, expectation, (h) => (seen.push(h), false));
    expect(r).toEqual({ ok: true, paymentHash, amountMsats: CHARGE_MSATS + 1000, zapper: zapperPk });
    expect(seen).toEqual([paymentHash]);
  });

  it("refuses a zap that paid someone else at the same provider, even tagged with our feedback event", () => {
    // A custodial provider signs receipts for all its users: the customer zaps itself.
    const { receipt } = buildReceipt({ recipient: zapperPk });
    expect(reasonOf(receipt)).toMatch(/not addressed to the gate/);
  });

  it("refuses a receipt signed by anyone but the configured provider", () => {
    const { receipt } = buildReceipt({ signer: generateSecretKey() });
    expect(reasonOf(receipt)).toMatch(/not signed by the configured LNURL provider/);
  });

  it("refuses a receipt whose signature does not verify, even if it verified before being altered", () => {
    const { receipt } = buildReceipt();
    expect(verifyEvent(receipt)).toBe(true); // caches a verdict on the object
    receipt.created_at += 1;
    expect(reasonOf(receipt)).toMatch(/receipt signature does not verify/);
    const { receipt: badSig } = buildReceipt();
    badSig.sig = (badSig.sig[0] === "0" ? "1" : "0") + badSig.sig.slice(1);
    expect(reasonOf(badSig)).toMatch(/receipt signature does not verify/);
  });

  it("refuses a receipt whose embedded zap request signature does not verify", () => {
    const { receipt } = buildReceipt({ tamperRequest: (zr) => (zr.content = "changed after signing") });
    expect(reasonOf(receipt)).toMatch(/zap request signature does not verify/);
  });

  it("refuses a bolt11 whose description hash is not the zap request's", () => {
    const { receipt } = buildReceipt({ hashedDescription: "some other zap request" });
    expect(reasonOf(receipt)).toMatch(/description hash does not match/);
  });

  it("refuses an amount below the charge, even by one msat", () => {
    const { receipt } = buildReceipt({ amountMsats: CHARGE_MSATS - 1 });
    expect(reasonOf(receipt)).toMatch(/less than the charge/);
  });

  it("refuses a zap for another event", () => {
    const { receipt } = buildReceipt({ eventId: "ab".repeat(32) });
    expect(reasonOf(receipt)).toMatch(/not for this feedback event/);
  });

  it("refuses a payment hash that was already used", () => {
    const { receipt, paymentHash } = buildReceipt();
    expect(reasonOf(receipt, (h) => h === paymentHash)).toMatch(/already used/);
  });

  it("refuses things that are not zap receipts", () => {
    expect(reasonOf(null)).toMatch(/not a zap receipt/);
    expect(reasonOf({ kind: 9735 })).toMatch(/not a zap receipt/);
    const note = finalizeEvent({ kind: 1, created_at: nowSec, content: "hi", tags: [] }, providerSk);
    expect(reasonOf(note)).toMatch(/not a zap receipt/);
    const noBolt11 = finalizeEvent({ kind: 9735, created_at: nowSec, content: "", tags: [["description", "{}"]] }, providerSk);
    expect(reasonOf(noBolt11)).toMatch(/lacks a description or bolt11/);
  });
});

describe("checkZapReceipt for a zap of the gate's profile (a deposit, SPEC §12)", () => {
  const profile = { ...expectation, feedbackEventId: null, chargeMsats: 1 };

  it("accepts a profile zap without an e tag, any positive amount", () => {
    const { receipt, paymentHash } = buildProfileReceipt(1);
    expect(checkZapReceipt(receipt, profile, neverUsed)).toEqual({ ok: true, paymentHash, amountMsats: 1, zapper: zapperPk });
  });

  it("refuses a zap of an event as a deposit, and a profile zap as payment for an event", () => {
    const { receipt } = buildReceipt();
    const r = checkZapReceipt(receipt, profile, neverUsed);
    expect(r.ok ? "" : r.reason).toMatch(/names an event/);
    const p = checkZapReceipt(buildProfileReceipt(CHARGE_MSATS).receipt, expectation, neverUsed);
    expect(p.ok ? "" : p.reason).toMatch(/not for this feedback event/);
  });
});

/** A profile zap: the zap request and receipt name no event. */
function buildProfileReceipt(amountMsats: number): { receipt: Event; paymentHash: string } {
  const zapRequest = finalizeEvent(
    {
      kind: 9734,
      created_at: nowSec,
      content: "",
      tags: [
        ["p", gatePk],
        ["amount", String(amountMsats)],
        ["relays", "ws://127.0.0.1:1"],
      ],
    },
    zapperSk,
  );
  const description = JSON.stringify(zapRequest);
  const paymentHash = randomBytes(32).toString("hex");
  const bolt11 = encodeBolt11({
    network: "bcrt",
    amountMsats,
    paymentHash,
    descriptionHash: sha256Hex(description),
    createdAtSec: nowSec,
    expirySec: 600,
    nodeSecretKey: nodeSk,
  });
  const receipt = finalizeEvent(
    {
      kind: 9735,
      created_at: nowSec,
      content: "",
      tags: [
        ["p", gatePk],
        ["P", zapperPk],
        ["bolt11", bolt11],
        ["description", description],
      ],
    },
    providerSk,
  );
  return { receipt, paymentHash };
}
