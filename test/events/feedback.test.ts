import { describe, expect, it } from "vitest";
import type { EventTemplate } from "nostr-tools/pure";
import { encryptTemplateFor, errorFeedback, paymentRequiredFeedback, processingFeedback, readFeedback, type ReplyTarget } from "../../src/events/feedback.js";
import { decryptFrom } from "../../src/events/encryption.js";
import { signEvent, verifySignedEvent } from "../../src/events/verify.js";
import { keys, NOW_SEC } from "./fixtures.js";

const gate = keys();
const customer = keys();
const stranger = keys();
const REQUEST_ID = "ab".repeat(32);
const BOLT11 = "lnbcrt100n1pexample";
const RELAY = "wss://relay.example.com";

function target(encryption: ReplyTarget["encryption"] = "none", relayHint = RELAY): ReplyTarget {
  return { requestId: REQUEST_ID, customer: customer.pk, relayHint, encryption, expiresAtSec: NOW_SEC + 600 };
}

const head = [
  ["e", REQUEST_ID, RELAY],
  ["p", customer.pk],
  ["expiration", String(NOW_SEC + 600)],
];

// [name, template, exact SPEC §4 tags, what readFeedback must read back]
const cases: Array<[string, EventTemplate, string[][], Record<string, unknown>]> = [
  [
    "free",
    processingFeedback(target(), { text: "free tier: on the house", freeTier: { label: "free", absorbedMsats: 10_000 } }, NOW_SEC),
    [...head, ["status", "processing", "free tier: on the house"], ["free-tier", "free", "10000", "0"]],
    {
      status: "processing",
      text: "free tier: on the house",
      freeTier: { label: "free", absorbedMsats: 10_000, chargeMsats: 0 },
      amountMsats: null,
      bolt11: null,
    },
  ],
  [
    "partial",
    paymentRequiredFeedback(target(), { text: "pay the rest", chargeMsats: 6_000, bolt11: BOLT11, partial: { absorbMsats: 4_000 } }, NOW_SEC),
    [...head, ["status", "payment-required", "pay the rest"], ["amount", "6000", BOLT11], ["free-tier", "partial", "4000", "6000"]],
    { status: "payment-required", amountMsats: 6_000, bolt11: BOLT11, freeTier: { label: "partial", absorbedMsats: 4_000, chargeMsats: 6_000 } },
  ],
  [
    "gate",
    paymentRequiredFeedback(target(), { text: "please pay", chargeMsats: 10_000, bolt11: BOLT11 }, NOW_SEC),
    [...head, ["status", "payment-required", "please pay"], ["amount", "10000", BOLT11]],
    { status: "payment-required", amountMsats: 10_000, bolt11: BOLT11, freeTier: null },
  ],
  [
    "once paid",
    processingFeedback(target(), { text: "paid, working" }, NOW_SEC),
    [...head, ["status", "processing", "paid, working"]],
    { status: "processing", text: "paid, working", freeTier: null, amountMsats: null },
  ],
  [
    "error",
    errorFeedback(target(), "bid below price: 10000 msats", NOW_SEC),
    [...head, ["status", "error", "bid below price: 10000 msats"]],
    { status: "error", text: "bid below price: 10000 msats" },
  ],
];

