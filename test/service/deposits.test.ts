// SPEC §12 deposits by zap: a zap of the gate's profile credits the zap request's
// author, once per payment hash, after every NIP-57 check of §6. Each forged receipt of
// the payment tests' table, now aimed at the profile, moves no balance at all; a zap
// above the cap is credited up to it, the rest recorded and logged for a manual refund.
import { generateSecretKey, getPublicKey } from "nostr-tools/pure";
import { pino } from "pino";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { Ledger } from "../../src/ledger/ledger.js";
import { verifyLedger } from "../../src/ledger/verify.js";
import { DevWalletBackend } from "../../src/payments/dev.js";
import { Deposits } from "../../src/service/deposits.js";
import { testLedgerSettings } from "../helpers/ledger-settings.js";
import { makeTmpDir } from "../helpers/tmp.js";
import { makeZapProvider, zapReceipt, type ZapOptions } from "../helpers/zaps.js";

const SAT = 1000;
const tmp = makeTmpDir("dvm-gate-deposits-");
afterAll(() => tmp.remove());

const provider = makeZapProvider();
const gateSk = generateSecretKey();
const gatePk = getPublicKey(gateSk);
const zapperSk = generateSecretKey();
const zapper = getPublicKey(zapperSk);

let n = 0;
let ledger: Ledger;
let deposits: Deposits;
let logs: Record<string, unknown>[];

beforeEach(() => {
  ledger?.close();
  ledger = Ledger.open(tmp.file(`d-${++n}.sqlite`), testLedgerSettings({ maxBalanceMsats: 500 * SAT }), { nowMs: Date.now(), synchronous: "NORMAL" });
  logs = [];
  const log = pino({ level: "debug" }, { write: (s: string) => void logs.push(JSON.parse(s) as Record<string, unknown>) });
  deposits = new Deposits({
    ledger,
    backend: new DevWalletBackend(ledger.db),
    log,
    gatePubkey: gatePk,
    zapProviderPubkey: provider.pubkey,
    invoiceExpirySec: 600,
    nowMs: () => Date.now(),
  });
});

const zap = (o: Partial<ZapOptions> = {}) => zapReceipt(provider, { zapperSk, recipient: gatePk, amountMsats: 21 * SAT, ...o });
const booksOf = () => ({ totals: ledger.balances.totals(), deposits: ledger.db.prepare("SELECT COUNT(*) AS n FROM deposits").get() });

