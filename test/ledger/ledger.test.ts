// Focused behaviour of the ledger and the free-tier decision (SPEC §2, §3, §5), one
// promise per test, each against a fresh SQLite file.
import Database from "better-sqlite3";
import { generateSecretKey, getPublicKey, verifyEvent, type Event } from "nostr-tools/pure";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { Ledger, type LedgerSettings } from "../../src/ledger/ledger.js";
import { testLedgerSettings } from "../helpers/ledger-settings.js";
import { verifyLedger } from "../../src/ledger/verify.js";
import { grantSigner, parseGrantEvent } from "../../src/events/grant-event.js";
import { makeTmpDir } from "../helpers/tmp.js";

const SAT = 1000;
const DAY = 86_400_000;
const T0 = Date.UTC(2026, 2, 1, 12);

const settings = testLedgerSettings;

const tmp = makeTmpDir("dvm-gate-ledger-");
afterAll(() => tmp.remove());
const opened: Ledger[] = [];
afterEach(() => {
  while (opened.length > 0) opened.pop()!.close();
});
let fileNo = 0;
function freshLedger(over: Partial<LedgerSettings> = {}, signer?: ReturnType<typeof grantSigner>): { ledger: Ledger; path: string } {
  const path = tmp.file(`ledger-${++fileNo}.sqlite`);
  const ledger = Ledger.open(path, settings(over), { nowMs: T0, synchronous: "NORMAL", ...(signer ? { grantSigner: signer } : {}) });
  opened.push(ledger);
  return { ledger, path };
}

let idNo = 0;
const newId = () => (++idNo).toString(16).padStart(64, "0");
const pubkey = (n: number) => `${"ab".repeat(31)}${n.toString(16).padStart(2, "0")}`;

function decide(ledger: Ledger, pk: string, priceMsats: number, nowMs = T0, requestId = newId()) {
  const r = ledger.decide({ requestId, pubkey: pk, kind: 5050, priceMsats }, nowMs);
  return r.request;
}

describe("the pool", () => {
  it("refuses a debit the pool cannot cover", () => {
    const { ledger, path } = freshLedger({ poolInitialMsats: 15 * SAT });
    const pk = pubkey(1);
    ledger.setTier(pk, "elite", T0);
    const first = decide(ledger, pk, 10 * SAT);
    const second = decide(ledger, pk, 10 * SAT);
    const third = decide(ledger, pk, 10 * SAT);
    expect([first.decision, first.absorbMsats]).toEqual(["free", 10 * SAT]);
    // The pool covers what it has left and the customer is asked for the rest.
    expect([second.decision, second.absorbMsats, second.chargeMsats]).toEqual(["partial", 5 * SAT, 5 * SAT]);
    expect([third.decision, third.absorbMsats, third.reason]).toEqual(["gate", 0, "pool_empty"]);
    expect(ledger.totals()).toEqual({ initialMsats: 15 * SAT, creditedMsats: 0, absorbedMsats: 0, pendingMsats: 15 * SAT, poolMsats: 0 });

    // Underneath, a debit past zero is refused by the database itself, never clamped.
    const raw = new Database(path);
    try {
      expect(() => raw.prepare("UPDATE pool SET balance_msats = balance_msats - 1, pending_msats = pending_msats + 1 WHERE id = 1").run()).toThrow(
        /CHECK constraint failed/,
      );
    } finally {
      raw.close();
    }
    expect(ledger.totals().poolMsats).toBe(0);
    expect(verifyLedger(ledger.db)).toEqual([]);
  });

  it("credits the pool with poolCreditPct of what a customer paid, rounded down", () => {
    const { ledger } = freshLedger({ poolCreditPct: 33 });
    const pk = pubkey(2); // new: budget 0, so the customer pays everything
    const r = decide(ledger, pk, 1001);
    expect([r.decision, r.reason, r.chargeMsats]).toEqual(["gate", "no_budget", 1001]);
    expect(ledger.markPaid(r.requestId, { paidMsats: 1001, paymentRef: "pay-1" }, T0 + 1000).status).toBe("paid");
    const s = ledger.settle(r.requestId, {}, T0 + 2000);
    expect(s.status === "posted" && [s.creditedMsats, s.absorbedMsats, s.grant]).toEqual([330, 0, null]);
    expect(ledger.totals()).toMatchObject({ creditedMsats: 330, poolMsats: 10_000 * SAT + 330 });
    expect(ledger.db.prepare("SELECT amount_msats, source, ref FROM credits").all()).toEqual([{ amount_msats: 330, source: "paid-job", ref: r.requestId }]);
    expect(verifyLedger(ledger.db)).toEqual([]);
  });
});

