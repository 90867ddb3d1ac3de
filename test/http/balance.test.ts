// SPEC §12 over HTTP: `GET /balance` and `POST /deposit?sats=N`, NIP-98 authenticated
// (the pubkey is the caller's own), against a real ledger, the dev wallet and the real
// server on 127.0.0.1. A deposit the cap cannot take is refused before any invoice.
import { generateSecretKey, getPublicKey } from "nostr-tools/pure";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { devPay, DevWalletBackend } from "../../src/payments/dev.js";
import { Deposits } from "../../src/service/deposits.js";
import { authHeader, SAT, signAuthEvent, snapshotTables, startHarness, type Harness } from "./harness.js";

let h: Harness;
let deposits: Deposits;
let backend: DevWalletBackend;
beforeAll(async () => {
  h = await startHarness({
    deposits: (ledger) => {
      backend = new DevWalletBackend(ledger.db);
      deposits = new Deposits({
        ledger,
        backend,
        log: pino({ level: "silent" }),
        gatePubkey: "ee".repeat(32),
        zapProviderPubkey: null,
        invoiceExpirySec: 600,
        nowMs: Date.now,
      });
      return deposits;
    },
  });
});
afterAll(async () => {
  await backend.close();
  await h.stop();
});

const customer = generateSecretKey();
// Response bodies have several shapes; the assertions below are what check them.
const json = async (r: Response): Promise<any> => r.json();
const as = (sk: Uint8Array, path: string, method = "GET") => {
  const url = `${h.server.url}${path}`;
  return fetch(url, { method, headers: { authorization: authHeader(signAuthEvent(sk, { url, method })) } });
};

describe("GET /balance", () => {
  it("answers the caller's own balance, 0 for a stranger", async () => {
    const res = await as(customer, "/balance");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ pubkey: getPublicKey(customer), balanceMsats: 0, heldMsats: 0, maxBalanceMsats: 100_000 * SAT });
  });

  it("refuses a missing or wrong token with 401 and no trace", async () => {
    const none = await fetch(`${h.server.url}/balance`);
    expect(none.status).toBe(401);
    expect((await json(none)).error).toMatch(/^unauthorized: missing Authorization/);
    const url = `${h.server.url}/balance`;
    const wrongMethod = await fetch(url, { headers: { authorization: authHeader(signAuthEvent(customer, { url, method: "POST" })) } });
    expect(wrongMethod.status).toBe(401);
    expect((await json(wrongMethod)).error).toMatch(/method tag must be GET/);
  });
});

describe("POST /deposit", () => {
  it("makes an invoice whose payment, once the backend says so, credits the caller once", async () => {
    const res = await as(customer, "/deposit?sats=21", "POST");
    expect(res.status).toBe(200);
    const body = (await res.json()) as { bolt11: string; paymentHash: string; amountMsats: number };
    expect(body).toMatchObject({ bolt11: expect.stringMatching(/^lnbcrt210n1/), amountMsats: 21 * SAT });
    // Not paid yet: nothing credited.
    await deposits.checkInvoices();
    expect(h.ledger.balance(getPublicKey(customer)).balanceMsats).toBe(0);
    devPay(h.ledger.db, body.bolt11, Date.now());
    await deposits.checkInvoices();
    await deposits.checkInvoices([body.paymentHash]);
    expect(await (await as(customer, "/balance")).json()).toMatchObject({ balanceMsats: 21 * SAT });
  });

  it("refuses a deposit over the cap before making an invoice, and bad amounts, changing nothing", async () => {
    const before = snapshotTables(h.ledger);
    const over = await as(customer, "/deposit?sats=100000", "POST");
    expect(over.status).toBe(409);
    expect((await json(over)).error).toMatch(/over the cap; room left 99979000 msats/);
    for (const [q, reason] of [
      ["", /sats is required/],
      ["?sats=0", /more than 0/],
      ["?sats=-5", /whole number of sats/],
      ["?sats=1.5", /whole number of sats/],
      ["?sats=1&sats=2", /once/],
    ] as const) {
      const res = await as(customer, `/deposit${q}`, "POST");
      expect(res.status, q).toBe(400);
      expect((await json(res)).error, q).toMatch(reason);
    }
    const get = await fetch(`${h.server.url}/deposit?sats=5`);
    expect(get.status).toBe(405);
    expect(get.headers.get("allow")).toBe("POST");
    expect(snapshotTables(h.ledger)).toEqual(before);
  });
});

describe("operator page", () => {
  it("shows the total held in customer balances", async () => {
    const html = await (await fetch(`${h.server.url}/`)).text();
    expect(html).toMatch(/customer balances/);
    expect(html).toMatch(/21,000|21000|21 sats/);
  });
});
