// The same gate policy inside an in-process relay (@nostr-relay/core) on 127.0.0.1:
// a real client publishes and sees the relay's OK with our prefixed reason.
import { Relay, useWebSocketImplementation } from "nostr-tools/relay";
import { finalizeEvent, generateSecretKey, getPublicKey, type Event } from "nostr-tools/pure";
import { WebSocket } from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ledgerSettings } from "../../src/cli/context.js";
import { parseConfig } from "../../src/config/load.js";
import { Ledger } from "../../src/ledger/ledger.js";
import { startEmbeddedRelay, type EmbeddedRelay } from "../../src/peers/embedded-relay.js";
import { createNostrRelayGatePlugin } from "../../plugin/nostr-relay.js";
import { SqliteTierLookup } from "../../plugin/tier-lookup.js";
import { makeTmpDir, type TmpDir } from "../helpers/tmp.js";

useWebSocketImplementation(WebSocket);

const nowSec = () => Math.floor(Date.now() / 1000);
const jobRequest = (sk: Uint8Array, content = ""): Event =>
  finalizeEvent(
    {
      kind: 5050,
      created_at: nowSec(),
      tags: [
        ["i", "hello", "text"],
        ["bid", "5000"],
      ],
      content,
    },
    sk,
  );

describe("gate policy in @nostr-relay/core", () => {
  let tmp: TmpDir;
  let ledger: Ledger;
  let lookup: SqliteTierLookup;
  let relay: EmbeddedRelay;
  let client: Relay;

  beforeAll(async () => {
    tmp = makeTmpDir("dvm-gate-inproc-");
    const cfg = parseConfig(
      {
        database: { path: tmp.file("gate.sqlite"), synchronous: "NORMAL" },
        plugin: { perPubkeyPerMinute: { new: 2, established: 10, trusted: 10, elite: 10 }, minTierForKinds: { "30023": "trusted" } },
      },
      { env: {} },
    );
    ledger = Ledger.open(cfg.database.path, ledgerSettings(cfg), { nowMs: Date.now(), synchronous: "NORMAL" });
    lookup = new SqliteTierLookup({ path: cfg.database.path, trust: cfg.trust, busyTimeoutMs: 5000 });
    expect(lookup.open(Date.now())).toBeNull();
    relay = await startEmbeddedRelay({ plugins: [createNostrRelayGatePlugin(cfg, lookup)] });
    client = await Relay.connect(relay.url);
  });

  afterAll(async () => {
    client?.close();
    await relay?.close();
    lookup?.close();
    ledger?.close();
    tmp?.remove();
  });

  it("accepts a well-formed job request from a new pubkey and stores it", async () => {
    const ev = jobRequest(generateSecretKey());
    await expect(client.publish(ev)).resolves.toBeTypeOf("string");
    const stored = await new Promise<Event[]>((resolve) => {
      const got: Event[] = [];
      const sub = client.subscribe([{ ids: [ev.id] }], {
        onevent: (e) => got.push(e),
        oneose: () => {
          sub.close();
          resolve(got);
        },
      });
    });
    expect(stored.map((e) => e.id)).toEqual([ev.id]);
  });

  it("answers OK false with blocked: for a banned pubkey", async () => {
    const sk = generateSecretKey();
    ledger.setBanned(getPublicKey(sk), true, "spam", Date.now());
    await expect(client.publish(jobRequest(sk))).rejects.toThrow("blocked: this pubkey is banned by the relay operator");
    await expect(client.publish(finalizeEvent({ kind: 1, created_at: nowSec(), tags: [], content: "hi" }, sk))).rejects.toThrow(/^blocked: /);
  });

  it("answers OK false with restricted: for a kind above the pubkey's tier, and accepts it once the tier is met", async () => {
    const sk = generateSecretKey();
    // Distinct ids: the relay library remembers its answer per event id for a while.
    const article = (content: string) => finalizeEvent({ kind: 30023, created_at: nowSec(), tags: [["d", "a"]], content }, sk);
    await expect(client.publish(article("draft"))).rejects.toThrow(
      "restricted: kind 30023 needs trust tier trusted or above on this relay; this pubkey is new",
    );
    ledger.setTier(getPublicKey(sk), "trusted", Date.now());
    await expect(client.publish(article("final"))).resolves.toBeTypeOf("string");
  });

  it("answers OK false with invalid: for malformed tags and rate-limited: past the tier's allowance", async () => {
    const sk = generateSecretKey();
    const bad = finalizeEvent({ kind: 5050, created_at: nowSec(), tags: [["bid", "a lot"]], content: "" }, sk);
    await expect(client.publish(bad)).rejects.toThrow(/^invalid: bid must be a whole number of millisats/);
    await expect(client.publish(jobRequest(sk, "1"))).resolves.toBeTypeOf("string");
    await expect(client.publish(jobRequest(sk, "2"))).resolves.toBeTypeOf("string");
    await expect(client.publish(jobRequest(sk, "3"))).rejects.toThrow("rate-limited: at most 2 job requests per minute for trust tier new");
  });

  it("refuses a forged job request before it can spend the named pubkey's allowance", async () => {
    const victim = generateSecretKey();
    const forged = { ...jobRequest(victim, "real"), content: "forged" };
    await expect(client.publish(forged)).rejects.toThrow("invalid: bad event id or signature");
    await expect(client.publish(jobRequest(victim, "a"))).resolves.toBeTypeOf("string");
    await expect(client.publish(jobRequest(victim, "b"))).resolves.toBeTypeOf("string");
  });

  it("checks the signature itself even when the event object carries a cached 'valid' verdict", () => {
    const cfg = parseConfig({ database: { path: tmp.file("gate.sqlite") } }, { env: {} });
    const plugin = createNostrRelayGatePlugin(cfg, lookup);
    // finalizeEvent marks its result as verified; altering it afterwards keeps that mark.
    const altered = finalizeEvent({ kind: 5050, created_at: nowSec(), tags: [["i", "hello", "text"]], content: "" }, generateSecretKey());
    altered.content = "changed after signing";
    const r = plugin.beforeHandleEvent(altered as never);
    expect(r).toEqual({ canHandle: false, message: "invalid: bad event id or signature" });
  });
});
