// Crashes and restarts: the service SIGKILLed mid-stream (a real `dvm-gate start` child
// process) and a relay process killed and restarted on the same port and database.
// In both, every request must get exactly one reply and the ledger must stay clean.
import { afterEach, describe, expect, it } from "vitest";
import { generateSecretKey, getPublicKey, type Event } from "nostr-tools/pure";
import { ledgerSettings } from "../../src/cli/context.js";
import { Ledger } from "../../src/ledger/ledger.js";
import { verifyLedger } from "../../src/ledger/verify.js";
import { parseConfig } from "../../src/config/load.js";
import { startEmbeddedRelay, type EmbeddedRelay } from "../../src/peers/embedded-relay.js";
import { makeTmpDir, type TmpDir } from "../helpers/tmp.js";
import { startRelayProcess, startServiceProcess, writeConfig, type ChildHandle } from "../helpers/service-process.js";
import { Customer, fetchEvents, sleep, startGate, UNLIMITED_INVOICES, waitFor, waitForAsync, type Gate } from "./harness.js";

/** Reply events (kind 7000 by the gate) per request id, as stored on the relay. */
async function repliesByRequest(url: string, gatePubkey: string, ids: string[]): Promise<Map<string, Event[]>> {
  const out = new Map<string, Event[]>(ids.map((id) => [id, []]));
  const evs = await fetchEvents(url, { kinds: [7000], authors: [gatePubkey], "#e": ids });
  for (const ev of evs) {
    const id = ev.tags.find((t) => t[0] === "e")?.[1];
    if (id && out.has(id)) out.get(id)!.push(ev);
  }
  return out;
}

