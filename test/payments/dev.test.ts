import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { openDb, type Db } from "../../src/ledger/db.js";
import { decodeBolt11, encodeBolt11 } from "../../src/payments/bolt11.js";
import { DEV_NODE_SECRET_KEY, DevWalletBackend, devPay } from "../../src/payments/dev.js";
import { PaymentBackendError } from "../../src/payments/types.js";
import { makeTmpDir, type TmpDir } from "../helpers/tmp.js";

const T0 = Date.UTC(2030, 0, 1);

function rowCount(db: Db): { total: number; paid: number } {
  return db.prepare("SELECT count(*) AS total, count(paid_at_ms) AS paid FROM dev_wallet_invoices").get() as { total: number; paid: number };
}

async function until(cond: () => boolean, limitMs = 5_000): Promise<void> {
  for (let waited = 0; !cond(); waited += 20) {
    if (waited >= limitMs) throw new Error("condition not reached");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("dev wallet", () => {
  let tmp: TmpDir;
  let db: Db;
  let nowMs = T0;
  let wallet: DevWalletBackend;

  beforeEach(() => {
    tmp = makeTmpDir();
    db = openDb(tmp.file("dev.sqlite"));
    nowMs = T0;
    wallet = new DevWalletBackend(db, { nowMs: () => nowMs, pollMs: 20 });
  });
  afterEach(async () => {
    await wallet.close();
    db.close();
    tmp.remove();
  });

  it("issues a signed regtest bolt11 that decodes to the amount, hash, description and expiry", async () => {
    const inv = await wallet.createInvoice({ amountMsats: 10_500, description: "job 5050", expirySec: 600, requestId: "a".repeat(64) });
    expect(inv.bolt11.startsWith("lnbcrt")).toBe(true);
    const d = decodeBolt11(inv.bolt11);
    expect(d.paymentHash).toBe(inv.paymentHash);
    expect(d.amountMsats).toBe(10_500);
    expect(d.description).toBe("job 5050");
    expect(d.network).toBe("bcrt");
    expect(d.expiresAtMs).toBe(inv.expiresAtMs);
    expect(inv.expiresAtMs).toBe(T0 + 600_000);
    // The signature verified inside decode; the recovered payee is the dev node key.
    const other = encodeBolt11({
      network: "bcrt",
      amountMsats: 1,
      paymentHash: "0".repeat(64),
      description: "x",
      createdAtSec: T0 / 1000,
      expirySec: 60,
      nodeSecretKey: DEV_NODE_SECRET_KEY,
    });
    expect(decodeBolt11(other).payeePubkey).toBe(d.payeePubkey);
    expect(rowCount(db)).toEqual({ total: 1, paid: 0 });
  });

  it("uses a fresh random preimage per invoice", async () => {
    const hashes = new Set<string>();
    for (let i = 0; i < 20; i++)
      hashes.add((await wallet.createInvoice({ amountMsats: 1000, description: "d", expirySec: 60, requestId: "b".repeat(64) })).paymentHash);
    expect(hashes.size).toBe(20);
  });

  it("hashes a description longer than BOLT 11 allows instead of truncating it", async () => {
    const long = "x".repeat(1000);
    const inv = await wallet.createInvoice({ amountMsats: 1000, description: long, expirySec: 60, requestId: "c".repeat(64) });
    const d = decodeBolt11(inv.bolt11);
    expect(d.description).toBeNull();
    expect(d.descriptionHash).toBe(createHash("sha256").update(long).digest("hex"));
  });

  it("refuses amounts that are not whole positive msats", async () => {
    for (const amountMsats of [0, -1, 1.5, Number.MAX_SAFE_INTEGER + 2]) {
      await expect(wallet.createInvoice({ amountMsats, description: "d", expirySec: 60, requestId: "d".repeat(64) })).rejects.toBeInstanceOf(
        PaymentBackendError,
      );
    }
    expect(rowCount(db).total).toBe(0);
  });

  it("looks up pending, then settled once dev-paid", async () => {
    const inv = await wallet.createInvoice({ amountMsats: 21_000, description: "d", expirySec: 600, requestId: "e".repeat(64) });
    expect(await wallet.lookupInvoice(inv.paymentHash)).toEqual({ state: "pending" });
    const r = devPay(db, inv.bolt11, T0 + 5_000);
    expect(r).toEqual({ status: "paid", paymentHash: inv.paymentHash, amountMsats: 21_000 });
    expect(await wallet.lookupInvoice(inv.paymentHash)).toEqual({ state: "settled", amountMsats: 21_000, settledAtMs: T0 + 5_000 });
  });

  it("pays idempotently: the second payment changes nothing", async () => {
    const inv = await wallet.createInvoice({ amountMsats: 3000, description: "d", expirySec: 600, requestId: "f".repeat(64) });
    expect(devPay(db, inv.bolt11, T0 + 1).status).toBe("paid");
    const again = devPay(db, inv.bolt11, T0 + 9_999);
    expect(again.status).toBe("already_paid");
    expect(again.amountMsats).toBe(3000);
    expect(await wallet.lookupInvoice(inv.paymentHash)).toEqual({ state: "settled", amountMsats: 3000, settledAtMs: T0 + 1 });
  });

  it("reports expired and refuses to pay an expired invoice", async () => {
    const inv = await wallet.createInvoice({ amountMsats: 1000, description: "d", expirySec: 60, requestId: "1".repeat(64) });
    nowMs = T0 + 60_000;
    expect(await wallet.lookupInvoice(inv.paymentHash)).toEqual({ state: "expired" });
    const r = devPay(db, inv.bolt11, T0 + 60_000);
    expect(r.status).toBe("expired");
    expect(r.reason).toMatch(/expired/);
    expect(rowCount(db).paid).toBe(0);
  });

  it("refuses garbage, foreign invoices and re-signed hashes, changing nothing", async () => {
    const inv = await wallet.createInvoice({ amountMsats: 5000, description: "d", expirySec: 600, requestId: "2".repeat(64) });
    const garbage = devPay(db, "lnbcrt1garbage", T0);
    expect(garbage.status).toBe("invalid");
    expect(garbage.reason).toMatch(/^invalid bolt11/);
    expect(devPay(db, "", T0).status).toBe("invalid");
    // A bolt11 with one character changed fails its checksum.
    const flipped = inv.bolt11.slice(0, -8) + (inv.bolt11.at(-8) === "q" ? "p" : "q") + inv.bolt11.slice(-7);
    expect(devPay(db, flipped, T0).status).toBe("invalid");
    const foreign = encodeBolt11({
      network: "bcrt",
      amountMsats: 5000,
      paymentHash: "ab".repeat(32),
      description: "d",
      createdAtSec: T0 / 1000,
      expirySec: 600,
      nodeSecretKey: DEV_NODE_SECRET_KEY,
    });
    expect(devPay(db, foreign, T0).status).toBe("unknown");
    // Our payment hash in an invoice for 1 msat: not the invoice the wallet issued.
    const resigned = encodeBolt11({
      network: "bcrt",
      amountMsats: 1,
      paymentHash: inv.paymentHash,
      description: "d",
      createdAtSec: T0 / 1000,
      expirySec: 600,
      nodeSecretKey: DEV_NODE_SECRET_KEY,
    });
    expect(devPay(db, resigned, T0).status).toBe("invalid");
    expect(rowCount(db)).toEqual({ total: 1, paid: 0 });
    expect(await wallet.lookupInvoice(inv.paymentHash)).toEqual({ state: "pending" });
  });

  it("accepts an upper-case or lightning:-prefixed copy of its invoice", async () => {
    const inv = await wallet.createInvoice({ amountMsats: 2000, description: "d", expirySec: 600, requestId: "3".repeat(64) });
    expect(devPay(db, "lightning:" + inv.bolt11.toUpperCase(), T0).status).toBe("paid");
  });

  it("looking up an unknown payment hash is an error, not a state", async () => {
    await expect(wallet.lookupInvoice("cd".repeat(32))).rejects.toThrow(PaymentBackendError);
  });

  it("hints each payment once, including payments made through another connection", async () => {
    const a = await wallet.createInvoice({ amountMsats: 1000, description: "a", expirySec: 600, requestId: "4".repeat(64) });
    const b = await wallet.createInvoice({ amountMsats: 2000, description: "b", expirySec: 600, requestId: "5".repeat(64) });
    const hints: string[] = [];
    const stop = wallet.onPaymentHint((h) => hints.push(h));
    const otherConnection = openDb(tmp.file("dev.sqlite"));
    try {
      expect(devPay(otherConnection, a.bolt11, Date.now()).status).toBe("paid");
      await until(() => hints.length >= 1);
      expect(devPay(otherConnection, b.bolt11, Date.now()).status).toBe("paid");
      await until(() => hints.length >= 2);
      // The control: a third payment, hinted only by a poll tick after b's. Had a tick
      // repeated a or b, the repeat would stand before it.
      const c = await wallet.createInvoice({ amountMsats: 3000, description: "c", expirySec: 600, requestId: "8".repeat(64) });
      expect(devPay(otherConnection, c.bolt11, Date.now()).status).toBe("paid");
      await until(() => hints.includes(c.paymentHash));
      expect(hints).toEqual([a.paymentHash, b.paymentHash, c.paymentHash]);
    } finally {
      stop();
      otherConnection.close();
    }
  });

  it("does not hint payments made before the subscription", async () => {
    const a = await wallet.createInvoice({ amountMsats: 1000, description: "a", expirySec: 600, requestId: "6".repeat(64) });
    const b = await wallet.createInvoice({ amountMsats: 1000, description: "b", expirySec: 600, requestId: "7".repeat(64) });
    devPay(db, a.bolt11, Date.now());
    const hints: string[] = [];
    const stop = wallet.onPaymentHint((h) => hints.push(h));
    devPay(db, b.bolt11, Date.now());
    await until(() => hints.length >= 1);
    // The control: a payment after b, hinted by a later tick than b's.
    const c = await wallet.createInvoice({ amountMsats: 1000, description: "c", expirySec: 600, requestId: "9".repeat(64) });
    devPay(db, c.bolt11, Date.now());
    await until(() => hints.includes(c.paymentHash));
    stop();
    expect(hints).toEqual([b.paymentHash, c.paymentHash]);
  });
});

describe("decodeBolt11", () => {
  it("decodes a BOLT 11 spec vector (mainnet, 2500u) with its signature", () => {
    const spec =
      "lnbc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpuaztrnwngzn3kdzw5hydlzf03qdgm2hdq27cqv3agm2awhz5se903vruatfhq77w3ls4evs3ch9zw97j25emudupq63nyw24cg27h2rspfj9srp";
    const d = decodeBolt11(spec);
    expect(d.amountMsats).toBe(250_000_000);
    expect(d.network).toBe("bc");
    expect(d.description).toBe("1 cup coffee");
    expect(d.paymentHash).toBe("0001020304050607080900010203040506070809000102030405060708090102");
    expect(d.expiresAtMs).toBe((1496314658 + 60) * 1000);
    expect(d.payeePubkey).toBe("03e7156ae33b0a208d0744199163177e909e80176e55d97a2f221ede0f934dd9ad");
  });

  it("throws PaymentBackendError with 'invalid bolt11' for garbage", () => {
    for (const bad of ["", "hello", "lnbc1", "x".repeat(5000), "lnbc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypq"]) {
      expect(() => decodeBolt11(bad)).toThrow(/^invalid bolt11/);
      expect(() => decodeBolt11(bad)).toThrow(PaymentBackendError);
    }
  });
});
