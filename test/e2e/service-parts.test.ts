// The service's small rules (backoff, dedupe window, which reply relays a customer may
// name), one end-to-end property of the publisher (a relay that never answers does not
// hold up replies to the others) and two of the intake (ids already handled are dropped
// unparsed; a stored backlog is paged through before the cursor moves).
import { createServer, type Server, type Socket } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { finalizeEvent, generateSecretKey } from "nostr-tools/pure";
import { pino } from "pino";
import { backoffDelayMs, RecentIds, RelayIntake, type IntakeOptions } from "../../src/relay/intake.js";
import { isPrivateRelay, replyRelaysFor } from "../../src/service/settlement.js";
import { startEmbeddedRelay } from "../../src/peers/embedded-relay.js";
import { Customer, sleep, startGate, waitForAsync } from "./harness.js";

describe("reconnect backoff", () => {
  it("grows exponentially, is capped, and keeps between half and all of each step", () => {
    for (let attempt = 0; attempt < 40; attempt++) {
      const step = Math.min(60_000, 500 * 2 ** attempt);
      expect(backoffDelayMs(attempt, 500, 60_000, () => 0)).toBe(step / 2);
      expect(backoffDelayMs(attempt, 500, 60_000, () => 0.999999)).toBeLessThanOrEqual(step);
      expect(backoffDelayMs(attempt, 500, 60_000, () => 0.999999)).toBeGreaterThan(step * 0.99);
    }
  });
});

describe("in-memory dedupe window", () => {
  it("remembers the newest ids only, up to its bound", () => {
    const r = new RecentIds(3);
    for (const id of ["a", "b", "c", "d"]) r.add(id);
    expect(["a", "b", "c", "d"].map((id) => r.has(id))).toEqual([false, true, true, true]);
  });
});

describe("reply relays named by a customer", () => {
  const cases: [string, boolean][] = [
    ["wss://relay.damus.io", false],
    ["wss://nos.lol/", false],
    ["ws://127.0.0.1:7777", true],
    ["ws://localhost:7777", true],
    ["ws://10.1.2.3", true],
    ["ws://172.20.0.5", true],
    ["ws://172.32.0.5", false],
    ["ws://192.168.1.1", true],
    ["ws://169.254.169.254", true],
    ["ws://[::1]:80", true],
    ["ws://[fd00::1]", true],
    ["ws://printer.local", true],
    ["not a url", true],
  ];
  it.each(cases)("%s is private: %s", (url, priv) => {
    expect(isPrivateRelay(url)).toBe(priv);
  });

  it("a public gate drops private reply relays; a local one keeps them", () => {
    const asked = ["wss://relay.example.com", "ws://127.0.0.1:8080", "ws://10.0.0.1"];
    expect(replyRelaysFor({ relays: ["wss://relay.gate.example"] }, asked)).toEqual(["wss://relay.gate.example", "wss://relay.example.com"]);
    expect(replyRelaysFor({ relays: ["ws://127.0.0.1:7777"] }, asked)).toEqual(["ws://127.0.0.1:7777", ...asked]);
  });
});

describe("zap receipts", () => {
  it("a zap of the payment-required reply from the configured provider pays the job; a forged one does not", { timeout: 30_000 }, async () => {
    const { createHash, randomBytes } = await import("node:crypto");
    const { finalizeEvent, generateSecretKey, getPublicKey } = await import("nostr-tools/pure");
    const { encodeBolt11 } = await import("../../src/payments/bolt11.js");
    const provider = generateSecretKey();
    const relay = await startEmbeddedRelay();
    const gate = await startGate({
      relays: [relay.url],
      over: { payments: { backend: "dev", dev: { enabled: true }, invoiceExpirySec: 120, zap: { providerPubkey: getPublicKey(provider) } } },
    });
    const cust = await new Customer().connect([relay.url]);
    try {
      const req = cust.request(gate.pubkey);
      await cust.publish(req);
      const fb = await cust.waitFeedback(req.id, "payment-required");
      const receipt = (signer: Uint8Array) => {
        const zapRequest = finalizeEvent(
          {
            kind: 9734,
            created_at: Math.floor(Date.now() / 1000),
            content: "",
            tags: [
              ["e", fb.event.id],
              ["p", gate.pubkey],
              ["amount", "10000"],
              ["relays", relay.url],
            ],
          },
          cust.secretKey,
        );
        const description = JSON.stringify(zapRequest);
        const bolt11 = encodeBolt11({
          network: "bcrt",
          amountMsats: 10_000,
          paymentHash: randomBytes(32).toString("hex"),
          descriptionHash: createHash("sha256").update(description, "utf8").digest("hex"),
          createdAtSec: Math.floor(Date.now() / 1000),
          expirySec: 600,
          nodeSecretKey: randomBytes(32),
        });
        return finalizeEvent(
          {
            kind: 9735,
            created_at: Math.floor(Date.now() / 1000),
            content: "",
            tags: [
              ["p", gate.pubkey],
              ["e", fb.event.id],
              ["bolt11", bolt11],
              ["description", description],
            ],
          },
          signer,
        );
      };
      // Signed by someone other than the provider: the relay delivers it only if we ask
      // for that author, so hand it to the service directly, as a lax relay might.
      gate.service.onEvent(receipt(generateSecretKey()), relay.url);
      expect(gate.ledger.getRequest(req.id)?.state).toBe("awaiting-payment");
      await cust.publish(receipt(provider));
      await cust.waitFeedback(req.id, "processing");
      expect(gate.ledger.getRequest(req.id)).toMatchObject({ state: "processing", paidMsats: 10_000 });
      expect(gate.verify()).toEqual([]);
    } finally {
      cust.close();
      await gate.stop();
      await relay.close();
      gate.tmp.remove();
    }
  });
});

