// Web-of-trust floors from signed events on a real relay: anchors' follow lists and
// a rank provider's NIP-85 assertions lift tiers; nothing a customer signs does.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";
import { Relay, useWebSocketImplementation } from "nostr-tools/relay";
import { finalizeEvent, generateSecretKey, getPublicKey, type Event } from "nostr-tools/pure";
import { parseConfig } from "../../src/config/load.js";
import { Ledger } from "../../src/ledger/ledger.js";
import { ledgerSettings } from "../../src/cli/context.js";
import { computeWotFloors, refreshWotFloors } from "../../src/service/wot.js";
import { startEmbeddedRelay, type EmbeddedRelay } from "../../src/peers/embedded-relay.js";

useWebSocketImplementation(WebSocket);

const NOW_MS = Math.floor(Date.now() / 1000) * 1000;
const key = () => {
  const sk = generateSecretKey();
  return { sk, pk: getPublicKey(sk) };
};
const anchor = key();
const provider = key();
const followed = key();
const ranked = key();
const selfPromoter = key();
const stranger = key();

function contactList(signer: { sk: Uint8Array }, follows: string[], createdAt: number): Event {
  return finalizeEvent({ kind: 3, created_at: createdAt, tags: follows.map((p) => ["p", p]), content: "" }, signer.sk);
}
function rank(signer: { sk: Uint8Array }, subject: string, value: number): Event {
  return finalizeEvent(
    {
      kind: 30382,
      created_at: NOW_MS / 1000,
      tags: [
        ["d", subject],
        ["rank", String(value)],
      ],
      content: "",
    },
    signer.sk,
  );
}

const cfg = parseConfig({
  trust: {
    wot: {
      anchors: [anchor.pk],
      followFloor: "established",
      rankProvider: provider.pk,
      rankFloors: [
        { minRank: 50, tier: "trusted" },
        { minRank: 90, tier: "elite" },
      ],
    },
  },
});

describe("web-of-trust floors", () => {
  let relay: EmbeddedRelay;
  let dir: string;
  let ledger: Ledger;

  beforeAll(async () => {
    relay = await startEmbeddedRelay();
    dir = mkdtempSync(join(tmpdir(), "dvm-gate-wot-"));
    ledger = Ledger.open(join(dir, "l.sqlite"), ledgerSettings(cfg), { nowMs: NOW_MS });
    const c = await Relay.connect(relay.url);
    const events = [
      contactList(anchor, [followed.pk, anchor.pk], NOW_MS / 1000 - 10),
      rank(provider, ranked.pk, 95),
      rank(provider, followed.pk, 60),
      // A customer vouching for itself, in every way it could try:
      contactList(selfPromoter, [selfPromoter.pk], NOW_MS / 1000),
      rank(selfPromoter, selfPromoter.pk, 100),
      rank(provider, provider.pk, 100),
    ];
    for (const ev of events) await c.publish(ev);
    c.close();
  });

  afterAll(async () => {
    ledger.close();
    await relay.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("lifts followed and ranked pubkeys and nobody else", async () => {
    const r = await refreshWotFloors(ledger, [relay.url], cfg.trust.wot, () => NOW_MS, { maxWaitMs: 2000 });
    expect(r).toMatchObject({ floors: 2 });
    expect(ledger.identity(followed.pk, NOW_MS).tier).toBe("trusted"); // followed (established) and rank 60 (trusted): the higher wins
    expect(ledger.identity(ranked.pk, NOW_MS).tier).toBe("elite");
    expect(ledger.identity(selfPromoter.pk, NOW_MS).tier).toBe("new");
    expect(ledger.identity(stranger.pk, NOW_MS).tier).toBe("new");
    expect(ledger.identity(anchor.pk, NOW_MS).tier).toBe("new");
    expect(ledger.identity(provider.pk, NOW_MS).tier).toBe("new");
  });

  it("drops a floor when the anchor unfollows, using the newest contact list only", async () => {
    const c = await Relay.connect(relay.url);
    await c.publish(contactList(anchor, [], NOW_MS / 1000));
    c.close();
    const r = await refreshWotFloors(ledger, [relay.url], cfg.trust.wot, () => NOW_MS + 1, { maxWaitMs: 2000 });
    expect(r && "floors" in r ? r.floors : null).toBe(2); // still ranked 60 and 95 by the provider
    expect(ledger.identity(followed.pk, NOW_MS).tier).toBe("trusted");
    const noRanks = computeWotFloors([contactList(anchor, [], NOW_MS / 1000)], cfg.trust.wot);
    expect(noRanks.size).toBe(0);
  });

  it("keeps the cached floors when the relays answer with nothing (an outage)", async () => {
    const before = ledger.identity(ranked.pk, NOW_MS).tier;
    const dead = "ws://127.0.0.1:9"; // nothing listens on the discard port
    const r = await refreshWotFloors(ledger, [dead], cfg.trust.wot, () => NOW_MS + 2, { maxWaitMs: 500 });
    expect(r).toMatchObject({ skipped: expect.stringContaining("no contact list") });
    expect(ledger.identity(ranked.pk, NOW_MS).tier).toBe(before);
    expect(before).toBe("elite");
  });

  it("ignores events whose signature does not verify", () => {
    const forged = { ...rank(provider, stranger.pk, 99), sig: "00".repeat(64) };
    expect(computeWotFloors([forged], cfg.trust.wot).has(stranger.pk)).toBe(false);
    const forgedList = { ...contactList(anchor, [stranger.pk], NOW_MS / 1000), sig: "11".repeat(64) };
    expect(computeWotFloors([forgedList], cfg.trust.wot).has(stranger.pk)).toBe(false);
  });

  it("lets an operator pin override a floor, and a ban still blocks", () => {
    ledger.setTier(ranked.pk, "new", NOW_MS);
    expect(ledger.identity(ranked.pk, NOW_MS).tier).toBe("new");
    ledger.setTier(ranked.pk, null, NOW_MS);
    expect(ledger.identity(ranked.pk, NOW_MS).tier).toBe("elite");
    ledger.setBanned(ranked.pk, true, "test", NOW_MS);
    const d = ledger.decide({ requestId: "ab".repeat(32), pubkey: ranked.pk, kind: 5050, priceMsats: 10_000 }, NOW_MS);
    expect(d.request.decision).toBe("blocked");
  });
});