describe("the daily budget", () => {
  it("counts pending reservations against the budget, so requests in flight cannot overspend it", () => {
    const { ledger } = freshLedger({ maxPendingPerPubkey: 100 });
    const pk = pubkey(3);
    ledger.setTier(pk, "established", T0); // 50 sats/day
    const decisions = Array.from({ length: 6 }, (_, i) => decide(ledger, pk, 10 * SAT, T0 + i));
    expect(decisions.map((d) => d.decision)).toEqual(["free", "free", "free", "free", "free", "gate"]);
    expect(decisions[5]!.reason).toBe("budget_used");
    expect(ledger.identity(pk, T0 + 10)).toMatchObject({ usedMsats: 50 * SAT, pendingCount: 5 });

    // A voided reservation no longer counts: its budget is free again.
    expect(ledger.fail(decisions[0]!.requestId, "worker error", T0 + 20).status).toBe("voided");
    expect(decide(ledger, pk, 10 * SAT, T0 + 30).decision).toBe("free");
    expect(verifyLedger(ledger.db)).toEqual([]);
  });

  it("gates a customer who already has maxPendingPerPubkey reservations pending", () => {
    const { ledger } = freshLedger(); // maxPendingPerPubkey 3
    const pk = pubkey(4);
    ledger.setTier(pk, "elite", T0);
    const d = Array.from({ length: 4 }, (_, i) => decide(ledger, pk, 10 * SAT, T0 + i));
    expect(d.map((x) => x.decision)).toEqual(["free", "free", "free", "gate"]);
    expect(d[3]!.reason).toBe("too_many_pending");
    expect(ledger.settle(d[0]!.requestId, {}, T0 + 10).status).toBe("posted");
    expect(decide(ledger, pk, 10 * SAT, T0 + 11).decision).toBe("free");
  });

  it("frees the budget again once 24 hours have passed", () => {
    const { ledger } = freshLedger();
    const pk = pubkey(5);
    ledger.setTier(pk, "established", T0);
    const a = decide(ledger, pk, 50 * SAT, T0);
    ledger.settle(a.requestId, {}, T0 + 1000);
    expect(decide(ledger, pk, 10 * SAT, T0 + DAY - 1).reason).toBe("budget_used");
    expect(decide(ledger, pk, 10 * SAT, T0 + DAY).decision).toBe("free");
  });
});

