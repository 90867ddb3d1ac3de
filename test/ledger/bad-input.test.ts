// Bad input to the ledger gets a LedgerInputError with a message naming what was wrong,
// and writes nothing: every table is dumped before and after each refused call.
import Database from "better-sqlite3";
import { nip19 } from "nostr-tools";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Ledger, LedgerInputError } from "../../src/ledger/ledger.js";
import { testLedgerSettings } from "../helpers/ledger-settings.js";
import { verifyLedger } from "../../src/ledger/verify.js";
import { MAX_MSATS } from "../../src/util/money.js";
import { makeTmpDir } from "../helpers/tmp.js";

const SAT = 1000;
const T0 = Date.UTC(2026, 3, 1);

const settings = testLedgerSettings();

function dump(db: Database.Database): Record<string, unknown[]> {
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[];
  return Object.fromEntries(tables.map(({ name }) => [name, db.prepare(`SELECT * FROM "${name}"`).all()]));
}

const PK = "c".repeat(64);
const OPEN_FREE = "1".repeat(64); // processing, with a pending reservation
const OPEN_GATE = "2".repeat(64); // awaiting payment

const badAmounts: [string, unknown][] = [
  ["negative", -1],
  ["fractional", 1.5],
  ["NaN", NaN],
  ["Infinity", Infinity],
  ["-Infinity", -Infinity],
  ["above MAX_MSATS", MAX_MSATS + 1],
  ["unsafe integer", 2 ** 60],
  ["a string", "1000"],
  ["a bigint", 1000n],
];
const badHex: [string, unknown][] = [
  ["short", "abc123"],
  ["uppercase", "AB".repeat(32)],
  ["non-hex", "zz".repeat(32)],
  ["65 characters", "a".repeat(65)],
  ["padded", ` ${"a".repeat(63)}`],
  ["an npub", nip19.npubEncode("d".repeat(64))],
  ["empty", ""],
  ["a number", 12345],
  ["null", null],
];
const badTiers: unknown[] = ["superstar", "Elite", "banned", "", 3];
const badNows: unknown[] = [-1, 1.5, NaN, Infinity, "now", null];

