import { describe, expect, it } from "vitest";
import type { Event } from "nostr-tools/pure";
import { checkJobRequest, jobRequestTemplate, MAX_REPLY_RELAYS, type JobRequestVerdict } from "../../src/events/job-request.js";
import { encryptFor } from "../../src/events/encryption.js";
import { MAX_RELAY_URLS_READ } from "../../src/events/nip90-tags.js";
import { activeVerifier, initFastVerify } from "../../src/events/verify.js";
import { context, flipHex, keys, NOW_SEC, PRICE_MSATS, requestTemplate, sign, signAny, type Keys } from "./fixtures.js";

const gate = keys();
const customer = keys();
const stranger = keys();
const ctx = context(gate);

type Expect = { answer: "ignore"; reason: RegExp } | { answer: "error"; reason: RegExp; abuse: boolean };

/** Replaces one tag (by name) of the standard request, or adds it. */
function withTag(name: string, tag: string[] | null, base = requestTemplate(gate)) {
  const tags = base.tags.filter((t) => t[0] !== name);
  if (tag) tags.push(tag);
  return { ...base, tags };
}

function encryptedRequest(scheme: "nip04" | "nip44", plaintext: string, sender: Keys, recipientPk: string, signer: Keys = sender): Event {
  return sign(
    {
      kind: 5050,
      created_at: NOW_SEC - 5,
      tags: [["p", gate.pk], ["encrypted"]],
      content: encryptFor(scheme, plaintext, sender.sk, recipientPk),
    },
    signer,
  );
}