describe("partial offers and settlement", () => {
  it("honours a partial offer when paid and extends its reservation to the job timeout", () => {
    const { ledger } = freshLedger();
    const pk = pubkey(6);
    ledger.setTier(pk, "established", T0);
    decide(ledger, pk, 45 * SAT, T0);
    const p = decide(ledger, pk, 10 * SAT, T0 + 1000);
    expect([p.decision, p.absorbMsats, p.chargeMsats, p.state, p.expiresAtMs]).toEqual(["partial", 5 * SAT, 5 * SAT, "awaiting-payment", T0 + 1000 + 300_000]);

    const under = ledger.markPaid(p.requestId, { paidMsats: 5 * SAT - 1, paymentRef: "pay-under" }, T0 + 2000);
    expect(under.status === "underpaid" && under.neededMsats).toBe(5 * SAT);
    expect(ledger.getRequest(p.requestId)!.state).toBe("awaiting-payment");

    const paidAt = T0 + 100_000;
    const paid = ledger.markPaid(p.requestId, { paidMsats: 5 * SAT, paymentRef: "pay-ok" }, paidAt);
    expect(paid.status === "paid" && [paid.request.state, paid.request.expiresAtMs, paid.request.absorbMsats]).toEqual([
      "processing",
      paidAt + 600_000,
      5 * SAT,
    ]);
    const res = ledger.db.prepare("SELECT amount_msats, expires_at_ms, state FROM reservations WHERE request_id = ?").get(p.requestId);
    expect(res).toEqual({ amount_msats: 5 * SAT, expires_at_ms: paidAt + 600_000, state: "pending" });
    // Paying again with the same reference is recognised, not applied twice.
    expect(ledger.markPaid(p.requestId, { paidMsats: 5 * SAT, paymentRef: "pay-ok" }, paidAt + 1).status).toBe("already_paid");

    // The invoice's deadline passing no longer matters: the offer was taken.
    expect(ledger.expire(T0 + 1000 + 300_000 + 1).reservationsExpired).toBe(0);
    const s = ledger.settle(p.requestId, {}, paidAt + 5000);
    expect(s.status).toBe("posted");
    if (s.status !== "posted") return;
    expect([s.absorbedMsats, s.creditedMsats]).toEqual([5 * SAT, 500]);
    expect(s.grant).toMatchObject({ label: "partial", absorbedMsats: 5 * SAT, chargedMsats: 5 * SAT, tier: "established" });
    expect(verifyLedger(ledger.db)).toEqual([]);
  });

  it("returns an unpaid partial offer's reservation to the pool when the invoice expires", () => {
    const { ledger } = freshLedger({ poolInitialMsats: 4 * SAT });
    const pk = pubkey(7);
    ledger.setTier(pk, "elite", T0);
    const p = decide(ledger, pk, 10 * SAT, T0);
    expect([p.decision, p.absorbMsats]).toEqual(["partial", 4 * SAT]);
    expect(ledger.expire(T0 + 300_000 - 1).reservationsExpired).toBe(0);
    expect(ledger.expire(T0 + 300_000)).toEqual({ requestsExpired: 1, reservationsExpired: 1, returnedMsats: 4 * SAT, refundedToBalanceMsats: 0 });
    expect(ledger.markPaid(p.requestId, { paidMsats: 6 * SAT, paymentRef: "late" }, T0 + 300_001).status).toBe("not_awaiting_payment");
    expect(ledger.totals()).toMatchObject({ pendingMsats: 0, poolMsats: 4 * SAT, absorbedMsats: 0 });
  });

  it("returns the unused rest when a job costs less than reserved", () => {
    const { ledger } = freshLedger();
    const pk = pubkey(8);
    ledger.setTier(pk, "trusted", T0);
    const r = decide(ledger, pk, 10 * SAT);
    const s = ledger.settle(r.requestId, { actualMsats: 3001 }, T0 + 1000);
    expect(s.status === "posted" && [s.absorbedMsats, s.returnedMsats]).toEqual([3001, 10 * SAT - 3001]);
    expect(ledger.totals()).toEqual({ initialMsats: 10_000 * SAT, creditedMsats: 0, absorbedMsats: 3001, pendingMsats: 0, poolMsats: 10_000 * SAT - 3001 });
    // Only what was absorbed counts against the day's budget.
    expect(ledger.identity(pk, T0 + 1000).usedMsats).toBe(3001);
    expect(verifyLedger(ledger.db)).toEqual([]);
  });

  it("never absorbs more than was reserved when a job costs more", () => {
    const { ledger } = freshLedger();
    const pk = pubkey(9);
    ledger.setTier(pk, "trusted", T0);
    const r = decide(ledger, pk, 10 * SAT);
    const s = ledger.settle(r.requestId, { actualMsats: 25 * SAT }, T0 + 1000);
    expect(s.status === "posted" && [s.absorbedMsats, s.returnedMsats]).toEqual([10 * SAT, 0]);
    expect(ledger.totals().absorbedMsats).toBe(10 * SAT);
  });
});

