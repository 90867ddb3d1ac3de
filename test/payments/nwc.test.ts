import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { generateSecretKey, getPublicKey } from "nostr-tools/pure";
import { startEmbeddedRelay, type EmbeddedRelay } from "../../src/peers/embedded-relay.js";
import { decodeBolt11 } from "../../src/payments/bolt11.js";
import { NwcBackend, parseNwcUri } from "../../src/payments/nwc.js";
import { PaymentBackendError } from "../../src/payments/types.js";
import { startNwcWalletService, type NwcWalletService, type NwcWalletServiceOptions } from "../helpers/nwc-wallet-service.js";

async function until(cond: () => boolean, limitMs = 5_000): Promise<void> {
  for (let waited = 0; !cond(); waited += 20) {
    if (waited >= limitMs) throw new Error("condition not reached");
    await new Promise((r) => setTimeout(r, 20));
  }
}

const req = (amountMsats: number) => ({ amountMsats, description: "dvm-gate job", expirySec: 600, requestId: "a".repeat(64) });

describe("NWC backend against a NIP-47 wallet service on a real relay", () => {
  let relay: EmbeddedRelay;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    relay = await startEmbeddedRelay();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  afterAll(async () => {
    await relay.close();
  });

  async function setup(
    wallet: Omit<NwcWalletServiceOptions, "relayUrl">,
    backend: { requestTimeoutMs?: number } = {},
  ): Promise<{ svc: NwcWalletService; nwc: NwcBackend }> {
    const svc = await startNwcWalletService({ relayUrl: relay.url, ...wallet });
    cleanups.push(() => svc.close());
    const nwc = new NwcBackend({ uri: svc.uri, requestTimeoutMs: backend.requestTimeoutMs ?? 5_000, connectTimeoutMs: 2_000 });
    cleanups.push(() => nwc.close());
    return { svc, nwc };
  }

  for (const scheme of ["nip44_v2", "nip04"] as const) {
    it(`make_invoice over ${scheme} returns a valid bolt11 for the amount`, async () => {
      const { svc, nwc } = await setup({ encryption: [scheme] });
      const inv = await nwc.createInvoice(req(12_345));
      const d = decodeBolt11(inv.bolt11);
      expect(d.amountMsats).toBe(12_345);
      expect(d.paymentHash).toBe(inv.paymentHash);
      expect(d.description).toBe("dvm-gate job");
      expect(inv.expiresAtMs).toBe(d.expiresAtMs);
      expect(svc.requests).toEqual([{ method: "make_invoice", encryption: scheme, params: { amount: 12_345, description: "dvm-gate job", expiry: 600 } }]);
    });
  }

  it("prefers NIP-44 when the wallet offers both", async () => {
    const { svc, nwc } = await setup({ encryption: ["nip44_v2", "nip04"] });
    await nwc.createInvoice(req(1000));
    expect(svc.requests.map((r) => r.encryption)).toEqual(["nip44_v2"]);
  });

  it("falls back to NIP-04 for a wallet whose info event has no encryption tag", async () => {
    const { svc, nwc } = await setup({ encryption: ["nip04"], advertiseEncryption: false });
    const inv = await nwc.createInvoice(req(2000));
    expect(decodeBolt11(inv.bolt11).amountMsats).toBe(2000);
    expect(svc.requests.map((r) => r.encryption)).toEqual(["nip04"]);
  });

  it("looks up pending, then settled after the wallet receives the payment", async () => {
    const { svc, nwc } = await setup({ encryption: ["nip44_v2"] });
    const inv = await nwc.createInvoice(req(7_000));
    expect(await nwc.lookupInvoice(inv.paymentHash)).toEqual({ state: "pending" });
    await svc.receivePayment(inv.paymentHash);
    const settledAtSec = svc.invoices.get(inv.paymentHash)!.settledAtSec!;
    expect(await nwc.lookupInvoice(inv.paymentHash)).toEqual({ state: "settled", amountMsats: 7_000, settledAtMs: settledAtSec * 1000 });
  });

  it("does not believe a held (accepted) payment, nor a wallet that gives no state", async () => {
    const { svc, nwc } = await setup({ encryption: ["nip44_v2"] });
    const inv = await nwc.createInvoice(req(4_000));
    svc.acceptPayment(inv.paymentHash);
    expect(await nwc.lookupInvoice(inv.paymentHash)).toEqual({ state: "pending" });

    const legacy = await setup({ encryption: ["nip44_v2"], omitState: true });
    const old = await legacy.nwc.createInvoice(req(4_000));
    await legacy.svc.receivePayment(old.paymentHash);
    expect(await legacy.nwc.lookupInvoice(old.paymentHash)).toEqual({ state: "pending" });
  });

  for (const scheme of ["nip44_v2", "nip04"] as const) {
    it(`a payment_received notification (${scheme === "nip44_v2" ? 23197 : 23196}) triggers the hint`, async () => {
      const { svc, nwc } = await setup({ encryption: [scheme] });
      const hints: string[] = [];
      nwc.onPaymentHint((h) => hints.push(h));
      const inv = await nwc.createInvoice(req(3_000));
      expect(hints).toEqual([]);
      await svc.receivePayment(inv.paymentHash);
      await until(() => hints.length >= 1);
      expect(hints).toEqual([inv.paymentHash]);
    });
  }

  it("turns a wallet error into a PaymentBackendError carrying the wallet's code and message", async () => {
    const { nwc } = await setup({ encryption: ["nip44_v2"], errors: { make_invoice: { code: "QUOTA_EXCEEDED", message: "daily invoice quota reached" } } });
    const err = await nwc.createInvoice(req(1000)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PaymentBackendError);
    expect((err as Error).message).toMatch(/QUOTA_EXCEEDED: daily invoice quota reached/);
  });

  it("reports an unknown payment hash with the wallet's NOT_FOUND", async () => {
    const { nwc } = await setup({ encryption: ["nip44_v2"] });
    await expect(nwc.lookupInvoice("ab".repeat(32))).rejects.toThrow(/NOT_FOUND/);
  });

  it("times out, bounded, when the wallet never answers", async () => {
    const { svc, nwc } = await setup({ encryption: ["nip44_v2"], answer: false }, { requestTimeoutMs: 300 });
    await expect(nwc.createInvoice(req(1000))).rejects.toThrow(/did not answer make_invoice within 300 ms/);
    // The wallet did receive the request: the timeout is about the answer.
    expect(svc.requests.map((r) => r.method)).toEqual(["make_invoice"]);
  });

  it("refuses a method the wallet does not offer without sending it", async () => {
    const { svc, nwc } = await setup({ encryption: ["nip44_v2"], methods: ["make_invoice"] });
    await expect(nwc.lookupInvoice("ab".repeat(32))).rejects.toThrow(/does not offer lookup_invoice/);
    expect(svc.requests).toEqual([]);
  });

  it("says clearly when the wallet has no info event on the relay", async () => {
    const nobody = getPublicKey(generateSecretKey());
    const secret = Buffer.from(generateSecretKey()).toString("hex");
    const nwc = new NwcBackend({ uri: `nostr+walletconnect://${nobody}?relay=${encodeURIComponent(relay.url)}&secret=${secret}`, connectTimeoutMs: 500 });
    cleanups.push(() => nwc.close());
    await expect(nwc.createInvoice(req(1000))).rejects.toThrow(/no info event \(kind 13194\)/);
  });
});