describe("publisher", () => {
  const sockets: Socket[] = [];
  let tarpit: Server;
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => tarpit?.close(() => r()));
  });

  it("keeps answering on its relays while a reply relay never completes its handshake", { timeout: 30_000 }, async () => {
    // Accepts TCP connections and never says a word: a WebSocket handshake to it hangs.
    tarpit = createServer((s) => void sockets.push(s));
    await new Promise<void>((r) => tarpit.listen(0, "127.0.0.1", () => r()));
    const tarpitUrl = `ws://127.0.0.1:${(tarpit.address() as { port: number }).port}`;
    const relay = await startEmbeddedRelay();
    const gate = await startGate({ relays: [relay.url] });
    const cust = await new Customer().connect([relay.url]);
    try {
      gate.ledger.setTier(cust.pubkey, "elite", gate.nowMs());
      const first = cust.request(gate.pubkey, { input: "1", tags: [["relays", tarpitUrl]] });
      await cust.publish(first);
      await cust.waitFeedback(first.id, "processing");
      const second = cust.request(gate.pubkey, { input: "2" });
      await cust.publish(second);
      await cust.waitFeedback(second.id, "processing");
      // The tarpit delivery is still waiting on its first attempt.
      const row = gate.ledger.db
        .prepare("SELECT d.state, d.attempts FROM outbox_delivery d JOIN outbox o ON o.id = d.outbox_id WHERE o.request_id = ? AND d.relay = ?")
        .get(first.id, tarpitUrl) as { state: string; attempts: number };
      expect(row).toEqual({ state: "pending", attempts: 0 });
    } finally {
      cust.close();
      await gate.stop();
      await relay.close();
      gate.tmp.remove();
    }
  });
});

describe("intake", () => {
  /** An intake of kind 5050 on one relay, its handler and cursor store the test's own. */
  const intakeOn = (relayUrl: string, o: Pick<IntakeOptions, "onEvent" | "loadCursorSec"> & Partial<IntakeOptions>) =>
    new RelayIntake({
      relays: [relayUrl],
      filters: (since) => [{ kinds: [5050], since }],
      saveCursorSec: () => {},
      signAuth: async () => {
        throw new Error("no auth here");
      },
      log: pino({ level: "silent" }),
      nowMs: () => Date.now(),
      ...o,
    });
  const job = (sk: Uint8Array, createdAt: number, input: string) =>
    finalizeEvent({ kind: 5050, created_at: createdAt, tags: [["i", input, "text"]], content: "" }, sk);

  it("drops events whose id it already has before handing them on, and hands on the rest", { timeout: 30_000 }, async () => {
    const relay = await startEmbeddedRelay();
    const sk = generateSecretKey();
    const now = Math.floor(Date.now() / 1000);
    const evs = [0, 1, 2].map((i) => job(sk, now, `x${i}`));
    const known = new Set([evs[1]!.id]);
    const got: string[] = [];
    const intake = intakeOn(relay.url, { loadCursorSec: () => null, onEvent: (ev) => void got.push(ev.id), alreadyHave: (id) => known.has(id) });
    const cust = await new Customer().connect([relay.url]);
    try {
      intake.start();
      // Live events: stored ones (before EOSE) are all parsed, their times drive paging back.
      await waitForAsync(async () => intake.connectedRelays().length > 0, 10_000, "the intake subscribed");
      await sleep(300);
      for (const ev of evs) await cust.publish(ev);
      // The control, published after the known one: once it is handed on, the known one
      // was judged (the relay delivers in order, and each event is judged on arrival).
      const control = job(sk, now, "control");
      await cust.publish(control);
      await waitForAsync(async () => got.includes(control.id), 10_000, "the control handed on");
      expect(got.sort()).toEqual([evs[0]!.id, evs[2]!.id, control.id].sort());
    } finally {
      cust.close();
      await intake.stop();
      await relay.close();
    }
  });

  it("pages back through a stored backlog larger than the relay's page and saves no cursor until it has", { timeout: 30_000 }, async () => {
    const relay = await startEmbeddedRelay();
    const sk = generateSecretKey();
    const now = Math.floor(Date.now() / 1000);
    const N = 250;
    const cust = await new Customer().connect([relay.url]);
    for (let i = 0; i < N; i++) await cust.publish(job(sk, now - 100 + Math.floor(i / 5), `b${i}`));
    const handled = new Set<string>();
    const saves: { sec: number; handled: number }[] = [];
    const intake = intakeOn(relay.url, {
      loadCursorSec: () => now - 200,
      saveCursorSec: (_relay, sec) => void saves.push({ sec, handled: handled.size }),
      onEvent: (ev) => {
        handled.add(ev.id);
        // Slow handling, so that the cursor flush timer gets many chances mid-catch-up.
        const until = performance.now() + 0.5;
        while (performance.now() < until);
      },
      cursorFlushMs: 5,
    });
    try {
      intake.start();
      await waitForAsync(async () => handled.size >= N && saves.length > 0, 15_000, "the backlog handled and a cursor saved");
      expect(handled.size).toBe(N);
      // Every save came after the whole backlog was handled, and names its newest second.
      expect(saves.filter((s) => s.handled < N)).toEqual([]);
      expect(saves.at(-1)!.sec).toBe(now - 100 + Math.floor((N - 1) / 5));
    } finally {
      cust.close();
      await intake.stop();
      await relay.close();
    }
  });
});
