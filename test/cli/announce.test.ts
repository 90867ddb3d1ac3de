// `dvm-gate announce`: the NIP-89 handler announcement signed with the gate's key from
// the config's kinds, prices and budgets, printed (--dry-run) or published to a relay.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { AbstractRelay } from "nostr-tools/abstract-relay";
import { generateSecretKey, getPublicKey, verifyEvent, type Event } from "nostr-tools/pure";
import { WebSocket } from "ws";
import { startEmbeddedRelay, type EmbeddedRelay } from "../../src/peers/embedded-relay.js";
import { ANNOUNCEMENT_D, ANNOUNCEMENT_KIND } from "../../src/events/announce.js";
import { makeTmpDir } from "../helpers/tmp.js";
import { runDvmGate } from "../audit/cli-run.js";

const tmp = makeTmpDir("dvm-gate-announce-");
const sk = generateSecretKey();
const pubkey = getPublicKey(sk);
let relay: EmbeddedRelay;
let configPath: string;

beforeAll(async () => {
  relay = await startEmbeddedRelay();
  configPath = tmp.file("dvm-gate.json");
  writeFileSync(
    configPath,
    JSON.stringify({
      nostr: { secretKey: "env:TEST_GATE_NSEC", relays: [relay.url] },
      database: { path: "./db.sqlite" },
      jobs: { kinds: { "5050": { priceSats: 10 }, "5100": { priceSats: 250 } } },
      freeTier: { budgetsSats: { new: 0, established: 40, trusted: 150, elite: 900 } },
    }),
  );
});
afterAll(async () => {
  await relay.close();
  tmp.remove();
});

const announce = (...args: string[]) =>
  runDvmGate(["announce", "--config", configPath, ...args], { cwd: tmp.path, env: { TEST_GATE_NSEC: Buffer.from(sk).toString("hex") } });

function checkAnnouncement(ev: Event): void {
  expect(verifyEvent(ev)).toBe(true);
  expect(ev.pubkey).toBe(pubkey);
  expect(ev.kind).toBe(ANNOUNCEMENT_KIND);
  expect(ev.tags).toEqual(
    expect.arrayContaining([
      ["d", ANNOUNCEMENT_D],
      ["k", "5050"],
      ["k", "5100"],
    ]),
  );
  const content = JSON.parse(ev.content);
  expect(content.name).toBe("Reverse DVM");
  expect(content.pricing).toEqual([
    { kind: 5050, priceMsats: 10_000 },
    { kind: 5100, priceMsats: 250_000 },
  ]);
  expect(content.freeTier.budgetsMsats).toEqual({ new: 0, established: 40_000, trusted: 150_000, elite: 900_000 });
  // SPEC §11: what clients read, both spellings.
  expect(content).toMatchObject({ amount: "10 sats", encryptionSupported: true, supportsEncryption: true, cashuAccepted: false, acceptsNutZaps: false });
}

describe("dvm-gate announce", () => {
  it("prints the signed announcement with --dry-run", async () => {
    const out = await announce("--dry-run", "--name", "Reverse DVM");
    expect(out.code).toBe(0);
    checkAnnouncement(JSON.parse(out.stdout));
  });

  it("publishes it to the configured relay, where a client finds it by kind and k tag", async () => {
    const out = await announce("--name", "Reverse DVM", "--about", "reverses text");
    expect(out.stderr).toBe("");
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/accepted/);
    const conn = new AbstractRelay(relay.url, { verifyEvent, websocketImplementation: WebSocket as never });
    await conn.connect({ timeout: 5000 });
    const found: Event[] = [];
    await new Promise<void>((resolve) => {
      const sub = conn.subscribe([{ kinds: [ANNOUNCEMENT_KIND], "#k": ["5100"] }], {
        onevent: (e) => found.push(e),
        oneose: () => {
          sub.close();
          resolve();
        },
      });
    });
    conn.close();
    expect(found).toHaveLength(1);
    checkAnnouncement(found[0]!);
    expect(JSON.parse(found[0]!.content).about).toBe("reverses text");
  });

  it("refuses with one clear line when the gate has no key", async () => {
    const noKey = tmp.file("nokey.json");
    writeFileSync(noKey, JSON.stringify({ nostr: { relays: [relay.url] } }));
    const out = await runDvmGate(["announce", "--config", noKey], { cwd: tmp.path });
    expect(out.code).toBe(2);
    expect(out.stderr.trim().split("\n")).toHaveLength(1);
    expect(out.stderr).toMatch(/announce: the gate has no key: set nostr.secretKey/);
  });

  it("exits 1 naming the relay when no relay accepts it", async () => {
    const out = await announce("--relay", "ws://127.0.0.1:1");
    expect(out.code).toBe(1);
    expect(out.stdout).toMatch(/ws:\/\/127\.0\.0\.1:1: refused: /);
  });
});
