// The outbox's delivery bookkeeping on a real ledger file: one row per (request, purpose)
// however often it is queued, one delivery per relay, a row done only when every relay
// has answered OK or been given up, retries spaced by capped backoff, and late or repeated
// answers changing nothing.
import { afterAll, describe, expect, it } from "vitest";
import { finalizeEvent, generateSecretKey } from "nostr-tools/pure";
import { Ledger } from "../../src/ledger/ledger.js";
import { enqueue, fillPending, MAX_DELIVERY_ATTEMPTS, recordDelivery } from "../../src/ledger/outbox-store.js";
import { testLedgerSettings } from "../helpers/ledger-settings.js";
import { makeTmpDir } from "../helpers/tmp.js";

const tmp = makeTmpDir("dvm-gate-outbox-");
afterAll(() => tmp.remove());

const A = "ws://127.0.0.1:1";
const B = "ws://127.0.0.1:2";
const sk = generateSecretKey();
const ev = (n: number) => finalizeEvent({ kind: 7000, created_at: 1_700_000_000 + n, tags: [], content: String(n) }, sk);

function open(name: string) {
  const ledger = Ledger.open(tmp.file(name), testLedgerSettings(), { nowMs: 1_000 });
  const db = ledger.db;
  const outbox = (id: number) => db.prepare("SELECT state, event_id FROM outbox WHERE id = ?").get(id) as { state: string; event_id: string | null };
  const delivery = (id: number, relay: string) =>
    db.prepare("SELECT state, attempts, next_attempt_at_ms AS nextMs FROM outbox_delivery WHERE outbox_id = ? AND relay = ?").get(id, relay) as {
      state: string;
      attempts: number;
      nextMs: number;
    };
  return { ledger, db, outbox, delivery };
}

describe("outbox store", () => {
  it("queues one row per (request, purpose): the second call returns the first row and adds nothing", () => {
    const { ledger, db } = open("once.sqlite");
    const reqId = "c".repeat(64);
    const first = ledger.tx(() => enqueue(db, { requestId: reqId, purpose: "feedback-processing", event: ev(1), relays: [A, B, A], nowMs: 1_000 }));
    const again = ledger.tx(() => enqueue(db, { requestId: reqId, purpose: "feedback-processing", event: ev(2), relays: [A, B], nowMs: 2_000 }));
    expect(first.created).toBe(true);
    expect(again).toEqual({ id: first.id, created: false });
    expect(db.prepare("SELECT COUNT(*) AS n FROM outbox").get()).toEqual({ n: 1 });
    // The relay named twice gets one delivery; the second event was not stored.
    expect(db.prepare("SELECT relay FROM outbox_delivery ORDER BY relay").all()).toEqual([{ relay: A }, { relay: B }]);
    expect((db.prepare("SELECT event_id FROM outbox").get() as { event_id: string }).event_id).toBe(ev(1).id);
    // Another purpose for the same request is its own row; rows without a request never collide.
    const other = ledger.tx(() => enqueue(db, { requestId: reqId, purpose: "feedback-error", event: ev(3), relays: [A], nowMs: 1_000 }));
    const s1 = ledger.tx(() => enqueue(db, { requestId: null, purpose: "pool-status", event: ev(4), relays: [A], nowMs: 1_000 }));
    const s2 = ledger.tx(() => enqueue(db, { requestId: null, purpose: "pool-status", event: ev(5), relays: [A], nowMs: 1_000 }));
    expect([other.created, s1.created, s2.created]).toEqual([true, true, true]);
    expect(db.prepare("SELECT COUNT(*) AS n FROM outbox").get()).toEqual({ n: 4 });
    ledger.close();
  });

  it("a reply waiting for its invoice gets its deliveries only when filled, once", () => {
    const { ledger, db, outbox } = open("fill.sqlite");
    const row = ledger.tx(() => enqueue(db, { requestId: "d".repeat(64), purpose: "feedback-payment-required", event: null, relays: [A, B], nowMs: 1_000 }));
    expect(outbox(row.id)).toEqual({ state: "needs-invoice", event_id: null });
    expect(db.prepare("SELECT COUNT(*) AS n FROM outbox_delivery").get()).toEqual({ n: 0 });
    expect(ledger.tx(() => fillPending(db, row.id, ev(1), 2_000))).toBe(true);
    expect(ledger.tx(() => fillPending(db, row.id, ev(2), 3_000))).toBe(false);
    expect(outbox(row.id)).toEqual({ state: "ready", event_id: ev(1).id });
    expect(db.prepare("SELECT COUNT(*) AS n FROM outbox_delivery WHERE state = 'pending'").get()).toEqual({ n: 2 });
    ledger.close();
  });

  it("is done when every relay said OK; a repeated OK counts nothing", () => {
    const { ledger, db, outbox, delivery } = open("ok.sqlite");
    const row = ledger.tx(() => enqueue(db, { requestId: "e".repeat(64), purpose: "feedback-processing", event: ev(1), relays: [A, B], nowMs: 1_000 }));
    ledger.tx(() => recordDelivery(db, row.id, A, true, "", 2_000));
    expect(outbox(row.id).state).toBe("ready");
    ledger.tx(() => recordDelivery(db, row.id, A, true, "duplicate: already have it", 2_500));
    expect(delivery(row.id, A)).toMatchObject({ state: "ok", attempts: 1 });
    ledger.tx(() => recordDelivery(db, row.id, B, true, "", 3_000));
    expect(outbox(row.id).state).toBe("done");
    expect(delivery(row.id, B)).toMatchObject({ state: "ok", attempts: 1 });
    // A late failure report for a delivery that already ended changes nothing.
    ledger.tx(() => recordDelivery(db, row.id, B, false, "error: late", 4_000));
    expect(delivery(row.id, B)).toMatchObject({ state: "ok", attempts: 1 });
    ledger.close();
  });

  it("retries a failing relay with growing, capped backoff, gives up after the last attempt, and then the row is done", () => {
    const { ledger, db, outbox, delivery } = open("retry.sqlite");
    const row = ledger.tx(() => enqueue(db, { requestId: "f".repeat(64), purpose: "feedback-processing", event: ev(1), relays: [A, B], nowMs: 0 }));
    ledger.tx(() => recordDelivery(db, row.id, A, true, "", 0));
    let now = 10_000;
    const waits: number[] = [];
    for (let i = 1; i < MAX_DELIVERY_ATTEMPTS; i++) {
      ledger.tx(() => recordDelivery(db, row.id, B, false, "error: nope", now));
      const d = delivery(row.id, B);
      expect(d).toMatchObject({ state: "pending", attempts: i });
      waits.push(d.nextMs - now);
      now = d.nextMs;
      expect(outbox(row.id).state).toBe("ready");
    }
    // 500 ms doubling, with up to half a step of jitter on top, capped at 5 min (+ jitter).
    waits.forEach((w, k) => {
      const step = Math.min(300_000, 500 * 2 ** k);
      expect(w).toBeGreaterThanOrEqual(step);
      expect(w).toBeLessThan(step * 1.5);
    });
    ledger.tx(() => recordDelivery(db, row.id, B, false, "error: nope", now));
    expect(delivery(row.id, B)).toMatchObject({ state: "failed", attempts: MAX_DELIVERY_ATTEMPTS });
    expect(outbox(row.id).state).toBe("done");
    ledger.close();
  });
});