const hostile: Array<[string, () => unknown, Expect]> = [
  ["a string instead of an event", () => "hello", { answer: "ignore", reason: /not an object/ }],
  ["null", () => null, { answer: "ignore", reason: /not an object/ }],
  [
    "an event without sig",
    () => {
      const e: Record<string, unknown> = { ...sign(requestTemplate(gate), customer) };
      delete e.sig;
      return e;
    },
    { answer: "ignore", reason: /sig/ },
  ],
  [
    "a bad signature",
    () => {
      const e = sign(requestTemplate(gate), customer);
      return { ...e, sig: flipHex(e.sig, 70) };
    },
    { answer: "ignore", reason: /bad id or signature/ },
  ],
  [
    "a wrong id (content changed after signing)",
    () => ({ ...sign(requestTemplate(gate), customer), content: "changed" }),
    { answer: "ignore", reason: /bad id or signature/ },
  ],
  [
    "the id and sig of another event",
    () => {
      const a = sign(requestTemplate(gate), customer);
      const b = sign(withTag("bid", ["bid", "99999"]), customer);
      return { ...b, id: a.id, sig: a.sig };
    },
    { answer: "ignore", reason: /bad id or signature/ },
  ],
  [
    "another pubkey over a valid id and sig",
    () => ({ ...sign(requestTemplate(gate), customer), pubkey: stranger.pk }),
    { answer: "ignore", reason: /bad id or signature/ },
  ],
  [
    "an uppercase hex id",
    () => {
      const e = sign(requestTemplate(gate), customer);
      return { ...e, id: e.id.toUpperCase() };
    },
    { answer: "ignore", reason: /id is not 64 lowercase hex/ },
  ],
  ["a kind given as a string", () => ({ ...sign(requestTemplate(gate), customer), kind: "5050" }), { answer: "ignore", reason: /kind/ }],
  ["a fractional created_at", () => ({ ...sign(requestTemplate(gate), customer), created_at: NOW_SEC + 0.5 }), { answer: "ignore", reason: /created_at/ }],
  ["created_at 61 s in the future", () => sign(requestTemplate(gate, { created_at: NOW_SEC + 61 }), customer), { answer: "ignore", reason: /future/ }],
  [
    "created_at older than maxRequestAgeSec",
    () => sign(requestTemplate(gate, { created_at: NOW_SEC - 901 }), customer),
    { answer: "ignore", reason: /too old/ },
  ],
  [
    "a NIP-40 expiration in the past",
    () => sign(withTag("expiration", ["expiration", String(NOW_SEC - 1)]), customer),
    { answer: "ignore", reason: /expired/ },
  ],
  ["a NIP-40 expiration equal to now", () => sign(withTag("expiration", ["expiration", String(NOW_SEC)]), customer), { answer: "ignore", reason: /expired/ }],
  ["an unconfigured job kind", () => sign(requestTemplate(gate, { kind: 5051 }), customer), { answer: "ignore", reason: /kind 5051 is not served/ }],
  ["kind 1 (outside 5000–5999)", () => sign(requestTemplate(gate, { kind: 1 }), customer), { answer: "ignore", reason: /not a job request/ }],
  ["kind 6050 (a result, not a request)", () => sign(requestTemplate(gate, { kind: 6050 }), customer), { answer: "ignore", reason: /not a job request/ }],
  ["a p tag for another DVM", () => sign(withTag("p", ["p", stranger.pk]), customer), { answer: "ignore", reason: /another provider/ }],
  [
    "garbage addressed to another DVM",
    () =>
      signAny(
        {
          kind: 5050,
          created_at: NOW_SEC,
          tags: [
            ["p", stranger.pk],
            ["i", 42],
          ],
          content: "",
        },
        customer,
      ),
    { answer: "ignore", reason: /another provider/ },
  ],
  [
    "a tags field that is not an array",
    () => signAny({ kind: 5050, created_at: NOW_SEC, tags: { p: gate.pk }, content: "" }, customer),
    { answer: "ignore", reason: /tags is not an array/ },
  ],
  [
    "a forged encrypted request (bad sig: never decrypted)",
    () => {
      const e = encryptedRequest("nip44", "[]", customer, gate.pk);
      return { ...e, sig: flipHex(e.sig) };
    },
    { answer: "ignore", reason: /bad id or signature/ },
  ],
  [
    "an event larger than maxRequestBytes",
    () => sign(withTag("i", ["i", "x".repeat(9_000), "text"]), customer),
    { answer: "error", reason: /^invalid: request too large$/, abuse: false },
  ],
  [
    "a number inside a tag",
    () =>
      signAny(
        {
          kind: 5050,
          created_at: NOW_SEC,
          tags: [
            ["p", gate.pk],
            ["bid", 20000],
          ],
          content: "",
        },
        customer,
      ),
    { answer: "error", reason: /tags must be arrays of strings/, abuse: true },
  ],
  [
    "a nested array inside a tag",
    () =>
      signAny(
        {
          kind: 5050,
          created_at: NOW_SEC,
          tags: [
            ["p", gate.pk],
            ["i", ["a", "b"], "text"],
          ],
          content: "",
        },
        customer,
      ),
    { answer: "error", reason: /tags must be arrays of strings/, abuse: true },
  ],
  [
    "a null tag",
    () => signAny({ kind: 5050, created_at: NOW_SEC, tags: [["p", gate.pk], null], content: "" }, customer),
    { answer: "error", reason: /tags must be arrays of strings/, abuse: true },
  ],
  [
    "a tag that is a string, not an array",
    () => signAny({ kind: 5050, created_at: NOW_SEC, tags: [["p", gate.pk], "i"], content: "" }, customer),
    { answer: "error", reason: /tags must be arrays of strings/, abuse: true },
  ],
  [
    "a bid below the price",
    () => sign(withTag("bid", ["bid", String(PRICE_MSATS - 1)]), customer),
    { answer: "error", reason: /^bid below price: 10000 msats$/, abuse: false },
  ],
  ["a non-numeric bid", () => sign(withTag("bid", ["bid", "ten sats"]), customer), { answer: "error", reason: /bid must be a whole number/, abuse: true }],
  ["a negative bid", () => sign(withTag("bid", ["bid", "-20000"]), customer), { answer: "error", reason: /bid must be a whole number/, abuse: true }],
  ["a fractional bid", () => sign(withTag("bid", ["bid", "20000.5"]), customer), { answer: "error", reason: /bid must be a whole number/, abuse: true }],
  [
    "a bid beyond any amount",
    () => sign(withTag("bid", ["bid", "9999999999999999"]), customer),
    { answer: "error", reason: /bid must be a whole number/, abuse: true },
  ],
  [
    "two bid tags",
    () => sign({ ...requestTemplate(gate), tags: [...requestTemplate(gate).tags, ["bid", "30000"]] }, customer),
    { answer: "error", reason: /more than one bid/, abuse: true },
  ],
  [
    "a param tag without a value",
    () => sign(withTag("param", ["param", "model"]), customer),
    { answer: "error", reason: /param tag needs a key and a value/, abuse: true },
  ],
  ["an i tag without data", () => sign(withTag("i", ["i"]), customer), { answer: "error", reason: /i tag needs data/, abuse: true }],
  [
    "an i tag of an unknown type",
    () => sign(withTag("i", ["i", "https://x.example/a.mp3", "audio"]), customer),
    { answer: "error", reason: /i tag type must be/, abuse: true },
  ],
  [
    "an i tag of type event that is not an id",
    () => sign(withTag("i", ["i", "note1xyz", "event", "wss://r.example"]), customer),
    { answer: "error", reason: /needs an event id/, abuse: true },
  ],
  [
    "an expiration tag that is not a time",
    () => sign(withTag("expiration", ["expiration", "soon"]), customer),
    { answer: "error", reason: /expiration tag/, abuse: true },
  ],
  [
    "a malformed open request (no p tag): answered, not counted as abuse",
    () => sign(withTag("bid", ["bid", "lots"], withTag("p", null)), customer),
    { answer: "error", reason: /bid must be a whole number/, abuse: false },
  ],
  [
    "NIP-04 content that is not a ciphertext",
    () =>
      sign({ kind: 5050, created_at: NOW_SEC, tags: [["p", gate.pk], ["encrypted"]], content: "bm90IGVuY3J5cHRlZA==?iv=AAAAAAAAAAAAAAAAAAAAAA==" }, customer),
    { answer: "error", reason: /encrypted content/, abuse: true },
  ],
  [
    "NIP-44 content that is not a ciphertext",
    () => sign({ kind: 5050, created_at: NOW_SEC, tags: [["p", gate.pk], ["encrypted"]], content: Buffer.alloc(120, 7).toString("base64") }, customer),
    { answer: "error", reason: /cannot decrypt the encrypted content/, abuse: true },
  ],
  [
    "plaintext content marked encrypted",
    () => sign({ kind: 5050, created_at: NOW_SEC, tags: [["p", gate.pk], ["encrypted"]], content: '[["i","hi","text"]]' }, customer),
    { answer: "error", reason: /cannot decrypt the encrypted content/, abuse: true },
  ],
  [
    "NIP-44 encrypted to another provider's key",
    () => encryptedRequest("nip44", '[["i","hi","text"]]', customer, stranger.pk),
    { answer: "error", reason: /cannot decrypt the encrypted content/, abuse: true },
  ],
  [
    "NIP-04 encrypted to another provider's key",
    () => encryptedRequest("nip04", '[["i","hi","text"]]', customer, stranger.pk),
    { answer: "error", reason: /encrypted content/, abuse: true },
  ],
  [
    "NIP-44 encrypted by someone else than the signer",
    () => encryptedRequest("nip44", '[["i","hi","text"]]', stranger, gate.pk, customer),
    { answer: "error", reason: /cannot decrypt the encrypted content/, abuse: true },
  ],
  [
    "encrypted content that is not a JSON array of tags",
    () => encryptedRequest("nip44", '{"i":"hi"}', customer, gate.pk),
    { answer: "error", reason: /not a JSON array of tags/, abuse: true },
  ],
  [
    "encrypted tags holding numbers",
    () => encryptedRequest("nip04", '[["i",1,"text"]]', customer, gate.pk),
    { answer: "error", reason: /not a JSON array of tags/, abuse: true },
  ],
  [
    "a malformed tag hidden in encrypted content",
    () => encryptedRequest("nip44", '[["param","model"]]', customer, gate.pk),
    { answer: "error", reason: /param tag needs/, abuse: true },
  ],
  [
    "an encrypted bid below the price",
    () => encryptedRequest("nip44", '[["i","hi","text"],["bid","1"]]', customer, gate.pk),
    { answer: "error", reason: /^bid below price/, abuse: false },
  ],
  [
    "an encrypted request without a p tag",
    () => sign({ kind: 5050, created_at: NOW_SEC, tags: [["encrypted"]], content: encryptFor("nip44", "[]", customer.sk, gate.pk) }, customer),
    { answer: "error", reason: /encrypted request without a p tag/, abuse: false },
  ],
];

