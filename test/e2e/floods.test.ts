// Floods (issue 10, SPEC §6 invoice limits): fresh keys cannot run up invoices, and
// known customers are decided first however many fresh-key requests wait with them.
// Real relays on 127.0.0.1, real signed events; silence is proven by a control request
// that is decided after the flood (a banned key: answered `blocked`, in the lowest tier).
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { generateSecretKey, getPublicKey, type Event } from "nostr-tools/pure";
import { startEmbeddedRelay, type EmbeddedRelay } from "../../src/peers/embedded-relay.js";
import { Customer, fetchEvents, startGate, waitFor, waitForAsync, type Gate } from "./harness.js";
import { freshKeyRequests, initFastSign, jobRequest, preloadRelayStore } from "../helpers/flood-events.js";
import { makeTmpDir } from "../helpers/tmp.js";
import { initFastVerify } from "../../src/events/verify.js";
import { verifyLedger } from "../../src/ledger/verify.js";
import { startServiceProcess, writeConfig } from "../helpers/service-process.js";
import Database from "better-sqlite3";

const PAYMENTS = { backend: "dev", dev: { enabled: true }, invoiceExpirySec: 120 };

function count(gate: Gate, sql: string, ...args: unknown[]): number {
  return (gate.ledger.db.prepare(sql).get(...args) as { n: number }).n;
}

/** Publishes events over one connection, in order, waiting for each OK. */
async function publishAll(c: Customer, events: Event[]): Promise<void> {
  for (const ev of events) await c.publish(ev);
}