describe("bad input to the ledger", () => {
  const tmp = makeTmpDir("dvm-gate-badinput-");
  let ledger: Ledger;
  let before: Record<string, unknown[]>;

  beforeAll(() => {
    ledger = Ledger.open(tmp.file("ledger.sqlite"), settings, { nowMs: T0, synchronous: "NORMAL" });
    ledger.setTier(PK, "established", T0);
    ledger.decide({ requestId: OPEN_FREE, pubkey: PK, kind: 5050, priceMsats: 10 * SAT }, T0);
    ledger.decide({ requestId: OPEN_GATE, pubkey: "e".repeat(64), kind: 5050, priceMsats: 10 * SAT }, T0);
    ledger.credit(5 * SAT, "operator", "seed", T0);
    before = dump(ledger.db);
    expect(ledger.getRequest(OPEN_FREE)!.state).toBe("processing");
    expect(ledger.getRequest(OPEN_GATE)!.state).toBe("awaiting-payment");
  });
  afterAll(() => {
    ledger.close();
    tmp.remove();
  });

  /** The call is refused with a LedgerInputError naming `what`, and no row anywhere changed. */
  function refuses(call: () => unknown, what: RegExp): void {
    let caught: unknown = null;
    try {
      call();
    } catch (err) {
      caught = err;
    }
    expect(caught, "expected a LedgerInputError").toBeInstanceOf(LedgerInputError);
    expect((caught as Error).message).toMatch(what);
    expect((caught as Error).message.length).toBeLessThan(200);
    expect(dump(ledger.db)).toEqual(before);
  }

  const req = (over: Record<string, unknown>) => ({ requestId: "9".repeat(64), pubkey: PK, kind: 5050, priceMsats: 10 * SAT, ...over }) as never;

  for (const [name, v] of badAmounts) {
    it(`refuses a price that is ${name}`, () => refuses(() => ledger.decide(req({ priceMsats: v }), T0), /^price: expected whole millisats/));
    it(`refuses a payment that is ${name}`, () =>
      refuses(() => ledger.markPaid(OPEN_GATE, { paidMsats: v as number, paymentRef: "r" }, T0), /^paid amount: expected whole millisats/));
    it(`refuses an actual cost that is ${name}`, () =>
      refuses(() => ledger.settle(OPEN_FREE, { actualMsats: v as number }, T0), /^actual cost: expected whole millisats/));
    it(`refuses a pool credit that is ${name}`, () => refuses(() => ledger.credit(v as number, "operator", null, T0), /^credit: expected whole millisats/));
  }
  it("refuses a pool credit of 0", () => refuses(() => ledger.credit(0, "operator", null, T0), /^credit: must be more than 0/));

  for (const [name, v] of badHex) {
    it(`refuses a pubkey that is ${name}`, () => {
      refuses(() => ledger.decide(req({ pubkey: v }), T0), /^pubkey: expected 64 lowercase hex/);
      refuses(() => ledger.setTier(v as string, "elite", T0), /^pubkey: expected 64 lowercase hex/);
      refuses(() => ledger.setBanned(v as string, true, null, T0), /^pubkey: expected 64 lowercase hex/);
      refuses(() => ledger.recordAbuse(v as string, "x", T0), /^pubkey: expected 64 lowercase hex/);
      refuses(() => ledger.setWotFloor(v as string, "elite", "x", T0), /^pubkey: expected 64 lowercase hex/);
      refuses(() => ledger.identity(v as string, T0), /^pubkey: expected 64 lowercase hex/);
      refuses(() => ledger.grants({ pubkey: v as string }), /^pubkey: expected 64 lowercase hex/);
    });
    it(`refuses a request id that is ${name}`, () => {
      refuses(() => ledger.decide(req({ requestId: v }), T0), /^request id: expected 64 lowercase hex/);
      refuses(() => ledger.markPaid(v as string, { paidMsats: 10 * SAT, paymentRef: "r" }, T0), /^request id: expected 64 lowercase hex/);
      refuses(() => ledger.settle(v as string, {}, T0), /^request id: expected 64 lowercase hex/);
      refuses(() => ledger.fail(v as string, "x", T0), /^request id: expected 64 lowercase hex/);
    });
  }

  for (const t of badTiers) {
    it(`refuses the unknown tier ${JSON.stringify(t)}`, () => {
      refuses(() => ledger.setTier(PK, t as never, T0), /^tier: expected one of new, established, trusted, elite/);
      refuses(() => ledger.setWotFloor(PK, t as never, "x", T0), /^tier: expected one of new, established, trusted, elite/);
    });
  }

  for (const k of [-1, 1.5, 70_000, "5050"])
    it(`refuses the event kind ${JSON.stringify(k)}`, () => refuses(() => ledger.decide(req({ kind: k }), T0), /^kind: expected an event kind/));

  for (const now of badNows) {
    it(`refuses the clock reading ${String(now)}`, () => {
      const n = now as number;
      refuses(() => ledger.decide(req({}), n), /^nowMs: /);
      refuses(() => ledger.markPaid(OPEN_GATE, { paidMsats: 10 * SAT, paymentRef: "r" }, n), /^nowMs: /);
      refuses(() => ledger.settle(OPEN_FREE, {}, n), /^nowMs: /);
      refuses(() => ledger.fail(OPEN_FREE, "x", n), /^nowMs: /);
      refuses(() => ledger.expire(n), /^nowMs: /);
      refuses(() => ledger.credit(1000, "operator", null, n), /^nowMs: /);
      refuses(() => ledger.setTier(PK, "elite", n), /^nowMs: /);
    });
  }

  it("refuses a payment reference that is empty, too long or not text", () => {
    for (const ref of ["", "x".repeat(201), 42, null])
      refuses(() => ledger.markPaid(OPEN_GATE, { paidMsats: 10 * SAT, paymentRef: ref as string }, T0), /^payment reference: /);
  });

  it("refuses an abuse count that is not a whole number 1–1000", () => {
    for (const times of [0, -1, 1.5, 1001, NaN]) refuses(() => ledger.recordAbuse(PK, "x", T0, times), /^times: expected a whole number/);
  });

  it("refuses a grants page that is not a number", () => {
    for (const bad of [NaN, "ten", -1, 1.5]) refuses(() => ledger.grants({ limit: bad as number }), /^limit: /);
    for (const bad of [NaN, -3]) refuses(() => ledger.grants({ afterSeq: bad }), /^afterSeq: /);
  });

  it("is still a sound ledger after every refusal", () => {
    expect(dump(ledger.db)).toEqual(before);
    expect(verifyLedger(ledger.db)).toEqual([]);
  });
});
