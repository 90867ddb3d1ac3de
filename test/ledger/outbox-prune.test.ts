// The service's bookkeeping stays bounded: old seen ids and long-delivered outbox rows go,
// anything recent or still undelivered stays, and the ledger's history is untouched.
import { afterAll, describe, expect, it } from "vitest";
import { finalizeEvent, generateSecretKey } from "nostr-tools/pure";
import { Ledger } from "../../src/ledger/ledger.js";
import { enqueue, markSeen, pruneBookkeeping, recordDelivery } from "../../src/ledger/outbox-store.js";
import { testLedgerSettings } from "../helpers/ledger-settings.js";
import { makeTmpDir } from "../helpers/tmp.js";

const tmp = makeTmpDir("dvm-gate-prune-");
afterAll(() => tmp.remove());
const DAY = 86_400_000;

describe("pruneBookkeeping", () => {
  it("drops old seen ids and outbox rows delivered long ago, and nothing else", () => {
    const ledger = Ledger.open(tmp.file("p.sqlite"), testLedgerSettings(), { nowMs: 10 * DAY });
    const db = ledger.db;
    const sk = generateSecretKey();
    const ev = (n: number) => finalizeEvent({ kind: 1985, created_at: n, tags: [], content: String(n) }, sk);
    ledger.tx(() => {
      markSeen(db, "a".repeat(64), 5050, 1 * DAY);
      markSeen(db, "b".repeat(64), 5050, 9 * DAY);
      const old = enqueue(db, { requestId: null, purpose: "pool-status", event: ev(1), relays: ["ws://127.0.0.1:1"], nowMs: 1 * DAY });
      recordDelivery(db, old.id, "ws://127.0.0.1:1", true, "", 1 * DAY);
      enqueue(db, { requestId: null, purpose: "pool-status", event: ev(2), relays: ["ws://127.0.0.1:1"], nowMs: 1 * DAY }); // never delivered
      const recent = enqueue(db, { requestId: null, purpose: "pool-status", event: ev(3), relays: ["ws://127.0.0.1:1"], nowMs: 9 * DAY });
      recordDelivery(db, recent.id, "ws://127.0.0.1:1", true, "", 9 * DAY);
    });
    const r = ledger.tx(() => pruneBookkeeping(db, { seenBeforeMs: 5 * DAY, doneBeforeMs: 5 * DAY }));
    expect(r).toEqual({ seen: 1, outbox: 1 });
    expect((db.prepare("SELECT event_id FROM seen_events").all() as { event_id: string }[]).map((x) => x.event_id)).toEqual(["b".repeat(64)]);
    expect((db.prepare("SELECT state FROM outbox ORDER BY id").all() as { state: string }[]).map((x) => x.state)).toEqual(["ready", "done"]);
    expect(db.prepare("SELECT COUNT(*) AS n FROM outbox_delivery").get()).toEqual({ n: 2 });
    ledger.close();
  });
});