describe("crash and restart", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it("service SIGKILLed mid-stream and restarted: every request answered exactly once", { timeout: 90_000 }, async () => {
    const tmp: TmpDir = makeTmpDir("dvm-gate-crash-");
    cleanups.push(() => tmp.remove());
    const relay: EmbeddedRelay = await startEmbeddedRelay();
    cleanups.push(() => relay.close());
    const gateSk = generateSecretKey();
    const gatePk = getPublicKey(gateSk);
    const config = {
      nostr: { secretKey: Buffer.from(gateSk).toString("hex"), relays: [relay.url] },
      database: { path: tmp.file("gate.sqlite"), synchronous: "FULL" },
      jobs: { kinds: { "5050": { priceSats: 10 } }, timeoutSec: 600 },
      freeTier: { maxPendingPerPubkey: 1000 },
      payments: { backend: "dev", dev: { enabled: true }, maxOpenInvoicesPerPubkey: 1000 },
      http: { enabled: false },
      log: { level: "warn" },
    };
    const configPath = writeConfig(tmp.file("config.json"), config);
    const elite = await new Customer().connect([relay.url]);
    const fresh = await new Customer().connect([relay.url]);
    cleanups.push(() => elite.close());
    cleanups.push(() => fresh.close());
    // Pin the elite tier before the service runs (another process on the same file).
    const cfg = parseConfig(config, { env: {}, baseDir: tmp.path, sourcePath: configPath });
    const pre = Ledger.open(cfg.database.path, ledgerSettings(cfg), { nowMs: Date.now() });
    pre.setTier(elite.pubkey, "elite", Date.now());
    pre.close();

    let svc: ChildHandle = await startServiceProcess(configPath);
    cleanups.push(() => svc.kill("SIGKILL").then(() => {}));

    const N = 40;
    const sent: Event[] = [];
    for (let i = 0; i < N; i++) {
      const who = i % 2 === 0 ? elite : fresh;
      const ev = who.request(gatePk, { input: `job ${i}` });
      await who.publish(ev);
      sent.push(ev);
      if (i === 19) {
        // Kill it without warning while it is still working through the stream.
        await sleep(20);
        expect(await svc.kill("SIGKILL")).toBeNull();
      } else if (i === 29) {
        svc = await startServiceProcess(configPath);
      } else {
        await sleep(20);
      }
    }

    const ids = sent.map((e) => e.id);
    const replies = await waitForAsync(
      async () => {
        const m = await repliesByRequest(relay.url, gatePk, ids);
        return [...m.values()].every((v) => v.length >= 1) ? m : null;
      },
      40_000,
      "a reply to every request",
    );
    // Control: a graceful stop delivers what the outbox holds and then nothing publishes
    // for this gate any more, so what the relay has now is final.
    await svc.kill("SIGTERM");
    const final = await repliesByRequest(relay.url, gatePk, ids);
    for (const [i, ev] of sent.entries()) {
      const r = final.get(ev.id)!;
      expect(r.length, `request ${i}`).toBe(1);
      const status = r[0]!.tags.find((t) => t[0] === "status")?.[1];
      expect(status, `request ${i}`).toBe(i % 2 === 0 ? "processing" : "payment-required");
    }
    expect(replies.size).toBe(N);

    const after = Ledger.open(cfg.database.path, ledgerSettings(cfg), { nowMs: Date.now() });
    try {
      expect(verifyLedger(after.db)).toEqual([]);
      const n = (sql: string) => (after.db.prepare(sql).get() as { n: number }).n;
      expect(n("SELECT COUNT(*) AS n FROM requests")).toBe(N);
      expect(n("SELECT COUNT(*) AS n FROM reservations")).toBe(N / 2);
      expect(n("SELECT COUNT(*) AS n FROM outbox WHERE request_id IS NOT NULL")).toBe(N);
      expect(n("SELECT COUNT(*) AS n FROM invoices")).toBe(N / 2);
      expect(after.totals().pendingMsats).toBe((N / 2) * 10_000);
    } finally {
      after.close();
    }
  });

  it("relay killed and restarted mid-stream: no request missed, no reply duplicated", { timeout: 90_000 }, async () => {
    const tmp = makeTmpDir("dvm-gate-relay-restart-");
    cleanups.push(() => tmp.remove());
    let relay = await startRelayProcess(0, tmp.file("relay.sqlite"));
    const port = relay.port;
    cleanups.push(() => relay.kill("SIGKILL").then(() => {}));
    const gate: Gate = await startGate({ relays: [relay.url], over: UNLIMITED_INVOICES, tuning: { reconnectBaseMs: 200, reconnectMaxMs: 1000 } });
    cleanups.push(async () => {
      await gate.stop();
      gate.tmp.remove();
    });
    const elite = new Customer();
    gate.ledger.setTier(elite.pubkey, "elite", gate.nowMs());

    const sent: Event[] = [];
    const publishSome = async (n: number) => {
      const c = await new Customer(elite.secretKey).connect([relay.url]);
      try {
        for (let i = 0; i < n; i++) {
          const ev = c.request(gate.pubkey, { input: `job ${sent.length}` });
          await c.publish(ev);
          sent.push(ev);
          await sleep(10);
        }
      } finally {
        c.close();
      }
    };

    await publishSome(10);
    const connectsBefore = gate.service.intake.connectCount(relay.url);
    expect(await relay.kill("SIGKILL")).toBeNull();
    await sleep(300);
    relay = await startRelayProcess(port, tmp.file("relay.sqlite"));
    expect(relay.url).toContain(`:${port}`);
    // Published right away: the gate may still be waiting to reconnect; its cursor catches these.
    await publishSome(10);

    const ids = sent.map((e) => e.id);
    await waitForAsync(
      async () => {
        const m = await repliesByRequest(relay.url, gate.pubkey, ids);
        return [...m.values()].every((v) => v.length >= 1) ? m : null;
      },
      30_000,
      "a reply to every request",
    );
    expect(gate.service.intake.connectCount(relay.url)).toBeGreaterThan(connectsBefore);
    // Control: once the service has stopped (its outbox delivered), nothing more is
    // published for this gate, so what the relay has now is final.
    await gate.service.stop();
    const final = await repliesByRequest(relay.url, gate.pubkey, ids);
    for (const [i, ev] of sent.entries()) expect(final.get(ev.id)!.length, `request ${i}`).toBe(1);
    const n = (sql: string) => (gate.ledger.db.prepare(sql).get() as { n: number }).n;
    expect(n("SELECT COUNT(*) AS n FROM requests")).toBe(20);
    expect(n("SELECT COUNT(*) AS n FROM outbox WHERE request_id IS NOT NULL")).toBe(20);
    expect(gate.verify()).toEqual([]);
  });

  it("a backlog larger than what the relay returns per filter (100 here) after downtime: every request answered", { timeout: 90_000 }, async () => {
    // Relays cap what one REQ returns from storage (this library 100 per filter, strfry
    // 500 by default), newest first; a gate back from downtime must page back to its cursor.
    const relay = await startEmbeddedRelay();
    cleanups.push(() => relay.close());
    const first = await startGate({ relays: [relay.url], over: UNLIMITED_INVOICES });
    cleanups.push(() => first.tmp.remove());
    const elite = await new Customer().connect([relay.url]);
    cleanups.push(() => elite.close());
    first.ledger.setTier(elite.pubkey, "elite", first.nowMs());
    // One request while it runs, so that it has saved a cursor.
    const warm = elite.request(first.pubkey, { input: "before" });
    await elite.publish(warm);
    await elite.waitFeedback(warm.id, "processing");
    await sleep(1200);
    await first.stop();

    const N = 250;
    const nowSec = Math.floor(Date.now() / 1000);
    // 150 of them in one second (more than the relay's default page), the rest 10 a second.
    const createdAt = (i: number) => (i < 150 ? nowSec - 30 : nowSec - 20 + Math.floor((i - 150) / 10));
    for (let i = 0; i < N; i++) await elite.publish(elite.request(first.pubkey, { input: `while down ${i}`, createdAt: createdAt(i) }));

    const second = await startGate({ relays: [relay.url], over: UNLIMITED_INVOICES, tmp: first.tmp, secretKey: first.secretKey });
    cleanups.push(() => second.stop());
    const n = (sql: string) => (second.ledger.db.prepare(sql).get() as { n: number }).n;
    await waitForAsync(async () => (n("SELECT COUNT(*) AS n FROM requests") === N + 1 ? true : null), 40_000, `all ${N + 1} requests decided`);
    await waitForAsync(
      async () => (n("SELECT COUNT(*) AS n FROM outbox WHERE request_id IS NOT NULL AND state = 'done'") === N + 1 ? true : null),
      20_000,
      "every reply delivered",
    );
    expect(n("SELECT COUNT(*) AS n FROM outbox WHERE request_id IS NOT NULL")).toBe(N + 1);
    expect(second.verify()).toEqual([]);
  });

  it(
    "a backlog after downtime with the gate's own earlier replies inside the resubscription overlap: every request answered",
    { timeout: 90_000 },
    async () => {
      // The gate's kind 7000 replies come back through their own filter of the same
      // subscription and reach further back than the relay's truncated page of job
      // requests: paging back from the oldest event across filters skipped the gap between.
      const relay = await startEmbeddedRelay();
      cleanups.push(() => relay.close());
      // Past its 3 pending jobs the customer is gated: the invoice limit (SPEC §6) is lifted so every request is decided.
      const first = await startGate({ relays: [relay.url], over: UNLIMITED_INVOICES });
      cleanups.push(() => first.tmp.remove());
      const elite = await new Customer().connect([relay.url]);
      cleanups.push(() => elite.close());
      first.ledger.setTier(elite.pubkey, "elite", first.nowMs());
      const warm = elite.request(first.pubkey, { input: "before" });
      await elite.publish(warm);
      await elite.waitFeedback(warm.id, "processing");
      const replyAt = (await fetchEvents(relay.url, { kinds: [7000], authors: [first.pubkey] }))[0]!.created_at;
      await sleep(1200); // the cursor is saved at most once a second
      await first.stop();
      // The requests come after the reply: the reply is inside the overlap (cursor − 60 s),
      // and older than the newest page of requests.
      await waitFor(() => Math.floor(Date.now() / 1000) >= replyAt + 2 || null, 5000, "two seconds past the reply");
      const N = 250;
      const createdAt = (i: number) => (i < 150 ? replyAt + 1 : replyAt + 2);
      const sent: Event[] = [];
      for (let i = 0; i < N; i++) {
        const ev = elite.request(first.pubkey, { input: `while down ${i}`, createdAt: createdAt(i) });
        await elite.publish(ev);
        sent.push(ev);
      }

      const second = await startGate({ relays: [relay.url], over: UNLIMITED_INVOICES, tmp: first.tmp, secretKey: first.secretKey });
      cleanups.push(() => second.stop());
      const n = (sql: string) => (second.ledger.db.prepare(sql).get() as { n: number }).n;
      await waitForAsync(async () => (n("SELECT COUNT(*) AS n FROM requests") === N + 1 ? true : null), 40_000, `all ${N + 1} requests decided`);
      await waitForAsync(
        async () => (n("SELECT COUNT(*) AS n FROM outbox WHERE request_id IS NOT NULL AND state = 'done'") === N + 1 ? true : null),
        20_000,
        "every reply delivered",
      );
      const answered = second.ledger.db.prepare("SELECT COUNT(*) AS n FROM outbox WHERE state = 'done' AND request_id IN (SELECT value FROM json_each(?))");
      expect((answered.get(JSON.stringify(sent.map((e) => e.id))) as { n: number }).n).toBe(N);
      expect(second.verify()).toEqual([]);
    },
  );
});
