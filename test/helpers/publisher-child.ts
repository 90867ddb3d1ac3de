// A publisher in its own process, for kill -9 tests of the delivery bookkeeping: queues
// one signed event for `--relay` in the ledger at `--db`, delivers it with relays' OKs
// held for `--ack-flush-ms`, and prints {"published": id, "ok": bool} once the relay answered.
import pino from "pino";
import { finalizeEvent, generateSecretKey } from "nostr-tools/pure";
import { Ledger } from "../../src/ledger/ledger.js";
import { collectEnqueued, enqueue } from "../../src/ledger/outbox-store.js";
import { OutboxPublisher } from "../../src/relay/publisher.js";
import { testLedgerSettings } from "./ledger-settings.js";

const arg = (name: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (v === undefined) throw new Error(`--${name} needs a value`);
  return v;
};
const relay = arg("relay");
const ledger = Ledger.open(arg("db"), testLedgerSettings(), { nowMs: Date.now() });
const sk = generateSecretKey();
const ev = finalizeEvent({ kind: 1, created_at: Math.floor(Date.now() / 1000), tags: [], content: "held OK" }, sk);
const { outboxIds } = collectEnqueued(() =>
  ledger.tx(() => enqueue(ledger.db, { requestId: null, purpose: "announce", event: ev, relays: [relay], nowMs: Date.now() })),
);
const publisher = new OutboxPublisher({
  db: ledger.db,
  log: pino({ level: "silent" }),
  nowMs: () => Date.now(),
  signAuth: async (t) => finalizeEvent(t, sk),
  trustedRelays: [relay],
  ackFlushMs: Number(arg("ack-flush-ms")),
  onPublished: (_relay, ok, d) => console.log(JSON.stringify({ published: d.event.id, ok })),
});
publisher.start();
publisher.deliverNew(outboxIds);
