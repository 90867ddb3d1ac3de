// SPEC §11 `nip90` backend: an unmodified NIP-90 DVM (its own process, its own relay,
// knowing nothing of dvm-gate) behind the gate. The gate asks it as its own customer
// and answers ours with its own signed feedback and result.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmbeddedRelay, type EmbeddedRelay } from "../../src/peers/embedded-relay.js";
import { UPSTREAM_ASKS_PAYMENT } from "../../src/backends/nip90.js";
import { AbstractRelay } from "nostr-tools/abstract-relay";
import { finalizeEvent, type Event } from "nostr-tools/pure";
import { getJob } from "../../src/ledger/job-store.js";
import WebSocket from "ws";
import { fetchEvents, waitFor, type Customer, type Gate } from "../e2e/harness.js";
import type { ChildHandle } from "../helpers/service-process.js";
import { backendGate, customerOf, startUpstreamDvm, waitResult } from "./harness.js";

describe("nip90 backend", () => {
  let ours: EmbeddedRelay;
  let theirs: EmbeddedRelay;
  let upstream: ChildHandle & { pubkey: string };
  let gate: Gate;
  let alice: Customer;

  beforeAll(async () => {
    ours = await startEmbeddedRelay();
    theirs = await startEmbeddedRelay();
    upstream = await startUpstreamDvm(theirs.url, 5050);
    gate = await backendGate(
      ours.url,
      { "5050": { priceSats: 5, backend: { type: "nip90", relays: [theirs.url], pubkey: upstream.pubkey } } },
      { timeoutSec: 3 },
    );
    alice = await customerOf(gate, ours.url, "elite");
  });
  afterAll(async () => {
    alice?.close();
    await gate?.stop();
    gate?.tmp.remove();
    await upstream?.kill();
    await ours?.close();
    await theirs?.close();
  });

  it("a free job: our processing, the upstream's progress re-signed, its result turned into ours, grant posted with seq", async () => {
    const req = alice.request(gate.pubkey, { input: "hello" });
    await alice.publish(req);
    const result = await waitResult(ours.url, gate.pubkey, req);
    expect(result.content).toBe("upstream:olleh");
    expect(result.tags).toContainEqual(["p", alice.pubkey]);
    expect(result.tags).toContainEqual(["i", "hello", "text"]);
    const processing = alice.feedback(req.id).filter((f) => f.status === "processing" && f.event.pubkey === gate.pubkey);
    await waitFor(() => alice.feedback(req.id).some((f) => f.text === "upstream working"), 5000, "the upstream's processing passed on");
    expect(processing.length).toBeGreaterThanOrEqual(1);
    const grant = gate.ledger.grants({ pubkey: alice.pubkey }).find((g) => g.requestId === req.id)!;
    expect(grant.absorbedMsats).toBe(5000);
    expect(grant.seq).toBeGreaterThanOrEqual(1);
    // Upstream saw the gate as its customer, on its own relay only.
    const asked = await fetchEvents(theirs.url, { kinds: [5050], authors: [gate.pubkey] });
    expect(asked.some((e) => e.tags.some((t) => t[0] === "p" && t[1] === upstream.pubkey))).toBe(true);
    expect(gate.verify()).toEqual([]);
  });

  it("the upstream's error voids the job, the pool is exact, and the customer gets an error", async () => {
    const before = gate.ledger.totals();
    const req = alice.request(gate.pubkey, { input: "fail" });
    await alice.publish(req);
    const err = await alice.waitFeedback(req.id, "error");
    expect(err.text).toContain("upstream error: no GPU today");
    expect(gate.ledger.getRequest(req.id)!.state).toBe("failed");
    expect(gate.ledger.totals()).toEqual(before);
  });

  it("the upstream asking the gate to pay is a failure that tells the operator what to do", async () => {
    const before = gate.ledger.totals();
    const req = alice.request(gate.pubkey, { input: "pay" });
    await alice.publish(req);
    const err = await alice.waitFeedback(req.id, "error");
    expect(err.text).toContain(UPSTREAM_ASKS_PAYMENT);
    expect(gate.ledger.totals()).toEqual(before);
  });

  it("the customer's deletion cancels the job: voided, and the gate deletes its upstream request", async () => {
    const before = gate.ledger.totals();
    const watch = new AbstractRelay(theirs.url, { verifyEvent: () => true, websocketImplementation: WebSocket as never });
    await watch.connect({ timeout: 5000 });
    const seen: Event[] = [];
    watch.subscribe([{ kinds: [5050, 5], authors: [gate.pubkey] }], { onevent: (e) => seen.push(e) });
    // A param of its own, so it is not the same event as the next test's "silent" request.
    const req = alice.request(gate.pubkey, { input: "silent", tags: [["param", "case", "cancel"]] });
    await alice.publish(req);
    const asked = await waitFor(
      () => seen.find((e) => e.kind === 5050 && e.tags.some((t) => t[0] === "param" && t[2] === "cancel")),
      5000,
      "the upstream request",
    );
    await alice.publish(finalizeEvent({ kind: 5, created_at: Math.floor(Date.now() / 1000), tags: [["e", req.id]], content: "" }, alice.secretKey));
    await waitFor(() => seen.some((e) => e.kind === 5 && e.tags.some((t) => t[0] === "e" && t[1] === asked.id)), 5000, "the gate's deletion upstream");
    await waitFor(() => getJob(gate.ledger.db, req.id)?.state === "cancelled", 5000, "the job cancelled");
    expect(gate.ledger.getRequest(req.id)!.state).toBe("failed");
    expect(gate.ledger.totals()).toEqual(before);
    watch.close();
  });

  it("an upstream that never answers: voided at the deadline, and the gate withdraws its upstream request", async () => {
    const before = gate.ledger.totals();
    // The relay applies deletions without storing them: watch for it live.
    const watch = new AbstractRelay(theirs.url, { verifyEvent: () => true, websocketImplementation: WebSocket as never });
    await watch.connect({ timeout: 5000 });
    const seen: Event[] = [];
    watch.subscribe([{ kinds: [5050, 5], authors: [gate.pubkey] }], { onevent: (e) => seen.push(e) });
    const req = alice.request(gate.pubkey, { input: "silent" });
    await alice.publish(req);
    const err = await alice.waitFeedback(req.id, "error", 10_000);
    expect(err.text).toContain("timeout");
    expect(gate.ledger.totals()).toEqual(before);
    const asked = await waitFor(() => seen.find((e) => e.kind === 5050 && e.tags.some((t) => t[0] === "i" && t[1] === "silent")), 5000, "the upstream request");
    await waitFor(() => seen.some((e) => e.kind === 5 && e.tags.some((t) => t[0] === "e" && t[1] === asked.id)), 5000, "the gate's deletion upstream");
    watch.close();
    expect(gate.verify()).toEqual([]);
  });
});
