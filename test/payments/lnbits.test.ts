import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { decodeBolt11 } from "../../src/payments/bolt11.js";
import { LnbitsBackend } from "../../src/payments/lnbits.js";
import { PaymentBackendError } from "../../src/payments/types.js";
import { startFakeLnbits, type FakeLnbits } from "../helpers/lnbits-server.js";

async function until(cond: () => boolean, limitMs = 5_000): Promise<void> {
  for (let waited = 0; !cond(); waited += 20) {
    if (waited >= limitMs) throw new Error("condition not reached");
    await new Promise((r) => setTimeout(r, 20));
  }
}

const req = (amountMsats: number) => ({ amountMsats, description: "dvm-gate job", expirySec: 600, requestId: "a".repeat(64) });

describe("LNbits backend", () => {
  let server: FakeLnbits;
  let backend: LnbitsBackend;

  beforeEach(async () => {
    server = await startFakeLnbits();
    backend = new LnbitsBackend({ url: server.url + "/", invoiceKey: server.invoiceKey, pollMs: 20 });
  });
  afterEach(async () => {
    await backend.close();
    await server.close();
  });

  it("creates an invoice for whole sats that decodes to the charge", async () => {
    const inv = await backend.createInvoice(req(21_000));
    const d = decodeBolt11(inv.bolt11);
    expect(d.amountMsats).toBe(21_000);
    expect(d.paymentHash).toBe(inv.paymentHash);
    expect(d.description).toBe("dvm-gate job");
    expect(inv.expiresAtMs).toBe(d.expiresAtMs);
    expect(server.invoices.get(inv.paymentHash)?.amountMsats).toBe(21_000);
  });

  it("refuses a charge that is not a whole number of sats, without calling LNbits", async () => {
    const before = server.requestCount();
    await expect(backend.createInvoice(req(21_500))).rejects.toThrow(/not a whole number of sats/);
    await expect(backend.createInvoice(req(1))).rejects.toBeInstanceOf(PaymentBackendError);
    expect(server.requestCount()).toBe(before);
    expect(server.invoices.size).toBe(0);
  });

  it("reports pending until LNbits says paid, then settled with the amount", async () => {
    const inv = await backend.createInvoice(req(5_000));
    expect(await backend.lookupInvoice(inv.paymentHash)).toEqual({ state: "pending" });
    server.pay(inv.paymentHash);
    const s = await backend.lookupInvoice(inv.paymentHash);
    expect(s.state).toBe("settled");
    if (s.state === "settled") expect(s.amountMsats).toBe(5_000);
  });

  it("turns a wrong key into a PaymentBackendError naming the 401", async () => {
    const wrong = new LnbitsBackend({ url: server.url, invoiceKey: "not-the-key" });
    try {
      await expect(wrong.createInvoice(req(1000))).rejects.toThrow(/401.*invoiceKey/);
      await expect(wrong.lookupInvoice("ab".repeat(32))).rejects.toBeInstanceOf(PaymentBackendError);
      expect(server.invoices.size).toBe(0);
    } finally {
      await wrong.close();
    }
  });

  it("reports an unknown payment hash as LNbits' 404 and refuses a malformed hash locally", async () => {
    await expect(backend.lookupInvoice("cd".repeat(32))).rejects.toThrow(/404.*does not exist/);
    const before = server.requestCount();
    await expect(backend.lookupInvoice("../../etc")).rejects.toThrow(/64 hex/);
    expect(server.requestCount()).toBe(before);
  });

  it("times out, bounded, when LNbits does not answer", async () => {
    const slow = new LnbitsBackend({ url: server.url, invoiceKey: server.invoiceKey, timeoutMs: 200 });
    server.setHang(true);
    try {
      await expect(slow.createInvoice(req(1000))).rejects.toThrow(/did not answer .* within 200 ms/);
    } finally {
      await slow.close();
    }
  });

  it("reports an unreachable LNbits clearly", async () => {
    const url = server.url;
    await server.close();
    const gone = new LnbitsBackend({ url, invoiceKey: "k" });
    await expect(gone.createInvoice(req(1000))).rejects.toThrow(/LNbits unreachable/);
    server = await startFakeLnbits(); // for afterEach
  });

  it("hints a payment of an invoice it created by polling lookups", async () => {
    const a = await backend.createInvoice(req(1000));
    const b = await backend.createInvoice(req(2000));
    const c = await backend.createInvoice(req(3000));
    const hints: string[] = [];
    const stop = backend.onPaymentHint((h) => hints.push(h));
    server.pay(b.paymentHash);
    await until(() => hints.length >= 1);
    // The control: c paid after b's hint is hinted by a later round of lookups; had b
    // still been polled, that round would have hinted it again first.
    server.pay(c.paymentHash);
    await until(() => hints.includes(c.paymentHash));
    stop();
    // Once settled it is no longer polled, so it is hinted once; a is still open.
    expect(hints).toEqual([b.paymentHash, c.paymentHash]);
    expect(await backend.lookupInvoice(a.paymentHash)).toEqual({ state: "pending" });
  });
});