describe("parseNwcUri", () => {
  const pk = "b".repeat(64);
  const secret = "c".repeat(64);

  it("reads the wallet pubkey, relays and secret", () => {
    const c = parseNwcUri(`nostr+walletconnect://${pk}?relay=wss%3A%2F%2Fr1.example&relay=ws://127.0.0.1:7777&secret=${secret}`);
    expect(c.walletPubkey).toBe(pk);
    expect(c.relays).toEqual(["wss://r1.example", "ws://127.0.0.1:7777"]);
    expect(Buffer.from(c.secretKey).toString("hex")).toBe(secret);
  });

  it("refuses malformed URIs without echoing the secret", () => {
    const bad = [
      `nostr+walletconnect://${pk}?relay=wss://r.example`,
      `nostr+walletconnect://${pk}?secret=${secret}`,
      `nostr+walletconnect://short?relay=wss://r.example&secret=${secret}`,
      `nostr+walletconnect://${pk}?relay=https://r.example&secret=${secret}`,
      `nostr+walletconnect://${pk}?relay=wss://r.example&secret=${secret.slice(2)}`,
      "not a uri",
    ];
    for (const uri of bad) {
      let message = "";
      try {
        parseNwcUri(uri);
      } catch (err) {
        expect(err).toBeInstanceOf(PaymentBackendError);
        message = (err as Error).message;
      }
      expect(message).toMatch(/^payments\.nwc\.uri/);
      expect(message).not.toContain(secret.slice(4, 20));
    }
  });
});