describe("profile zaps as deposits", () => {
  it("credits the zap request's author once per payment hash", () => {
    const { receipt } = zap();
    expect(deposits.onZapReceipt(receipt)).toBe(true);
    expect(ledger.balance(zapper)).toMatchObject({ balanceMsats: 21 * SAT, depositedMsats: 21 * SAT });
    // The same receipt again (a second relay, a restart): nothing more.
    expect(deposits.onZapReceipt(receipt)).toBe(true);
    expect(deposits.onZapReceipt({ ...receipt })).toBe(true);
    expect(ledger.balance(zapper).balanceMsats).toBe(21 * SAT);
    expect(ledger.db.prepare("SELECT source, ref FROM deposits").all()).toEqual([{ source: "zap", ref: expect.stringMatching(/^[0-9a-f]{64}$/) }]);
    expect(verifyLedger(ledger.db)).toEqual([]);
  });

  it("leaves a zap of an event (a feedback event's payment) to the job-payment path", () => {
    const { receipt } = zap({ eventId: "ab".repeat(32) });
    expect(deposits.onZapReceipt(receipt)).toBe(false);
    expect(booksOf().totals.depositedMsats).toBe(0);
  });

  it("credits a zap above the cap up to the cap and logs the rest for a manual refund", () => {
    ledger.deposit({ pubkey: zapper, amountMsats: 400 * SAT, source: "operator", ref: null, note: "t", overCap: "refuse" }, Date.now());
    const { receipt, paymentHash } = zap({ amountMsats: 150 * SAT });
    deposits.onZapReceipt(receipt);
    expect(ledger.balance(zapper).balanceMsats).toBe(500 * SAT);
    expect(ledger.db.prepare("SELECT amount_msats, excess_msats FROM deposits WHERE ref = ?").get(paymentHash)).toEqual({
      amount_msats: 100 * SAT,
      excess_msats: 50 * SAT,
    });
    expect(logs.find((l) => l.level === 40 && /refund it to the customer by hand/.test(String(l.msg)))).toMatchObject({
      excessMsats: 50 * SAT,
      customer: zapper,
      paymentHash,
    });
    // At the cap already, a further zap is recorded (payment hash spent) and credits nothing.
    const full = zap({ amountMsats: 5 * SAT });
    deposits.onZapReceipt(full.receipt);
    expect(ledger.balance(zapper).balanceMsats).toBe(500 * SAT);
    expect(ledger.balances.totals().excessMsats).toBe(55 * SAT);
    expect(verifyLedger(ledger.db)).toEqual([]);
  });

  const someoneElse = getPublicKey(generateSecretKey());
  const forged: [string, () => { receipt: unknown }, RegExp][] = [
    ["signed by another key than the provider", () => zap({ signer: generateSecretKey() }), /not signed by the configured LNURL provider/],
    ["receipt altered after signing", () => zap({ tamperReceipt: (r) => void (r.created_at += 1) }), /receipt signature does not verify/],
    [
      "receipt signature broken",
      () => zap({ tamperReceipt: (r) => void (r.sig = (r.sig[0] === "0" ? "1" : "0") + r.sig.slice(1)) }),
      /receipt signature does not verify/,
    ],
    ["zap request altered after signing", () => zap({ tamperRequest: (zr) => void (zr.content = "changed") }), /zap request signature does not verify/],
    ["bolt11 commits to another description", () => zap({ hashedDescription: "another zap request" }), /description hash does not match/],
    ["amount tag differs from the bolt11", () => zap({ amountTag: String(1000 * SAT) }), /amount tag does not match/],
    ["zap paid someone else at the same provider", () => zap({ recipient: someoneElse }), /not addressed to the gate/],
    ["not a zap receipt at all", () => ({ receipt: { kind: 9735, tags: [] } }), /not a zap receipt/],
  ];
  it.each(forged)("moves no balance for a forged profile zap: %s", (_name, make, reason) => {
    const before = booksOf();
    const { receipt } = make();
    deposits.onZapReceipt(receipt as never);
    expect(booksOf()).toEqual(before);
    expect(ledger.balance(zapper).balanceMsats).toBe(0);
    expect(ledger.balance(someoneElse).balanceMsats).toBe(0);
    expect(logs.find((l) => l.msg === "profile zap not credited")?.why).toMatch(reason);
  });

  it("moves no balance for a payment hash already used to pay a job or credited before", () => {
    const first = zap();
    deposits.onZapReceipt(first.receipt);
    const before = booksOf();
    // A new receipt (new zap request, same payment hash): a replay of one payment.
    const replay = zap({ paymentHash: first.paymentHash, amountMsats: 99 * SAT });
    deposits.onZapReceipt(replay.receipt);
    expect(booksOf()).toEqual(before);
    expect(logs.filter((l) => l.msg === "profile zap not credited").map((l) => l.why)).toEqual(["payment hash was already used"]);
  });
});

describe("deposit invoices (POST /deposit)", () => {
  it("credits a paid invoice once, from the backend's lookup, and refuses one over the cap before making it", async () => {
    const backend = new DevWalletBackend(ledger.db);
    const d = new Deposits({
      ledger,
      backend,
      log: pino({ level: "silent" }),
      gatePubkey: gatePk,
      zapProviderPubkey: null,
      invoiceExpirySec: 600,
      nowMs: () => Date.now(),
    });
    const over = await d.createInvoice(zapper, 501 * SAT);
    expect(over).toEqual({ status: "over_cap", roomMsats: 500 * SAT });
    expect(ledger.db.prepare("SELECT COUNT(*) AS n FROM dev_wallet_invoices").get()).toEqual({ n: 0 });

    const made = await d.createInvoice(zapper, 30 * SAT);
    if (made.status !== "created") throw new Error("expected an invoice");
    // Unpaid: looking it up credits nothing.
    await d.checkInvoices();
    expect(ledger.balance(zapper).balanceMsats).toBe(0);
    const { devPay } = await import("../../src/payments/dev.js");
    devPay(ledger.db, made.bolt11, Date.now());
    await d.checkInvoices();
    await d.checkInvoices([made.paymentHash]);
    expect(ledger.balance(zapper)).toMatchObject({ balanceMsats: 30 * SAT, depositedMsats: 30 * SAT });
    expect(ledger.db.prepare("SELECT state FROM deposit_invoices").get()).toEqual({ state: "paid" });
    expect(verifyLedger(ledger.db)).toEqual([]);
    await backend.close();
  });
});