describe("feedback templates", () => {
  it.each(cases)("%s feedback has exactly the SPEC tags and reads back", (_name, t, tags, read) => {
    expect(t.kind).toBe(7000);
    expect(t.created_at).toBe(NOW_SEC);
    expect(t.content).toBe("");
    expect(t.tags).toEqual(tags);
    const ev = signEvent(t, gate.sk);
    expect(verifySignedEvent(ev)).toBe(true);
    const fb = readFeedback(ev);
    if (typeof fb === "string") throw new Error(fb);
    expect(fb).toMatchObject({ requestId: REQUEST_ID, customer: customer.pk, expiresAtSec: NOW_SEC + 600, encrypted: false, ...read });
  });

  it("leaves out an empty relay hint instead of sending an empty string", () => {
    expect(errorFeedback(target("none", ""), "x", NOW_SEC).tags[0]).toEqual(["e", REQUEST_ID]);
  });

  it("refuses to build replies that break its own invariants", () => {
    expect(() => errorFeedback({ ...target(), expiresAtSec: NOW_SEC }, "x", NOW_SEC)).toThrow(/invariant/);
    expect(() => errorFeedback({ ...target(), requestId: "nope" }, "x", NOW_SEC)).toThrow(/invariant/);
    expect(() => errorFeedback({ ...target(), customer: customer.pk.toUpperCase() }, "x", NOW_SEC)).toThrow(/invariant/);
    expect(() => paymentRequiredFeedback(target(), { text: "", chargeMsats: 0, bolt11: BOLT11 }, NOW_SEC)).toThrow(/invariant/);
    expect(() => paymentRequiredFeedback(target(), { text: "", chargeMsats: 1.5, bolt11: BOLT11 }, NOW_SEC)).toThrow(/invariant/);
    expect(() => paymentRequiredFeedback(target(), { text: "", chargeMsats: 1000, bolt11: "" }, NOW_SEC)).toThrow(/invariant/);
  });

  it("reads NDK's payment_required spelling as payment-required", () => {
    const t = paymentRequiredFeedback(target(), { text: "", chargeMsats: 1000, bolt11: BOLT11 }, NOW_SEC);
    t.tags[3] = ["status", "payment_required", ""];
    const fb = readFeedback(signEvent(t, gate.sk));
    expect(typeof fb !== "string" && fb.status).toBe("payment-required");
  });

  it("returns the template unchanged (as a copy) when the request was not encrypted", () => {
    const t = cases[1]![1];
    const out = encryptTemplateFor(t, target("none"), gate.sk);
    expect(out).toEqual(t);
    expect(out.tags).not.toBe(t.tags);
  });
});

describe("encrypted replies", () => {
  for (const scheme of ["nip04", "nip44"] as const) {
    it.each(cases)(`${scheme}: %s feedback keeps only e, p, expiration, encrypted in the clear and opens with the customer key`, (_name, t, tags) => {
      const enc = encryptTemplateFor(t, target(scheme), gate.sk);
      expect(enc.tags).toEqual([...head, ["encrypted"]]);
      const ev = signEvent(enc, gate.sk);
      const opened = decryptFrom(ev.content, customer.sk, gate.pk);
      expect(opened?.scheme).toBe(scheme);
      expect(JSON.parse(opened!.plaintext)).toEqual(tags.slice(3));
      // Nobody else can read it.
      expect(decryptFrom(ev.content, stranger.sk, gate.pk)?.plaintext).not.toBe(opened!.plaintext);
      // The customer's reader gets the same fields as from the plain reply.
      const plain = readFeedback(signEvent(t, gate.sk));
      const read = readFeedback(ev, { secretKey: customer.sk });
      if (typeof plain === "string" || typeof read === "string") throw new Error(String(read));
      expect({ ...read, event: null, encrypted: false }).toEqual({ ...plain, event: null });
      // The gate can read its own reply back too; without a key it is unreadable.
      expect(typeof readFeedback(ev, { secretKey: gate.sk })).toBe("object");
      expect(readFeedback(ev)).toMatch(/no key/);
      expect(readFeedback(ev, { secretKey: stranger.sk })).toMatch(/decrypt|JSON/);
    });

    it(`${scheme}: a job result keeps its tags but the i input, and its content opens with the customer key`, () => {
      const result: EventTemplate = {
        kind: 6050,
        created_at: NOW_SEC,
        tags: [
          ["e", REQUEST_ID, RELAY],
          ["p", customer.pk],
          ["i", "secret question", "text"],
          ["amount", "5000"],
        ],
        content: "Paris",
      };
      const enc = encryptTemplateFor(result, target(scheme), gate.sk);
      expect(enc.tags).toEqual([["e", REQUEST_ID, RELAY], ["p", customer.pk], ["amount", "5000"], ["encrypted"]]);
      expect(decryptFrom(enc.content, customer.sk, gate.pk)).toEqual({ scheme, plaintext: "Paris" });
    });
  }

  it("carries non-empty content inside the encrypted tags", () => {
    const t = { ...errorFeedback(target(), "oops", NOW_SEC), content: "partial sample" };
    const enc = encryptTemplateFor(t, target("nip44"), gate.sk);
    expect(JSON.parse(decryptFrom(enc.content, customer.sk, gate.pk)!.plaintext)).toEqual([
      ["status", "error", "oops"],
      ["content", "partial sample"],
    ]);
  });
});