describe("floods", () => {
  const relays: EmbeddedRelay[] = [];
  const customers: Customer[] = [];
  const cleanups: (() => Promise<void> | void)[] = [];
  let gate: Gate | null = null;

  beforeAll(async () => {
    await initFastSign();
    // As `dvm-gate start` does: the wasm verifier for the gate's checks.
    expect(await initFastVerify()).toBe(true);
  });

  afterEach(async () => {
    for (const c of customers.splice(0)) c.close();
    if (gate) {
      await gate.stop();
      gate.tmp.remove();
      gate = null;
    }
    for (const r of relays.splice(0)) await r.close();
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /** A banned key's request, sent last: its `blocked` answer says everything before it was decided. */
  async function control(g: Gate, via: Customer): Promise<Event> {
    const sk = generateSecretKey();
    g.ledger.setBanned(getPublicKey(sk), true, "control", g.nowMs());
    const ev = jobRequest(sk, g.pubkey, { input: "control" });
    await via.publish(ev);
    await waitForAsync(async () => (await fetchEvents(relays[0]!.url, { kinds: [7000], "#e": [ev.id] })).length > 0, 30_000, "the control's blocked answer");
    return ev;
  }

  it(
    "300 requests from one fresh key: at most 3 invoices, one rate-limited reply in the minute, the rest silent; after an invoice expires the key gets a new one",
    { timeout: 90_000 },
    async () => {
      relays.push(await startEmbeddedRelay());
      const url = relays[0]!.url;
      gate = await startGate({ relays: [url], over: { payments: PAYMENTS } });
      const spammer = await new Customer().connect([url]);
      customers.push(spammer);
      const reqs = Array.from({ length: 300 }, (_, i) => jobRequest(spammer.secretKey, gate!.pubkey, { input: `spam ${i}` }));
      await publishAll(spammer, reqs);
      await control(gate, spammer);

      const ids = reqs.map((r) => r.id);
      const g = gate;
      // Every reply the gate wrote for these is on the relay before we count what is there.
      await waitFor(
        () =>
          count(g, "SELECT COUNT(*) AS n FROM outbox WHERE state NOT IN ('done','abandoned')") === 0 && count(g, "SELECT COUNT(*) AS n FROM invoices") === 3,
        30_000,
        "replies delivered",
      );
      const replies = await fetchEvents(url, { kinds: [7000], "#e": ids, limit: 1000 });
      const statuses = replies.map((ev) => ev.tags.find((t) => t[0] === "status")!);
      expect(statuses.filter((s) => s[1] === "payment-required").length).toBe(3);
      const limited = statuses.filter((s) => s[1] === "error");
      expect(limited.length).toBe(1);
      expect(limited[0]![2]).toMatch(/^rate-limited: /);
      expect(replies.length).toBe(4);
      expect(count(g, "SELECT COUNT(*) AS n FROM requests WHERE pubkey = ?", spammer.pubkey)).toBe(3);
      expect(count(g, "SELECT COUNT(*) AS n FROM limited_requests WHERE pubkey = ?", spammer.pubkey)).toBe(297);
      expect(count(g, "SELECT COUNT(*) AS n FROM reservations")).toBe(0);

      // The offers expire (the service's clock moves past invoiceExpirySec): a new one may be
      // made, before the sweep (which waits out payments.paymentGraceSec) closes them.
      g.advance(121_000);
      const again = jobRequest(spammer.secretKey, g.pubkey, { input: "after expiry" });
      await spammer.publish(again);
      const fb = await spammer.waitFeedback(again.id, "payment-required", 15_000);
      expect(fb.bolt11).toMatch(/^ln/);
      expect(g.verify()).toEqual([]);
    },
  );

  it(
    "1,000 requests from 1,000 fresh keys with newTierInvoicesPerMinute 60: at most 60 invoices in the minute, nothing reserved, verify clean",
    { timeout: 120_000 },
    async () => {
      relays.push(await startEmbeddedRelay());
      const url = relays[0]!.url;
      gate = await startGate({ relays: [url], over: { payments: { ...PAYMENTS, newTierInvoicesPerMinute: 60 } } });
      const sender = await new Customer().connect([url]);
      customers.push(sender);
      const reqs = freshKeyRequests(1000, gate.pubkey);
      const poolBefore = gate.ledger.totals();
      await publishAll(sender, reqs);
      await control(gate, sender);

      const g = gate;
      await waitFor(() => count(g, "SELECT COUNT(*) AS n FROM invoices") === 60, 30_000, "60 invoices");
      expect(count(g, "SELECT COUNT(*) AS n FROM requests WHERE decision IN ('partial','gate')")).toBe(60);
      expect(count(g, "SELECT COUNT(*) AS n FROM limited_requests WHERE limit_hit = 'new-tier-rate'")).toBe(940);
      // The rate-limited answers are bounded too (payments.newTierLimitRepliesPerMinute, 60).
      expect(count(g, "SELECT COUNT(*) AS n FROM limited_requests WHERE replied = 1")).toBe(60);
      expect(count(g, "SELECT COUNT(*) AS n FROM reservations")).toBe(0);
      expect(g.ledger.totals()).toEqual(poolBefore);
      expect(g.verify()).toEqual([]);
    },
  );

  it(
    "a backlog waiting for a gate that was down: the 20 elite requests (10 sent before 2,000 fresh-key ones, 10 after) are decided before the 100th fresh-key one",
    { timeout: 120_000 },
    async () => {
      const tmp = makeTmpDir("dvm-gate-backlog-");
      cleanups.push(() => tmp.remove());
      const gateSk = generateSecretKey();
      const gatePk = getPublicKey(gateSk);
      const elite = new Customer();
      const nowSec = Math.floor(Date.now() / 1000);
      // Kind 5052 costs nothing: every request is decided free and answered, so the outbox's
      // order is the decisions' order.
      const before = Array.from({ length: 10 }, (_, i) =>
        jobRequest(elite.secretKey, gatePk, { kind: 5052, createdAt: nowSec - 300, input: `elite before ${i}` }),
      );
      const fresh = freshKeyRequests(2000, gatePk, { kind: 5052, createdAt: (i) => nowSec - 290 + Math.floor(i / 10) });
      const after = Array.from({ length: 10 }, (_, i) =>
        jobRequest(elite.secretKey, gatePk, { kind: 5052, createdAt: nowSec - 60, input: `elite after ${i}` }),
      );
      const relayDb = tmp.file("relay.sqlite");
      await preloadRelayStore(relayDb, [...before, ...fresh, ...after]);
      relays.push(await startEmbeddedRelay({ dbPath: relayDb }));

      const kinds = { "5050": { priceSats: 10 }, "5052": { priceSats: 0 } };
      gate = await startGate({
        relays: [relays[0]!.url],
        secretKey: gateSk,
        tmp: makeTmpDir("dvm-gate-e2e-"),
        over: { jobs: { kinds, timeoutSec: 600, maxRequestAgeSec: 900 }, payments: PAYMENTS },
        beforeStart: (ledger, nowMs) => ledger.setTier(elite.pubkey, "elite", nowMs),
      });
      const g = gate;
      await waitFor(() => count(g, "SELECT COUNT(*) AS n FROM outbox WHERE purpose = 'feedback-processing'") >= 120, 60_000, "120 decisions");
      const order = g.ledger.db
        .prepare(
          "SELECT o.request_id AS id, r.pubkey FROM outbox o JOIN requests r ON r.request_id = o.request_id WHERE o.purpose = 'feedback-processing' ORDER BY o.id",
        )
        .all() as { id: string; pubkey: string }[];
      const eliteAt = order.map((r, i) => (r.pubkey === elite.pubkey ? i : -1)).filter((i) => i >= 0);
      const freshAt = order.map((r, i) => (r.pubkey !== elite.pubkey ? i : -1)).filter((i) => i >= 0);
      expect(eliteAt.length).toBe(20);
      expect(Math.max(...eliteAt)).toBeLessThan(freshAt[99]!);
      // Within the elite tier the oldest first: the 10 sent before the flood lead.
      expect(new Set(order.slice(0, 10).map((r) => r.id))).toEqual(new Set(before.map((e) => e.id)));
    },
  );

  it("a forged request carrying an elite customer's pubkey, sent during a flood, is dropped and costs that customer nothing", { timeout: 90_000 }, async () => {
    relays.push(await startEmbeddedRelay());
    const url = relays[0]!.url;
    gate = await startGate({ relays: [url], over: { payments: PAYMENTS } });
    const g = gate;
    const elite = await new Customer().connect([url]);
    customers.push(elite);
    g.ledger.setTier(elite.pubkey, "elite", g.nowMs());
    const identityBefore = g.ledger.identity(elite.pubkey, g.nowMs());
    const logBefore = count(g, "SELECT COUNT(*) AS n FROM identity_log WHERE pubkey = ?", elite.pubkey);

    const flood = freshKeyRequests(300, g.pubkey);
    // Signed by someone else, then given the elite pubkey: the id and signature no longer match it.
    const forged = { ...jobRequest(generateSecretKey(), g.pubkey, { input: "forged" }), pubkey: elite.pubkey };
    const sender = await new Customer().connect([url]);
    customers.push(sender);
    await publishAll(sender, flood.slice(0, 150));
    // The relay would refuse it: it goes straight to the subscribers, as a relay that does not verify would send it.
    await relays[0]!.relay.broadcast(forged as never);
    await publishAll(sender, flood.slice(150));
    await control(g, sender);

    expect(g.ledger.getRequest(forged.id)).toBeNull();
    expect(count(g, "SELECT COUNT(*) AS n FROM limited_requests WHERE request_id = ?", forged.id)).toBe(0);
    expect(count(g, "SELECT COUNT(*) AS n FROM outbox WHERE request_id = ?", forged.id)).toBe(0);
    expect(count(g, "SELECT COUNT(*) AS n FROM identity_log WHERE pubkey = ?", elite.pubkey)).toBe(logBefore);
    expect(g.ledger.identity(elite.pubkey, g.nowMs())).toEqual({ ...identityBefore });
    // And the real customer is served as before.
    const real = elite.request(g.pubkey, { input: "real" });
    await elite.publish(real);
    await elite.waitFeedback(real.id, "processing");
    expect(g.verify()).toEqual([]);
  });

  it("restart in the middle of a flood (kill -9): the limits still hold and nothing is decided twice", { timeout: 120_000 }, async () => {
    const tmp = makeTmpDir("dvm-gate-flood-restart-");
    cleanups.push(() => tmp.remove());
    relays.push(await startEmbeddedRelay());
    const url = relays[0]!.url;
    const gateSk = generateSecretKey();
    const gatePk = getPublicKey(gateSk);
    const dbPath = tmp.file("gate.sqlite");
    const configPath = writeConfig(tmp.file("config.json"), {
      nostr: { secretKey: Buffer.from(gateSk).toString("hex"), relays: [url] },
      database: { path: dbPath, synchronous: "NORMAL" },
      jobs: { kinds: { "5050": { priceSats: 10 } }, timeoutSec: 600 },
      payments: { backend: "dev", dev: { enabled: true }, maxOpenInvoicesPerPubkey: 3, newTierInvoicesPerMinute: 20 },
      http: { enabled: false },
      log: { level: "warn" },
    });
    const spammer = new Customer();
    // 200 from one fresh key and 100 from fresh keys, interleaved.
    const fresh = freshKeyRequests(100, gatePk);
    const flood = Array.from({ length: 300 }, (_, i) => (i % 3 === 2 ? fresh[(i - 2) / 3]! : jobRequest(spammer.secretKey, gatePk, { input: `spam ${i}` })));
    const sender = await new Customer().connect([url]);
    customers.push(sender);

    let svc = await startServiceProcess(configPath);
    cleanups.push(() => svc.kill("SIGKILL").then(() => {}));
    const db = new Database(dbPath, { readonly: true, fileMustExist: true });
    cleanups.push(() => {
      db.close();
    });
    const n = (sql: string, ...args: unknown[]) => (db.prepare(sql).get(...args) as { n: number }).n;
    const handled = () => n("SELECT COUNT(*) AS n FROM requests") + n("SELECT COUNT(*) AS n FROM limited_requests");

    await publishAll(sender, flood.slice(0, 150));
    await waitFor(() => handled() >= 40, 30_000, "40 requests handled");
    expect(await svc.kill("SIGKILL")).toBeNull();
    const handledAtKill = handled();
    await publishAll(sender, flood.slice(150));
    svc = await startServiceProcess(configPath);
    await waitFor(() => handled() === 300, 60_000, "all 300 requests handled");
    expect(handledAtKill).toBeLessThan(300);

    // Limits: 3 open invoices for the one key; at most 20 invoiced new-tier decisions in any minute.
    expect(n("SELECT COUNT(*) AS n FROM requests WHERE pubkey = ?", spammer.pubkey)).toBe(3);
    const invoicedAt = (
      db.prepare("SELECT created_at_ms AS t FROM requests WHERE tier = 'new' AND decision IN ('partial','gate') ORDER BY t").all() as { t: number }[]
    ).map((r) => r.t);
    for (const [i, t] of invoicedAt.entries())
      expect(invoicedAt.filter((u) => u >= t && u < t + 60_000).length, `window from decision ${i}`).toBeLessThanOrEqual(20);
    expect(n("SELECT COUNT(*) AS n FROM limited_requests WHERE pubkey = ? AND replied = 1", spammer.pubkey)).toBe(1);
    // Nothing decided twice: no request both decided and refused, and at most one reply each on the relay.
    expect(n("SELECT COUNT(*) AS n FROM requests r JOIN limited_requests l ON l.request_id = r.request_id")).toBe(0);
    await waitFor(() => n("SELECT COUNT(*) AS n FROM outbox WHERE state NOT IN ('done','abandoned')") === 0, 30_000, "replies delivered");
    const replies = await fetchEvents(url, { kinds: [7000], "#e": flood.map((e) => e.id), limit: 1000 });
    const perRequest = new Map<string, number>();
    for (const ev of replies) {
      const e = ev.tags.find((t) => t[0] === "e")![1]!;
      perRequest.set(e, (perRequest.get(e) ?? 0) + 1);
    }
    expect([...perRequest.values()].every((c) => c === 1)).toBe(true);
    expect(perRequest.size).toBe(n("SELECT COUNT(*) AS n FROM outbox WHERE request_id IS NOT NULL AND event_id IS NOT NULL"));
    await svc.kill("SIGTERM");
    expect(verifyLedger(db).map((v) => JSON.stringify(v))).toEqual([]);
  });
});
