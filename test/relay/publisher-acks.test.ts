// The publisher's cheap path (src/relay/publisher.ts): replies handed over after commit are
// sent without a scan, relays' OKs are held and written together, a scan never sends a
// held row again, and a crash that loses held OKs only makes the restart send the same
// event again (the relay answers "duplicate:"), never a different one, never none.
import { afterEach, describe, expect, it } from "vitest";
import { resolve } from "node:path";
import pino from "pino";
import { finalizeEvent, generateSecretKey, type Event } from "nostr-tools/pure";
import { Ledger } from "../../src/ledger/ledger.js";
import { collectEnqueued, enqueue } from "../../src/ledger/outbox-store.js";
import { OutboxPublisher } from "../../src/relay/publisher.js";
import { startEmbeddedRelay, type EmbeddedRelay } from "../../src/peers/embedded-relay.js";
import { testLedgerSettings } from "../helpers/ledger-settings.js";
import { makeTmpDir } from "../helpers/tmp.js";
import { REPO_ROOT, runUntilJsonLine } from "../helpers/service-process.js";
import { fetchEvents, waitFor } from "../e2e/harness.js";

/** The embedded relay, counting the EVENT frames it is sent per event id. */
async function countingRelay(): Promise<{ relay: EmbeddedRelay; sent: Map<string, number> }> {
  const sent = new Map<string, number>();
  const relay = await startEmbeddedRelay({
    plugins: [
      {
        async handleMessage(_ctx: unknown, message: unknown[], next: () => Promise<unknown>) {
          if (message[0] === "EVENT") {
            const id = (message[1] as { id?: string }).id ?? "";
            sent.set(id, (sent.get(id) ?? 0) + 1);
          }
          return next();
        },
      } as never,
    ],
  });
  return { relay, sent };
}

const deliveryStates = (ledger: Ledger) =>
  (ledger.db.prepare("SELECT d.state FROM outbox_delivery d ORDER BY d.outbox_id").all() as { state: string }[]).map((r) => r.state);

describe("publisher: OKs held and written together", () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it("sends handed-over rows at once, holds their OKs, and a scan meanwhile sends none of them again", { timeout: 30_000 }, async () => {
    const { relay, sent } = await countingRelay();
    cleanups.push(() => relay.close());
    const tmp = makeTmpDir();
    cleanups.push(() => tmp.remove());
    const ledger = Ledger.open(tmp.file("ledger.sqlite"), testLedgerSettings(), { nowMs: Date.now() });
    cleanups.push(() => ledger.close());
    const sk = generateSecretKey();
    const note = (content: string): Event => finalizeEvent({ kind: 1, created_at: Math.floor(Date.now() / 1000), tags: [], content }, sk);
    const queue = (evs: Event[]) =>
      collectEnqueued(() =>
        ledger.tx(() => {
          for (const ev of evs) enqueue(ledger.db, { requestId: null, purpose: "announce", event: ev, relays: [relay.url], nowMs: Date.now() });
        }),
      ).outboxIds;
    const acked = new Set<string>();
    const publisher = new OutboxPublisher({
      db: ledger.db,
      log: pino({ level: "silent" }),
      nowMs: () => Date.now(),
      signAuth: async (t) => finalizeEvent(t, sk),
      trustedRelays: [relay.url],
      // Longer than the test: only stop() writes the held OKs.
      ackFlushMs: 600_000,
      pollMs: 600_000,
      onPublished: (_relay, ok, d) => void (ok && acked.add(d.event.id)),
    });
    publisher.start();
    cleanups.push(() => publisher.stop());
    const first = [note("a"), note("b"), note("c")];
    publisher.deliverNew(queue(first));
    await waitFor(() => first.every((e) => acked.has(e.id)), 10_000, "the relay's OKs of the three events");
    expect(first.map((e) => sent.get(e.id))).toEqual([1, 1, 1]);
    // The relay answered OK; the rows are still pending in the store (the OKs are held).
    expect(deliveryStates(ledger)).toEqual(["pending", "pending", "pending"]);

    // A fourth row found only by a scan: the scan reads the three held rows too, and must not send them again.
    const fourth = note("d");
    queue([fourth]);
    publisher.kick();
    await waitFor(() => sent.get(fourth.id) === 1, 10_000, "the scan to send the fourth event");
    expect(first.map((e) => sent.get(e.id))).toEqual([1, 1, 1]);

    await publisher.stop();
    expect(deliveryStates(ledger)).toEqual(["ok", "ok", "ok", "ok"]);
    expect(ledger.db.prepare("SELECT COUNT(*) AS n FROM outbox WHERE state = 'done'").get()).toEqual({ n: 4 });
  });

  it("kill -9 with an OK held: the restart sends the same event again, the relay keeps one, the row ends delivered", { timeout: 30_000 }, async () => {
    const { relay, sent } = await countingRelay();
    cleanups.push(() => relay.close());
    const tmp = makeTmpDir();
    cleanups.push(() => tmp.remove());
    const db = tmp.file("ledger.sqlite");
    const child = await runUntilJsonLine(
      [resolve(REPO_ROOT, "dist/test/helpers/publisher-child.js"), "--db", db, "--relay", relay.url, "--ack-flush-ms", "600000"],
      {},
    );
    const id = String(child.info.published);
    expect(child.info.ok).toBe(true);
    expect(sent.get(id)).toBe(1);
    expect(await child.kill("SIGKILL")).toBeNull();

    const ledger = Ledger.open(db, testLedgerSettings(), { nowMs: Date.now() });
    cleanups.push(() => ledger.close());
    // The OK died with the process: the row is still due.
    expect(deliveryStates(ledger)).toEqual(["pending"]);
    const publisher = new OutboxPublisher({
      db: ledger.db,
      log: pino({ level: "silent" }),
      nowMs: () => Date.now(),
      signAuth: async (t) => finalizeEvent(t, generateSecretKey()),
      trustedRelays: [relay.url],
      ackFlushMs: 20,
    });
    publisher.start();
    cleanups.push(() => publisher.stop());
    await waitFor(() => deliveryStates(ledger)[0] === "ok", 10_000, "the row delivered after the restart");
    // Sent twice in all, the same bytes: the relay stored it once.
    expect(sent.get(id)).toBe(2);
    expect(await fetchEvents(relay.url, { ids: [id] })).toHaveLength(1);
  });
});
