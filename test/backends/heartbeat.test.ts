// SPEC §11 liveness: while it runs, the gate publishes kind 11998 with the announcement's
// `d`, a `status` and an `expiration`, every nostr.heartbeatSec, each newer than the last.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyEvent, type Event } from "nostr-tools/pure";
import { AbstractRelay } from "nostr-tools/abstract-relay";
import WebSocket from "ws";
import { startEmbeddedRelay, type EmbeddedRelay } from "../../src/peers/embedded-relay.js";
import { ANNOUNCEMENT_D, HEARTBEAT_KIND } from "../../src/events/announce.js";
import { startGate, waitFor, type Gate } from "../e2e/harness.js";

describe("heartbeat", () => {
  let relay: EmbeddedRelay;
  let gate: Gate;
  beforeAll(async () => {
    relay = await startEmbeddedRelay();
  });
  afterAll(async () => {
    await gate?.stop();
    gate?.tmp.remove();
    await relay?.close();
  });

  it("publishes kind 11998 with the announcement's d tag, a status and an expiration, again and again", async () => {
    const seen: Event[] = [];
    const watch = new AbstractRelay(relay.url, { verifyEvent: () => true, websocketImplementation: WebSocket as never });
    await watch.connect({ timeout: 5000 });
    gate = await startGate({ relays: [relay.url], over: { nostr: { relays: [relay.url], heartbeatSec: 10 } }, tuning: { heartbeatMs: 300 } });
    watch.subscribe([{ kinds: [HEARTBEAT_KIND], authors: [gate.pubkey] }], { onevent: (e) => seen.push(e) });
    await waitFor(() => seen.length >= 3, 10_000, "three heartbeats");
    watch.close();
    for (const ev of seen) {
      expect(verifyEvent(ev)).toBe(true);
      expect(ev.tags).toContainEqual(["d", ANNOUNCEMENT_D]);
      expect(ev.tags.find((t) => t[0] === "status")?.[1]).toMatch(/^online/);
      const exp = Number(ev.tags.find((t) => t[0] === "expiration")?.[1]);
      expect(exp).toBeGreaterThan(ev.created_at);
    }
    // Replaceable: each strictly newer than the one before, or a relay could keep a stale one.
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.created_at).toBeGreaterThan(seen[i - 1]!.created_at);
  });
});