describe("trust", () => {
  it("earns +2 trust per paid completed job and none for free or failed ones", () => {
    const { ledger } = freshLedger();
    const payer = pubkey(10);
    for (let i = 0; i < 5; i++) {
      const r = decide(ledger, payer, 10 * SAT, T0 + i * 1000);
      expect(ledger.markPaid(r.requestId, { paidMsats: 10 * SAT, paymentRef: `p-${i}` }, T0 + i * 1000 + 1).status).toBe("paid");
      expect(ledger.settle(r.requestId, {}, T0 + i * 1000 + 2).status).toBe("posted");
    }
    expect(ledger.identity(payer, T0 + 10_000)).toMatchObject({ score: 10, tier: "established" });

    // Now established (50 sats/day): a 60-sat job is partial, paid for, then fails.
    const failed = decide(ledger, payer, 60 * SAT, T0 + 20_000);
    expect([failed.decision, failed.chargeMsats]).toEqual(["partial", 10 * SAT]);
    expect(ledger.markPaid(failed.requestId, { paidMsats: 10 * SAT, paymentRef: "p-failed" }, T0 + 20_001).status).toBe("paid");
    expect(ledger.fail(failed.requestId, "worker error", T0 + 20_002).status).toBe("voided");
    expect(ledger.identity(payer, T0 + 20_003).score).toBe(10);

    const freeloader = pubkey(11);
    ledger.setWotFloor(freeloader, "elite", "test anchor", T0);
    for (let i = 0; i < 5; i++) {
      const r = decide(ledger, freeloader, 10 * SAT, T0 + i * 1000);
      expect(r.decision).toBe("free");
      ledger.settle(r.requestId, {}, T0 + i * 1000 + 2);
    }
    expect(ledger.identity(freeloader, T0 + 10_000)).toMatchObject({ score: 0, scoreTier: "new", tier: "elite" });
  });

  it("decays a score by 1 a day after 30 idle days, lazily and never twice for the same day", () => {
    const { ledger } = freshLedger();
    const [watched, abused] = [pubkey(12), pubkey(13)];
    for (const pk of [watched, abused]) {
      ledger.setTier(pk, "new", T0); // pinned, so every job is paid for and earns trust
      for (let i = 0; i < 10; i++) {
        const r = decide(ledger, pk, 1 * SAT, T0);
        ledger.markPaid(r.requestId, { paidMsats: 1 * SAT, paymentRef: `${pk.slice(-2)}-${i}` }, T0);
        ledger.settle(r.requestId, {}, T0);
      }
    }
    expect(ledger.identity(watched, T0 + 30 * DAY).score).toBe(20);
    // Looking at it often changes nothing.
    expect([35, 37, 40, 40].map((d) => ledger.identity(watched, T0 + d * DAY).score)).toEqual([15, 13, 10, 10]);
    // A change stored at day 35 (abuse) must not make days 31–35 count again later.
    expect(ledger.recordAbuse(abused, "test", T0 + 35 * DAY).score).toBe(10);
    expect(ledger.identity(abused, T0 + 40 * DAY).score).toBe(5);
    // A paid job is activity: the idle clock starts again.
    const r = decide(ledger, watched, 1 * SAT, T0 + 40 * DAY);
    ledger.markPaid(r.requestId, { paidMsats: 1 * SAT, paymentRef: "comeback" }, T0 + 40 * DAY);
    ledger.settle(r.requestId, {}, T0 + 40 * DAY);
    expect(ledger.identity(watched, T0 + 70 * DAY).score).toBe(12);
    expect(ledger.identity(watched, T0 + 71 * DAY).score).toBe(11);
  });
});

