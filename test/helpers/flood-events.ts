// Many signed job requests fast (the wasm signer: thousands a second), and a relay store
// filled with them before the relay starts (the embedded relay verifies ~850 events/s on
// this machine: a backlog of thousands is written to its SQLite file directly instead).
import * as wasm from "nostr-tools/wasm";
import { initNostrWasm } from "nostr-wasm";
import { generateSecretKey, type Event } from "nostr-tools/pure";
import { EventRepositorySqlite } from "@nostr-relay/event-repository-sqlite";

let ready: Promise<void> | null = null;
export function initFastSign(): Promise<void> {
  ready ??= initNostrWasm().then((n) => wasm.setNostrWasm(n));
  return ready;
}

/** A job request signed by `sk` (call initFastSign first). */
export function jobRequest(sk: Uint8Array, gatePubkey: string, o: { kind?: number; createdAt?: number; input?: string } = {}): Event {
  return wasm.finalizeEvent(
    {
      kind: o.kind ?? 5050,
      created_at: o.createdAt ?? Math.floor(Date.now() / 1000),
      tags: [
        ["i", o.input ?? "hello", "text"],
        ["p", gatePubkey],
      ],
      content: "",
    },
    sk,
  ) as Event;
}

/** `n` requests, each from a key never seen before. */
export function freshKeyRequests(n: number, gatePubkey: string, o: { kind?: number; createdAt?: (i: number) => number } = {}): Event[] {
  return Array.from({ length: n }, (_, i) =>
    jobRequest(generateSecretKey(), gatePubkey, { kind: o.kind, input: `fresh ${i}`, ...(o.createdAt ? { createdAt: o.createdAt(i) } : {}) }),
  );
}

/** Writes events into an @nostr-relay SQLite store (not running yet), without verifying them. */
export async function preloadRelayStore(dbPath: string, events: Event[]): Promise<void> {
  const repo = new EventRepositorySqlite(dbPath);
  await repo.init();
  // Each upsert is its own transaction: no fsync for a test fixture.
  repo.getDatabase().pragma("synchronous = OFF");
  for (const ev of events) await repo.upsert(ev as never);
  await repo.destroy();
}
