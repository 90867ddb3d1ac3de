// SPEC §2: a customer's deletion after the go signal (`processing`) cancels nothing that
// was spent. The reservation stays pending and counted against the budget until the
// worker's result (posted), its error or the deadline. Otherwise deleting each request
// right after its go signal frees the budget again and buys unlimited free work.
import { afterEach, describe, expect, it } from "vitest";
import { finalizeEvent, type Event } from "nostr-tools/pure";
import { startEmbeddedRelay } from "../../src/peers/embedded-relay.js";
import { parseGrantEvent } from "../../src/events/grant-event.js";
import { TestWorker } from "../helpers/worker.js";
import { Customer, fetchEvents, SAT, startGate, UNLIMITED_INVOICES, waitFor, waitForAsync } from "./harness.js";

const deletionOf = (req: Event, sk: Uint8Array) =>
  finalizeEvent({ kind: 5, created_at: Math.floor(Date.now() / 1000), tags: [["e", req.id]], content: "" }, sk);

describe("deletion after the go signal", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it(
    "an established customer deleting each job after its go signal gets only the 5 free jobs its budget allows; a later result posts the reservation",
    { timeout: 60_000 },
    async () => {
      const relay = await startEmbeddedRelay();
      cleanups.push(() => relay.close());
      const worker = await new TestWorker().connect([relay.url]);
      cleanups.push(() => worker.close());
      // The pending limit and the invoice limit (SPEC §6) out of the way: the budget (50 sats a
      // day, 10 sats a job) is what binds.
      const gate = await startGate({ relays: [relay.url], workers: [worker.pubkey], over: { freeTier: { maxPendingPerPubkey: 20 }, ...UNLIMITED_INVOICES } });
      cleanups.push(async () => {
        await gate.stop();
        gate.tmp.remove();
      });
      const cheat = await new Customer().connect([relay.url]);
      cleanups.push(() => cheat.close());
      gate.ledger.setTier(cheat.pubkey, "established", gate.nowMs());
      const before = gate.ledger.totals();

      const N = 8;
      const answers: { req: Event; status: string }[] = [];
      for (let i = 0; i < N; i++) {
        const req = cheat.request(gate.pubkey, { input: `job ${i}` });
        await cheat.publish(req);
        const fb = await waitFor(() => cheat.feedback(req.id)[0], 8000, `an answer to job ${i}`);
        answers.push({ req, status: fb.status });
        // Deleted at once, as soon as the go signal was seen: handled before the next request is decided.
        if (fb.status === "processing") await cheat.publish(deletionOf(req, cheat.secretKey));
      }
      const free = answers.filter((a) => a.status === "processing");
      expect(free.length).toBe(5);
      expect(answers.slice(5).map((a) => a.status)).toEqual(["payment-required", "payment-required", "payment-required"]);
      // The last deletion is read before this control request is decided (one subscription, in order).
      const control = cheat.request(gate.pubkey, { input: "control" });
      await cheat.publish(control);
      await cheat.waitFeedback(control.id, "payment-required");
      for (const { req } of free) expect(gate.ledger.getRequest(req.id)?.state).toBe("processing");
      expect(gate.ledger.totals().pendingMsats).toBe(before.pendingMsats + 5 * 10 * SAT);

      // The work was done after all: the result posts the reservation and its grant is published.
      const done = free[0]!.req;
      await worker.result(done);
      await waitFor(() => gate.ledger.getRequest(done.id)?.state === "done", 8000, "the result settled");
      const grant = await waitForAsync(
        async () =>
          (await fetchEvents(relay.url, { kinds: [1985], authors: [gate.pubkey], "#e": [done.id] }))
            .map((e) => parseGrantEvent(e))
            .find((g) => typeof g !== "string"),
        8000,
        "the grant event",
      );
      expect(grant).toMatchObject({ requestId: done.id, absorbedMsats: 10 * SAT, label: "free" });
      // The worker's error still voids one: the budget it held comes back.
      const failed = free[1]!.req;
      await worker.error(failed, "gave up");
      await waitFor(() => gate.ledger.getRequest(failed.id)?.state === "failed", 8000, "the error voided it");
      expect(gate.ledger.totals().pendingMsats).toBe(before.pendingMsats + 3 * 10 * SAT);
      expect(gate.verify()).toEqual([]);
    },
  );
});