describe("history and idempotency", () => {
  function withHistory(over: Partial<LedgerSettings> = {}) {
    const f = freshLedger(over);
    const pk = pubkey(20);
    f.ledger.setTier(pk, "elite", T0);
    const a = decide(f.ledger, pk, 10 * SAT);
    f.ledger.settle(a.requestId, {}, T0 + 1);
    const b = decide(f.ledger, pk, 10 * SAT);
    f.ledger.fail(b.requestId, "x", T0 + 2);
    const c = decide(f.ledger, pk, 10 * SAT);
    f.ledger.settle(c.requestId, {}, T0 + 3);
    f.ledger.credit(5 * SAT, "operator", "top-up", T0 + 4);
    f.ledger.recordAbuse(pk, "test", T0 + 5);
    return { ...f, pk, a, b, c };
  }

  it("keeps history append-only: updates and deletes of resolutions, credits, grants and logs abort", () => {
    const { ledger } = withHistory();
    const db = ledger.db;
    expect(() => db.prepare("UPDATE resolutions SET absorbed_msats = 0").run()).toThrow(/append-only/);
    expect(() => db.prepare("DELETE FROM resolutions").run()).toThrow(/append-only/);
    expect(() => db.prepare("UPDATE credits SET amount_msats = 1").run()).toThrow(/append-only/);
    expect(() => db.prepare("DELETE FROM grants").run()).toThrow(/append-only/);
    expect(() => db.prepare("UPDATE grants SET absorbed_msats = 1").run()).toThrow(/append-only/);
    expect(() => db.prepare("DELETE FROM identity_log").run()).toThrow(/append-only/);
    expect(() => db.prepare("DELETE FROM reservations").run()).toThrow(/never deleted/);
    expect(() => db.prepare("UPDATE reservations SET state = 'pending' WHERE state <> 'pending'").run()).toThrow(/already resolved/);
    expect(verifyLedger(db)).toEqual([]);
  });

  it("refuses to run an async function as a transaction, so no network call can sit between BEGIN and COMMIT", () => {
    const { ledger } = freshLedger();
    const before = dump(ledger.db);
    expect(() =>
      ledger.tx(async () => {
        ledger.db.prepare("INSERT INTO credits (amount_msats, source, ref, created_at_ms) VALUES (1, 'operator', 'async', 0)").run();
      }),
    ).toThrow(/promise/);
    expect(dump(ledger.db)).toEqual(before);
  });

  it("resolves a reservation at most once", () => {
    const { ledger } = freshLedger();
    const pk = pubkey(21);
    ledger.setTier(pk, "elite", T0);
    const r = decide(ledger, pk, 10 * SAT);
    expect(ledger.settle(r.requestId, {}, T0 + 1).status).toBe("posted");
    const after = ledger.totals();
    expect(ledger.settle(r.requestId, {}, T0 + 2).status).toBe("not_processing");
    expect(ledger.fail(r.requestId, "late error", T0 + 3).status).toBe("already_resolved");
    expect(ledger.expire(T0 + 10 * DAY).reservationsExpired).toBe(0);
    expect(ledger.totals()).toEqual(after);
    expect(ledger.db.prepare("SELECT COUNT(*) AS n FROM resolutions").get()).toEqual({ n: 1 });
    expect(ledger.grants()).toHaveLength(1);
  });

  it("treats the same request id as the same request: 'exists', and nothing changes", () => {
    const { ledger } = freshLedger();
    const pk = pubkey(22);
    ledger.setTier(pk, "elite", T0);
    const requestId = newId();
    const first = ledger.decide({ requestId, pubkey: pk, kind: 5050, priceMsats: 10 * SAT }, T0);
    expect(first.status).toBe("decided");
    const before = dump(ledger.db);
    // Seen again (another relay, a restart), even with other fields: the stored decision stands.
    const again = ledger.decide({ requestId, pubkey: pubkey(23), kind: 5100, priceMsats: 99 * SAT }, T0 + 5000);
    expect(again.status).toBe("exists");
    expect(again.request).toMatchObject({ pubkey: pk, priceMsats: 10 * SAT, decision: "free", absorbMsats: 10 * SAT });
    expect(dump(ledger.db)).toEqual(before);
  });

  it("chains signed grant events seq 1, 2, 3 with prev links and the totals after each", () => {
    const sk = generateSecretKey();
    const { ledger } = freshLedger({}, grantSigner(sk));
    const pk = pubkey(24);
    ledger.setTier(pk, "elite", T0);
    for (let i = 0; i < 3; i++) {
      const r = decide(ledger, pk, (i + 1) * SAT, T0 + i);
      ledger.settle(r.requestId, {}, T0 + i + 1);
    }
    const grants = ledger.grants();
    expect(grants.map((g) => g.seq)).toEqual([1, 2, 3]);
    expect(grants.map((g) => g.prevEventId)).toEqual([null, grants[0]!.eventId, grants[1]!.eventId]);
    for (const g of grants) {
      const ev = JSON.parse(g.eventJson!) as Event;
      expect(verifyEvent(ev)).toBe(true);
      expect(ev.pubkey).toBe(getPublicKey(sk));
      expect(ev.id).toBe(g.eventId);
      const parsed = parseGrantEvent(ev);
      if (typeof parsed === "string") throw new Error(parsed);
      expect([parsed.seq, parsed.prevEventId, parsed.absorbedMsats, parsed.totals]).toEqual([g.seq, g.prevEventId, g.absorbedMsats, g.totals]);
      const t = parsed.totals;
      expect(t.initialMsats + t.creditedMsats).toBe(t.poolMsats + t.pendingMsats + t.absorbedMsats);
    }
    expect(grants[2]!.totals.absorbedMsats).toBe(6 * SAT);
    expect(verifyLedger(ledger.db)).toEqual([]);
  });

  it("never mixes signed and unsigned grants in one chain, and verify names a mix", () => {
    const sk = generateSecretKey();
    const { ledger, path } = freshLedger({}, grantSigner(sk));
    const pk = pubkey(25);
    ledger.setTier(pk, "elite", T0);
    const a = decide(ledger, pk, 1 * SAT, T0);
    ledger.settle(a.requestId, {}, T0 + 1);
    const b = decide(ledger, pk, 1 * SAT, T0 + 2);
    // The same file opened without the gate's key cannot continue the signed chain...
    const unsigned = Ledger.open(path, settings(), { nowMs: T0 + 3, synchronous: "NORMAL" });
    opened.push(unsigned);
    expect(() => unsigned.settle(b.requestId, {}, T0 + 3)).toThrow(/opened without the gate's key/);
    expect(unsigned.getRequest(b.requestId)?.state).toBe("processing");
    expect(ledger.grants().map((g) => g.seq)).toEqual([1]);
    // ...and a chain that starts unsigned cannot be continued signed.
    const other = freshLedger();
    other.ledger.setTier(pk, "elite", T0);
    const c = decide(other.ledger, pk, 1 * SAT, T0);
    other.ledger.settle(c.requestId, {}, T0 + 1);
    const d = decide(other.ledger, pk, 1 * SAT, T0 + 2);
    const signedLater = Ledger.open(other.path, settings(), { nowMs: T0 + 3, synchronous: "NORMAL", grantSigner: grantSigner(sk) });
    opened.push(signedLater);
    expect(other.ledger.grants().map((g) => g.eventId)).toEqual([null]);
    expect(() => signedLater.settle(d.requestId, {}, T0 + 3)).toThrow(/recorded unsigned/);
    expect(verifyLedger(signedLater.db)).toEqual([]);
    // A mix made behind the ledger's back is named by verify.
    ledger.settle(b.requestId, {}, T0 + 4);
    const raw = new Database(path);
    try {
      raw.exec("DROP TRIGGER grants_no_update");
      raw.exec("UPDATE grants SET event_id = NULL, event_json = NULL WHERE seq = 1");
      raw.exec("CREATE TRIGGER grants_no_update BEFORE UPDATE ON grants BEGIN SELECT RAISE(ABORT, 'grants is append-only'); END");
    } finally {
      raw.close();
    }
    expect(verifyLedger(ledger.db).map((v) => `${v.guarantee}: ${v.detail}`)).toEqual([expect.stringMatching(/^grant chain.*mixes signed and unsigned/)]);
  });

  describe("verifyLedger names the broken guarantee after tampering", () => {
    function tamper(sql: string[]): string[] {
      const { ledger, path } = withHistory();
      expect(verifyLedger(ledger.db)).toEqual([]);
      const raw = new Database(path);
      try {
        for (const s of sql) raw.exec(s);
      } finally {
        raw.close();
      }
      return verifyLedger(ledger.db).map((v) => v.guarantee);
    }

    /** At least one violation, and every one names the same guarantee. */
    function expectOnly(broken: string[], guarantee: RegExp) {
      expect(broken.length).toBeGreaterThan(0);
      for (const g of broken) expect(g).toMatch(guarantee);
    }

    it("pool counters moved by hand (still summing up) → 1 conservation", () => {
      expectOnly(tamper(["UPDATE pool SET balance_msats = balance_msats + 1000, absorbed_msats = absorbed_msats - 1000"]), /^1 conservation/);
    });

    it("a credit row that never reached the pool → 1 conservation", () => {
      expectOnly(tamper(["INSERT INTO credits (amount_msats, source, ref, created_at_ms) VALUES (777, 'operator', 'bogus', 0)"]), /^1 conservation/);
    });

    it("a reservation over its tier's budget → 3 per-customer budget", () => {
      expectOnly(tamper(["UPDATE reservations SET budget_msats = 1"]), /^3 per-customer 24 h budget/);
    });

    it("an append-only trigger dropped → 4 resolve at most once", () => {
      expectOnly(tamper(["DROP TRIGGER resolutions_no_update"]), /^4 a reservation resolves at most once/);
    });

    it("the resolve-once trigger on reservations dropped → 4 resolve at most once", () => {
      expectOnly(tamper(["DROP TRIGGER reservations_resolve_once"]), /^4 a reservation resolves at most once/);
      expectOnly(tamper(["DROP TRIGGER reservations_no_delete"]), /^4 a reservation resolves at most once/);
    });

    it("a request closed while its reservation stays pending → 5 idempotency", () => {
      const { ledger, path } = withHistory();
      const open = decide(ledger, pubkey(20), 1 * SAT, T0 + 10);
      const raw = new Database(path);
      try {
        raw.prepare("UPDATE requests SET state = 'done' WHERE request_id = ?").run(open.requestId);
      } finally {
        raw.close();
      }
      expectOnly(
        verifyLedger(ledger.db).map((v) => v.guarantee),
        /^5 request id is the idempotency key/,
      );
    });

    it("a grant's prev link rewritten → grant chain", () => {
      const broken = tamper([
        "DROP TRIGGER grants_no_update",
        `UPDATE grants SET prev_event_id = '${"e".repeat(64)}' WHERE seq = 2`,
        "CREATE TRIGGER grants_no_update BEFORE UPDATE ON grants BEGIN SELECT RAISE(ABORT, 'grants is append-only'); END",
      ]);
      expectOnly(broken, /^grant chain/);
    });
  });
});

/** Every row of every table, to prove an operation changed nothing. */
function dump(db: Database.Database): Record<string, unknown[]> {
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[];
  return Object.fromEntries(tables.map(({ name }) => [name, db.prepare(`SELECT * FROM "${name}"`).all()]));
}
