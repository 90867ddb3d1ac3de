// The gate's whole life cycle over a real relay on 127.0.0.1: free, gated and partial
// decisions, dev-pay, grants chained by seq/prev, worker errors, expiring offers.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmbeddedRelay, type EmbeddedRelay } from "../../src/peers/embedded-relay.js";
import { decodeBolt11 } from "../../src/payments/bolt11.js";
import { devPay } from "../../src/payments/dev.js";
import { openDb } from "../../src/ledger/db.js";
import { parseGrantEvent } from "../../src/events/grant-event.js";
import { TestWorker } from "../helpers/worker.js";
import { Customer, fetchEvents, SAT, startGate, waitFor, waitForAsync, type Gate } from "./harness.js";

describe("gate service over a real relay", () => {
  let relay: EmbeddedRelay;
  let gate: Gate;
  let worker: TestWorker;
  const customers: Customer[] = [];

  beforeAll(async () => {
    relay = await startEmbeddedRelay();
    worker = new TestWorker();
    gate = await startGate({ relays: [relay.url], workers: [worker.pubkey] });
    await worker.connect([relay.url]);
  });
  afterAll(async () => {
    for (const c of customers) c.close();
    worker.close();
    await gate.stop();
    await relay.close();
    gate.tmp.remove();
  });

  const customer = async () => {
    const c = await new Customer().connect([relay.url]);
    customers.push(c);
    return c;
  };

  const grantEvents = async () =>
    (await fetchEvents(relay.url, { kinds: [1985], authors: [gate.pubkey] }))
      .map((e) => parseGrantEvent(e))
      .filter((g) => typeof g !== "string")
      .sort((a, b) => a.seq - b.seq);

  it("serves an elite customer free, then a worker result posts grant #1", async () => {
    const elite = await customer();
    gate.ledger.setTier(elite.pubkey, "elite", gate.nowMs());
    const req = elite.request(gate.pubkey);
    await elite.publish(req);
    const fb = await elite.waitFeedback(req.id, "processing");
    expect(fb.freeTier).toEqual({ label: "free", absorbedMsats: 10 * SAT, chargeMsats: 0 });
    expect(fb.event.pubkey).toBe(gate.pubkey);
    expect(gate.ledger.totals().pendingMsats).toBe(10 * SAT);

    await worker.result(req, { amountMsats: 7 * SAT });
    await waitFor(() => gate.ledger.getRequest(req.id)?.state === "done", 8000, "settlement");
    const t = gate.ledger.totals();
    expect(t).toMatchObject({ absorbedMsats: 7 * SAT, pendingMsats: 0, poolMsats: 10_000 * SAT - 7 * SAT });
    const grants = await waitForAsync(
      async () => {
        const g = await grantEvents();
        return g.length === 1 ? g : null;
      },
      8000,
      "grant #1",
    );
    const g1 = grants[0]!;
    expect(g1).toMatchObject({ seq: 1, prevEventId: null, requestId: req.id, absorbedMsats: 7 * SAT, label: "free", tier: "elite" });
    expect(g1.totals).toEqual(t);
    expect(gate.verify()).toEqual([]);
  });

  it("gates a new customer with an invoice for the price; dev-pay → processing; result → grant-less settle", async () => {
    const fresh = await customer();
    const req = fresh.request(gate.pubkey);
    await fresh.publish(req);
    const fb = await fresh.waitFeedback(req.id, "payment-required");
    expect(fb.amountMsats).toBe(10 * SAT);
    expect(fb.freeTier).toBeNull();
    const inv = decodeBolt11(fb.bolt11!);
    expect(inv.amountMsats).toBe(10 * SAT);
    expect(gate.ledger.getRequest(req.id)).toMatchObject({ decision: "gate", state: "awaiting-payment", absorbMsats: 0 });

    expect(devPay(gate.ledger.db, fb.bolt11!, Date.now()).status).toBe("paid");
    const paid = await fresh.waitFeedback(req.id, "processing");
    expect(paid.freeTier).toBeNull();
    expect(gate.ledger.getRequest(req.id)).toMatchObject({ state: "processing", paidMsats: 10 * SAT });

    const before = gate.ledger.totals();
    await worker.result(req);
    await waitFor(() => gate.ledger.getRequest(req.id)?.state === "done", 8000, "settlement");
    // Nothing absorbed, so no grant; 10 % of what was paid is credited to the pool.
    expect(gate.ledger.totals()).toMatchObject({ creditedMsats: before.creditedMsats + SAT, absorbedMsats: before.absorbedMsats });
    expect(gate.ledger.identity(fresh.pubkey, gate.nowMs()).score).toBe(2);
    expect(gate.verify()).toEqual([]);
  });

  it("offers an established customer a partial job, honours it when paid, and chains grant #2 to #1", async () => {
    const est = await customer();
    gate.ledger.setTier(est.pubkey, "established", gate.nowMs());
    const req = est.request(gate.pubkey, { kind: 5051 }); // 70 sats, budget 50
    await est.publish(req);
    const fb = await est.waitFeedback(req.id, "payment-required");
    expect(fb.freeTier).toEqual({ label: "partial", absorbedMsats: 50 * SAT, chargeMsats: 20 * SAT });
    expect(fb.amountMsats).toBe(20 * SAT);
    expect(decodeBolt11(fb.bolt11!).amountMsats).toBe(20 * SAT);

    expect(devPay(gate.ledger.db, fb.bolt11!, Date.now()).status).toBe("paid");
    await est.waitFeedback(req.id, "processing");
    await worker.result(req);
    await waitFor(() => gate.ledger.getRequest(req.id)?.state === "done", 8000, "settlement");

    const [g1, g2] = await waitForAsync(
      async () => {
        const g = await grantEvents();
        return g.length === 2 ? g : null;
      },
      8000,
      "grant #2",
    );
    expect(g2).toMatchObject({ seq: 2, prevEventId: g1!.event.id, label: "partial", absorbedMsats: 50 * SAT, chargedMsats: 20 * SAT });
    expect(g2!.totals).toEqual(gate.ledger.totals());
    // The pool status (kind 30078, replaceable) follows the grants, throttled.
    const { parsePoolStatus } = await import("../../src/events/announce.js");
    await waitForAsync(
      async () => {
        const evs = await fetchEvents(relay.url, { kinds: [30078], authors: [gate.pubkey], "#d": ["dvm-gate/pool"] });
        const st = evs.map((e) => parsePoolStatus(e)).find((p) => typeof p !== "string");
        return st && typeof st !== "string" && st.absorbedMsats === g2!.totals.absorbedMsats ? st : null;
      },
      8000,
      "pool status after grant #2",
    );
    expect(gate.verify()).toEqual([]);
  });

  it("voids on a worker's error feedback and restores the pool", async () => {
    const elite = await customer();
    gate.ledger.setTier(elite.pubkey, "elite", gate.nowMs());
    const before = gate.ledger.totals();
    const req = elite.request(gate.pubkey);
    await elite.publish(req);
    await elite.waitFeedback(req.id, "processing");
    expect(gate.ledger.totals().poolMsats).toBe(before.poolMsats - 10 * SAT);
    await worker.error(req, "out of GPU");
    await waitFor(() => gate.ledger.getRequest(req.id)?.state === "failed", 8000, "void");
    expect(gate.ledger.totals()).toEqual(before);
    expect(gate.verify()).toEqual([]);
  });

  it("voids an unpaid offer when the customer deletes the request, but not when someone else does", async () => {
    const est = await customer();
    const other = await customer();
    gate.ledger.setTier(est.pubkey, "established", gate.nowMs());
    const before = gate.ledger.totals();
    // 70 sats against a 50 sat budget: a partial offer, its 50 sats reserved until paid.
    const req = est.request(gate.pubkey, { kind: 5051 });
    await est.publish(req);
    await est.waitFeedback(req.id, "payment-required");
    expect(gate.ledger.totals().pendingMsats).toBe(before.pendingMsats + 50 * SAT);
    const { finalizeEvent } = await import("nostr-tools/pure");
    const del = (sk: Uint8Array) => finalizeEvent({ kind: 5, created_at: Math.floor(Date.now() / 1000), tags: [["e", req.id]], content: "" }, sk);
    await other.publish(del(other.secretKey));
    // Handled in order: once the control request is decided, the stranger's deletion was read.
    const control = other.request(gate.pubkey, { input: "control" });
    await other.publish(control);
    await other.waitFeedback(control.id, "payment-required");
    expect(gate.ledger.getRequest(req.id)?.state).toBe("awaiting-payment");
    await est.publish(del(est.secretKey));
    await waitFor(() => gate.ledger.getRequest(req.id)?.state === "failed", 8000, "deletion void");
    expect(gate.ledger.totals()).toEqual(before);
  });

  it("answers encrypted requests (NIP-44 and NIP-04) with replies encrypted in the same scheme", async () => {
    const { signJobRequest } = await import("../../src/events/job-request.js");
    const { detectScheme } = await import("../../src/events/encryption.js");
    const elite = await customer();
    gate.ledger.setTier(elite.pubkey, "elite", gate.nowMs());
    const fresh = await customer();
    const now = Math.floor(Date.now() / 1000);
    const spec = { kind: 5050, gatePubkey: gate.pubkey, inputs: [["i", "secret question", "text"]], createdAtSec: now };
    const r44 = signJobRequest({ ...spec, encryption: "nip44" }, elite.secretKey);
    const r04 = signJobRequest({ ...spec, encryption: "nip04" }, fresh.secretKey);
    await elite.publish(r44);
    await fresh.publish(r04);
    const f44 = await elite.waitFeedback(r44.id, "processing");
    const f04 = await fresh.waitFeedback(r04.id, "payment-required");
    for (const [f, scheme] of [
      [f44, "nip44"],
      [f04, "nip04"],
    ] as const) {
      expect(f.encrypted).toBe(true);
      expect(detectScheme(f.event.content)).toBe(scheme);
      // Nothing about the job travels in the clear.
      expect(f.event.tags.map((t) => t[0]).sort()).toEqual(["e", "encrypted", "expiration", "p"]);
    }
    expect(f44.freeTier?.label).toBe("free");
    expect(decodeBolt11(f04.bolt11!).amountMsats).toBe(10 * SAT);
  });

  it("expires an unpaid partial offer and returns its reservation", async () => {
    const est = await customer();
    gate.ledger.setTier(est.pubkey, "established", gate.nowMs());
    const before = gate.ledger.totals();
    const req = est.request(gate.pubkey, { kind: 5051 });
    await est.publish(req);
    await est.waitFeedback(req.id, "payment-required");
    expect(gate.ledger.totals().pendingMsats).toBe(before.pendingMsats + 50 * SAT);
    // Past the offer (invoiceExpirySec 120) and its payment grace: the service's own sweep expires it.
    gate.advance(121_000 + gate.cfg.payments.paymentGraceSec * 1000);
    await waitFor(() => gate.ledger.getRequest(req.id)?.state === "expired", 8000, "expiry");
    expect(gate.ledger.totals()).toEqual(before);
    const inv = gate.ledger.db.prepare("SELECT state FROM invoices WHERE request_id = ?").get(req.id) as { state: string };
    await waitFor(
      () => (gate.ledger.db.prepare("SELECT state FROM invoices WHERE request_id = ?").get(req.id) as { state: string }).state === "expired",
      4000,
      "invoice expired",
    );
    expect(inv).toBeDefined();
    expect(gate.verify()).toEqual([]);
  });

  it("honours a payment made before the deadline but first seen after it (the service was down)", async () => {
    const fresh = await customer();
    const req = fresh.request(gate.pubkey, {});
    await fresh.publish(req);
    const offer = await fresh.waitFeedback(req.id, "payment-required");
    const { tmp, secretKey, cfg } = gate;
    await gate.stop();
    // Paid now, within the 120 s offer, while no service is watching.
    const db = openDb(cfg.database.path, { synchronous: "NORMAL" });
    expect(devPay(db, offer.bolt11!, Date.now()).status).toBe("paid");
    db.close();
    // The service comes back after the deadline but within the payment grace.
    gate = await startGate({ relays: [relay.url], workers: [worker.pubkey], tmp, secretKey, offsetMs: 150_000 });
    await fresh.waitFeedback(req.id, "processing", 10_000);
    expect(gate.ledger.getRequest(req.id)?.state).toBe("processing");
    expect(gate.verify()).toEqual([]);
  });

  it("spends what the customer paid first when the worker states the cost: absorbed = min(reserved, cost − charged)", async () => {
    const est = await customer();
    gate.ledger.setTier(est.pubkey, "established", gate.nowMs());
    const req = est.request(gate.pubkey, { kind: 5051, input: "stated cost" }); // 70 sats: 50 from the pool, 20 charged
    await est.publish(req);
    const fb = await est.waitFeedback(req.id, "payment-required");
    expect(fb.freeTier).toEqual({ label: "partial", absorbedMsats: 50 * SAT, chargeMsats: 20 * SAT });
    expect(devPay(gate.ledger.db, fb.bolt11!, gate.nowMs()).status).toBe("paid");
    await est.waitFeedback(req.id, "processing");
    const poolBefore = gate.ledger.totals().poolMsats;
    // The job cost 60 sats: the customer's 20 pay for the first 20, the pool for 40, and
    // the other 10 reserved go back (before, the pool absorbed min(50, 60) = 50).
    await worker.result(req, { amountMsats: 60 * SAT });
    await waitFor(() => gate.ledger.getRequest(req.id)?.state === "done", 8000, "settlement");
    const [grant] = gate.ledger.grants({ pubkey: est.pubkey });
    expect(grant).toMatchObject({ requestId: req.id, label: "partial", absorbedMsats: 40 * SAT, chargedMsats: 20 * SAT });
    // The 10 sats back, plus the 10 % pool credit of the 20 sats paid.
    expect(gate.ledger.totals().poolMsats - poolBefore).toBe(10 * SAT + 2 * SAT);
    expect(gate.verify()).toEqual([]);
  });
});
