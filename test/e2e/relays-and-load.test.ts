// One request through several relays, and a burst from one customer.
import { afterEach, describe, expect, it } from "vitest";
import { startEmbeddedRelay, type EmbeddedRelay } from "../../src/peers/embedded-relay.js";
import { Customer, fetchEvents, SAT, startGate, waitFor, waitForAsync, type Gate } from "./harness.js";

describe("relays and load", () => {
  const relays: EmbeddedRelay[] = [];
  const customers: Customer[] = [];
  let gate: Gate | null = null;

  afterEach(async () => {
    for (const c of customers.splice(0)) c.close();
    if (gate) {
      await gate.stop();
      gate.tmp.remove();
      gate = null;
    }
    for (const r of relays.splice(0)) await r.close();
  });

  it("one request seen on 3 relays: one decision, one reservation, one reply per relay (and one on the request's own reply relay)", async () => {
    for (let i = 0; i < 4; i++) relays.push(await startEmbeddedRelay());
    const [a, b, c, d] = relays.map((r) => r.url) as [string, string, string, string];
    gate = await startGate({ relays: [a, b, c] });
    const elite = await new Customer().connect([a, b, c]);
    customers.push(elite);
    gate.ledger.setTier(elite.pubkey, "elite", gate.nowMs());
    const before = gate.ledger.totals();

    // The relays tag names a fourth relay the gate does not listen on: replies go there too.
    const req = elite.request(gate.pubkey, { tags: [["relays", d]] });
    await elite.publish(req);
    await elite.waitFeedback(req.id, "processing");

    for (const url of [a, b, c, d]) {
      const replies = await waitForAsync(
        async () => {
          const evs = await fetchEvents(url, { kinds: [7000], "#e": [req.id] });
          return evs.length > 0 ? evs : null;
        },
        8000,
        `reply on ${url}`,
      );
      expect(replies.length).toBe(1);
      expect(replies[0]!.pubkey).toBe(gate.pubkey);
    }
    // The customer's subscription on 3 relays saw the same single event (same id) three times.
    expect(new Set(elite.feedback(req.id).map((f) => f.event.id)).size).toBe(1);
    const db = gate.ledger.db;
    expect((db.prepare("SELECT COUNT(*) AS n FROM requests").get() as { n: number }).n).toBe(1);
    expect((db.prepare("SELECT COUNT(*) AS n FROM reservations").get() as { n: number }).n).toBe(1);
    expect((db.prepare("SELECT COUNT(*) AS n FROM outbox WHERE request_id = ?").get(req.id) as { n: number }).n).toBe(1);
    expect(gate.ledger.totals().pendingMsats).toBe(before.pendingMsats + 10 * SAT);
    expect(gate.verify()).toEqual([]);
  });

  it("answers NIP-42 AUTH with the gate key, and publishes to a relay that wants AUTH before EVENTs", async () => {
    const r = await startEmbeddedRelay({ authHostname: "127.0.0.1" });
    relays.push(r);
    const authed: string[] = [];
    const refusedBeforeAuth: string[] = [];
    r.relay.register({
      async handleMessage(ctx: { pubkey?: string; sendMessage: (m: unknown[]) => void }, message: unknown[], next: () => Promise<unknown>) {
        if (message[0] === "EVENT" && !ctx.pubkey) {
          const ev = message[1] as { id: string; pubkey: string };
          // Only the gate's own events are held back: customers publish unauthenticated.
          if (ev.pubkey === gate?.pubkey) {
            refusedBeforeAuth.push(ev.id);
            ctx.sendMessage(["OK", ev.id, false, "auth-required: publish after AUTH"]);
            return { messageType: "EVENT", success: false };
          }
        }
        const out = await next();
        if (message[0] === "AUTH" && ctx.pubkey) authed.push(ctx.pubkey);
        return out;
      },
    } as never);
    gate = await startGate({ relays: [r.url] });
    const elite = await new Customer().connect([r.url]);
    customers.push(elite);
    gate.ledger.setTier(elite.pubkey, "elite", gate.nowMs());
    const req = elite.request(gate.pubkey);
    await elite.publish(req);
    await elite.waitFeedback(req.id, "processing");
    expect(authed).toContain(gate.pubkey);
    expect(authed.every((pk) => pk === gate!.pubkey)).toBe(true);
  });

  it("30 concurrent requests from one established customer (50 sats/day, price 10): exactly 5 free, 25 gated", async () => {
    relays.push(await startEmbeddedRelay());
    const url = relays[0]!.url;
    // maxPendingPerPubkey and maxOpenInvoicesPerPubkey are raised to 30 so that the budget,
    // not the pending cap or the invoice limit, is what limits the burst (no worker settles during it).
    gate = await startGate({
      relays: [url],
      over: {
        freeTier: { budgetsSats: { new: 0, established: 50, trusted: 200, elite: 1000 }, poolInitialSats: 10_000, poolCreditPct: 10, maxPendingPerPubkey: 30 },
        payments: { backend: "dev", dev: { enabled: true }, invoiceExpirySec: 120, maxOpenInvoicesPerPubkey: 30 },
      },
    });
    const cust = await new Customer().connect([url]);
    customers.push(cust);
    gate.ledger.setTier(cust.pubkey, "established", gate.nowMs());
    const reqs = Array.from({ length: 30 }, (_, i) => cust.request(gate!.pubkey, { input: `job ${i}` }));
    await Promise.all(reqs.map((r) => cust.publish(r)));

    const replies = await waitFor(
      () => {
        const got = reqs.map((r) => cust.feedback(r.id)[0]);
        return got.every((f) => f !== undefined) ? got : null;
      },
      20_000,
      "30 replies",
    );
    const free = replies.filter((f) => f!.status === "processing");
    const gated = replies.filter((f) => f!.status === "payment-required");
    expect(free.length).toBe(5);
    expect(gated.length).toBe(25);
    for (const f of free) expect(f!.freeTier).toEqual({ label: "free", absorbedMsats: 10 * SAT, chargeMsats: 0 });
    for (const f of gated) expect(f!.amountMsats).toBe(10 * SAT);
    expect(gate.ledger.identity(cust.pubkey, gate.nowMs()).usedMsats).toBe(50 * SAT);
    expect(gate.ledger.totals().pendingMsats).toBe(50 * SAT);
    expect(gate.verify()).toEqual([]);
  });
});