function expectVerdict(v: JobRequestVerdict, want: Expect): void {
  expect(v.ok).toBe(false);
  if (v.ok) return;
  expect({ answer: v.answer, reason: v.reason }).toMatchObject({ answer: want.answer });
  expect(v.reason).toMatch(want.reason);
  if (want.answer === "error" && v.answer === "error") {
    expect(v.abuse).toBe(want.abuse);
    expect(v.customer).toBe(customer.pk);
    expect(v.event.pubkey).toBe(customer.pk);
  }
}

function describeWith(verifier: "pure" | "wasm") {
  describe(`checkJobRequest (${verifier} verifier)`, () => {
    it("runs with the intended verifier", async () => {
      if (verifier === "wasm") expect(await initFastVerify()).toBe(true);
      expect(activeVerifier()).toBe(verifier);
    });

    it(`has a hostile table of at least 25 cases`, () => {
      expect(hostile.length).toBeGreaterThanOrEqual(25);
    });

    it.each(hostile)("answers %s as documented", (_name, build, want) => {
      expectVerdict(checkJobRequest(build(), ctx), want);
    });

    it("tells the caller to answer an encrypted request's error in the request's own scheme", () => {
      const cases: [Event, string][] = [
        [encryptedRequest("nip44", '[["param","model"]]', customer, gate.pk), "nip44"], // decrypted, then refused
        [encryptedRequest("nip04", '[["i",1,"text"]]', customer, gate.pk), "nip04"],
        [encryptedRequest("nip44", '[["i","hi","text"]]', customer, stranger.pk), "nip44"], // undecryptable
        [
          sign(
            {
              kind: 5050,
              created_at: NOW_SEC,
              tags: [
                ["p", gate.pk],
                ["bid", "1"],
              ],
              content: "",
            },
            customer,
          ),
          "none",
        ],
      ];
      for (const [ev, scheme] of cases) {
        const v = checkJobRequest(ev, ctx);
        if (v.ok || v.answer !== "error") throw new Error(`expected an error verdict, got ${JSON.stringify(v).slice(0, 100)}`);
        expect(v.encryption).toBe(scheme);
      }
    });

    it("accepts a plain request and reads every NIP-90 field", () => {
      const ev = sign(requestTemplate(gate), customer);
      const v = checkJobRequest(ev, ctx);
      expect(v).toEqual({
        ok: true,
        request: {
          event: ev,
          id: ev.id,
          customer: customer.pk,
          kind: 5050,
          priceMsats: PRICE_MSATS,
          bidMsats: 20_000,
          inputs: [["i", "What is the capital of France?", "text"]],
          params: [["param", "model", "LLaMA-2"]],
          output: "text/plain",
          replyRelays: ["wss://relay.example.com"],
          encryption: "none",
        },
      });
    });

    it("keeps its own copy of the event, not the caller's object", () => {
      const ev = sign(requestTemplate(gate), customer);
      const v = checkJobRequest(ev, ctx);
      if (!v.ok) throw new Error(v.reason);
      expect(v.request.event).not.toBe(ev);
      ev.tags[0]![1] = "changed later";
      expect(v.request.inputs[0]![1]).toBe("What is the capital of France?");
    });

    it("accepts a request at the edges of the time window and a bid equal to the price", () => {
      for (const created_at of [NOW_SEC + 60, NOW_SEC - 900]) {
        const v = checkJobRequest(sign(withTag("bid", ["bid", String(PRICE_MSATS)], requestTemplate(gate, { created_at })), customer), ctx);
        expect(v.ok, `created_at ${created_at}`).toBe(true);
      }
    });

    it("accepts an open request with no p tag and no bid", () => {
      const v = checkJobRequest(sign(withTag("bid", null, withTag("p", null)), customer), ctx);
      expect(v.ok && v.request.bidMsats).toBe(null);
    });

    it("accepts a request whose expiration is still ahead", () => {
      expect(checkJobRequest(sign(withTag("expiration", ["expiration", String(NOW_SEC + 1)]), customer), ctx).ok).toBe(true);
    });

    it("accepts a request addressed to several DVMs including the gate", () => {
      const t = requestTemplate(gate);
      expect(checkJobRequest(sign({ ...t, tags: [["p", stranger.pk], ...t.tags] }, customer), ctx).ok).toBe(true);
    });

    it("keeps only ws(s) reply relays, deduplicated, at most 10", () => {
      const urls = ["wss://a.example", "http://b.example", "not a url", "ws://127.0.0.1:7777", "wss://a.example", "javascript:alert(1)"];
      for (let i = 0; i < 12; i++) urls.push(`wss://r${i}.example`);
      const v = checkJobRequest(sign(withTag("relays", ["relays", ...urls]), customer), ctx);
      if (!v.ok) throw new Error(v.reason);
      expect(v.request.replyRelays).toHaveLength(MAX_REPLY_RELAYS);
      expect(v.request.replyRelays.slice(0, 3)).toEqual(["wss://a.example", "ws://127.0.0.1:7777", "wss://r0.example"]);
      expect(v.request.replyRelays.every((u) => u.startsWith("ws://") || u.startsWith("wss://"))).toBe(true);
    });

    it("reads at most MAX_RELAY_URLS_READ reply relay URLs, so thousands of bad ones cost little", () => {
      const bad = Array.from({ length: MAX_RELAY_URLS_READ }, (_, i) => `https://x${i}.example`);
      const v = checkJobRequest(sign(withTag("relays", ["relays", ...bad, "wss://late.example"]), customer), ctx);
      if (!v.ok) throw new Error(v.reason);
      expect(v.request.replyRelays).toEqual([]);
      const w = checkJobRequest(sign(withTag("relays", ["relays", ...bad.slice(1), "wss://in-time.example"]), customer), ctx);
      if (!w.ok) throw new Error(w.reason);
      expect(w.request.replyRelays).toEqual(["wss://in-time.example"]);
    });

    for (const scheme of ["nip04", "nip44"] as const) {
      it(`accepts a ${scheme} encrypted request and reads its hidden i and param tags`, () => {
        const t = jobRequestTemplate(
          {
            kind: 5050,
            inputs: [["i", "secret question", "text"]],
            params: [["param", "temperature", "0.5"]],
            output: "text/plain",
            bidMsats: 15_000,
            gatePubkey: gate.pk,
            encryption: scheme,
            createdAtSec: NOW_SEC,
          },
          customer.sk,
        );
        const ev = sign(t, customer);
        expect(ev.content).not.toContain("secret question");
        expect(ev.tags.some((x) => x[0] === "i" || x[0] === "param")).toBe(false);
        const v = checkJobRequest(ev, ctx);
        if (!v.ok) throw new Error(v.reason);
        expect(v.request.encryption).toBe(scheme);
        expect(v.request.inputs).toEqual([["i", "secret question", "text"]]);
        expect(v.request.params).toEqual([["param", "temperature", "0.5"]]);
        expect(v.request.bidMsats).toBe(15_000);
      });
    }

    it("reads a bid hidden in encrypted content (NIP-90 clients may hide it too)", () => {
      const v = checkJobRequest(encryptedRequest("nip44", '[["i","hi","text"],["bid","12000"],["p","ignored"]]', customer, gate.pk), ctx);
      if (!v.ok) throw new Error(v.reason);
      expect(v.request.bidMsats).toBe(12_000);
    });
  });
}

describeWith("pure");
describeWith("wasm");
