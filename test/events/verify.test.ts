import { beforeAll, describe, expect, it } from "vitest";
import { finalizeEvent, verifiedSymbol, type Event } from "nostr-tools/pure";
import { activeVerifier, initFastVerify, meterCrypto, signEvent, verifyEventWith, verifyRawSignature, verifySignedEvent } from "../../src/events/verify.js";
import { flipHex, keys, NOW_SEC, sign, signAny } from "./fixtures.js";

const alice = keys();
const bob = keys();

function good(content: string, tags: string[][] = []): Event {
  return sign({ kind: 1, created_at: NOW_SEC, tags, content }, alice);
}

// Each: [name, event, genuine?]
function corpus(): Array<[string, unknown, boolean]> {
  const a = good("hello");
  const b = good("other", [["t", "x"]]);
  return [
    ["a plain signed event", a, true],
    ["unicode, emoji and escapes in content", good('naïve ☕ 😀 "quoted" \\ \n\t\u0000 \u2028'), true],
    [
      "many tags",
      good(
        "",
        Array.from({ length: 50 }, (_, i) => ["t", String(i), "", "x"]),
      ),
      true,
    ],
    ["an empty tag", good("", [[]]), true],
    ["a flipped sig bit", { ...a, sig: flipHex(a.sig, 100) }, false],
    ["content changed", { ...a, content: "hellO" }, false],
    ["a tag added", { ...a, tags: [["t", "x"]] }, false],
    ["created_at moved by 1 s", { ...a, created_at: a.created_at + 1 }, false],
    ["kind changed", { ...a, kind: 2 }, false],
    ["another event's id and sig", { ...a, id: b.id, sig: b.sig }, false],
    ["another pubkey", { ...a, pubkey: bob.pk }, false],
    ["a pubkey off the curve", { ...a, pubkey: "f".repeat(64) }, false],
    ["an all-zero sig", { ...a, sig: "0".repeat(128) }, false],
    ["a short id", { ...a, id: a.id.slice(0, 2) }, false],
    ["an uppercase sig", { ...a, sig: a.sig.toUpperCase() }, false],
    ["a non-hex id of the right length", { ...a, id: "z".repeat(64) }, false],
    ["a number in a tag", signAny({ kind: 1, created_at: NOW_SEC, tags: [["t", 1]], content: "" }, alice), false],
    ["an array", [a], false],
    ["undefined", undefined, false],
  ];
}

describe("verify", () => {
  beforeAll(async () => {
    expect(activeVerifier()).toBe("pure");
    expect(await initFastVerify()).toBe(true);
  });

  it("switches to the wasm verifier after initFastVerify", () => {
    expect(activeVerifier()).toBe("wasm");
  });

  it.each(corpus())("wasm and pure agree on %s", (_name, ev, genuine) => {
    expect(verifyEventWith("pure", ev)).toBe(genuine);
    expect(verifyEventWith("wasm", ev)).toBe(genuine);
    expect(verifySignedEvent(ev)).toBe(genuine);
  });

  it("never trusts a verdict cached on the object it is given", () => {
    const forged = { ...good("hello"), content: "forged" } as Event & { [verifiedSymbol]?: boolean };
    forged[verifiedSymbol] = true; // what pure verifyEvent would trust
    expect(verifyEventWith("pure", forged)).toBe(false);
    expect(verifyEventWith("wasm", forged)).toBe(false);
  });

  it("leaves the caller's event untouched", () => {
    const ev = good("hello");
    verifySignedEvent(ev);
    verifyEventWith("pure", ev);
    expect(Object.getOwnPropertySymbols(ev)).toHaveLength(0);
  });

  it("signs a copy with wasm: the template is unchanged and pure verifies the result", () => {
    const template = { kind: 7000, created_at: NOW_SEC, tags: [["p", bob.pk]], content: "" };
    const before = JSON.stringify(template);
    const a = signEvent(template, alice.sk);
    const b = signEvent(template, alice.sk);
    expect(JSON.stringify(template)).toBe(before);
    expect(Object.keys(template)).toEqual(["kind", "created_at", "tags", "content"]);
    expect(a.pubkey).toBe(alice.pk);
    expect(a.id).toBe(b.id); // same event, signed twice
    expect(verifyEventWith("pure", a)).toBe(true);
    expect(verifyEventWith("pure", b)).toBe(true);
    a.tags[0]![1] = "x";
    expect(template.tags[0]![1]).toBe(bob.pk);
  });

  it("verifies signatures over tags nostr-tools cannot hash, and only genuine ones", () => {
    const weird = signAny({ kind: 5050, created_at: NOW_SEC, tags: [["bid", 5], null, [["nested"]]], content: "" }, alice);
    expect(verifyRawSignature(weird)).toBe(true);
    expect(verifySignedEvent(weird)).toBe(false); // not a NIP-01 event for the strict check
    expect(verifyRawSignature({ ...weird, tags: [["bid", 6], null, [["nested"]]] })).toBe(false);
    expect(verifyRawSignature({ ...weird, pubkey: bob.pk })).toBe(false);
    expect(verifyRawSignature({ ...weird, sig: flipHex(weird.sig as string) })).toBe(false);
    // The raw check agrees with nostr-tools on ordinary events too.
    const plain = finalizeEvent({ kind: 1, created_at: NOW_SEC, tags: [["t", "a"]], content: "x" }, alice.sk);
    expect(verifyRawSignature({ ...plain })).toBe(true);
    expect(verifyRawSignature({ ...plain, content: "y" })).toBe(false);
  });
});

describe("crypto meter (for the end-to-end bench)", () => {
  it("counts each check and signing while set, with their CPU time, and nothing after it is unset", () => {
    const k = keys();
    const m = { verifies: 0, verifyCpuUs: 0, signs: 0, signCpuUs: 0 };
    meterCrypto(m);
    try {
      const a = signEvent({ kind: 1, created_at: NOW_SEC, tags: [], content: "a" }, k.sk);
      const b = signEvent({ kind: 1, created_at: NOW_SEC, tags: [], content: "b" }, k.sk);
      expect(verifySignedEvent(a)).toBe(true);
      expect(verifySignedEvent({ ...b, sig: flipHex(b.sig) })).toBe(false);
    } finally {
      meterCrypto(null);
    }
    expect({ verifies: m.verifies, signs: m.signs }).toEqual({ verifies: 2, signs: 2 });
    expect(m.verifyCpuUs).toBeGreaterThanOrEqual(0);
    expect(m.signCpuUs).toBeGreaterThan(0);
    signEvent({ kind: 1, created_at: NOW_SEC, tags: [], content: "c" }, k.sk);
    expect(m.signs).toBe(2);
  });
});
