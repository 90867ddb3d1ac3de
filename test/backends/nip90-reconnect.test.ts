// SPEC §11 `nip90` backend when the upstream's relay goes away while a job waits for the
// upstream: the gate reconnects (with backoff), subscribes again from the job's request
// time and publishes its request again when the upstream has not answered about it, so
// the customer still gets exactly one result and the job is not voided. The upstream
// relay and the plain test DVM (which knows nothing of dvm-gate) run in their own
// processes; the relay is killed and restarted on the same port, or only the gate's
// socket to it is cut. Also: no upstream relay reachable at all (the timeout names them),
// and an upstream relay that takes the gate's request only after NIP-42 AUTH.
import { afterEach, describe, expect, it } from "vitest";
import { generateSecretKey, getPublicKey, type Event } from "nostr-tools/pure";
import { startEmbeddedRelay, type EmbeddedRelay } from "../../src/peers/embedded-relay.js";
import { getJob } from "../../src/ledger/job-store.js";
import { fetchEvents, waitFor, waitForAsync, type Customer, type Gate } from "../e2e/harness.js";
import { startRelayProcess } from "../helpers/service-process.js";
import { makeTmpDir } from "../helpers/tmp.js";
import { startCutProxy } from "../helpers/cut-proxy.js";
import { backendGate, customerOf, startUpstreamDvm, waitResult } from "./harness.js";

const PRICE_SATS = 5;

describe("nip90 backend and the upstream relays: drops, restarts, AUTH", () => {
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function ourSide(
    upstreamRelay: string,
    upstreamPubkey: string,
    timeoutSec = 40,
    secretKey?: Uint8Array,
  ): Promise<{ ours: EmbeddedRelay; gate: Gate; alice: Customer }> {
    const ours = await startEmbeddedRelay();
    cleanups.push(() => ours.close());
    const gate = await backendGate(
      ours.url,
      { "5050": { priceSats: PRICE_SATS, backend: { type: "nip90", relays: [upstreamRelay], pubkey: upstreamPubkey } } },
      { timeoutSec, ...(secretKey ? { secretKey } : {}) },
    );
    cleanups.push(async () => {
      await gate.stop();
      gate.tmp.remove();
    });
    const alice = await customerOf(gate, ours.url, "elite");
    cleanups.push(() => alice.close());
    return { ours, gate, alice };
  }

  /** Exactly one result for `req`: a later job's result (the control) comes first, then the count. */
  async function expectOneResult(ours: EmbeddedRelay, gate: Gate, alice: Customer, req: Event): Promise<void> {
    const control = alice.request(gate.pubkey, { input: "control" });
    await alice.publish(control);
    await waitResult(ours.url, gate.pubkey, control, 20_000);
    expect(await fetchEvents(ours.url, { kinds: [6050], authors: [gate.pubkey], "#e": [req.id] })).toHaveLength(1);
    expect(alice.feedback(req.id).filter((f) => f.status === "error")).toEqual([]);
    // Not voided, not run again: one attempt, posted, the pool paid exactly the price.
    expect(getJob(gate.ledger.db, req.id)).toMatchObject({ state: "done", attempts: 1 });
    expect(gate.ledger.getRequest(req.id)!.state).toBe("done");
    expect(gate.ledger.grants({ pubkey: alice.pubkey }).find((g) => g.requestId === req.id)?.absorbedMsats).toBe(PRICE_SATS * 1000);
    expect(gate.verify()).toEqual([]);
  }

  it("the upstream relay is killed and restarted on the same port while the job waits: reconnected, answered, one result", async () => {
    const tmp = makeTmpDir("dvm-gate-nip90-restart-");
    cleanups.push(() => tmp.remove());
    let relay = await startRelayProcess(0, tmp.file("relay.sqlite"));
    cleanups.push(() => relay.kill("SIGKILL"));
    const dvm = await startUpstreamDvm(relay.url, 5050);
    cleanups.push(() => dvm.kill());
    const { ours, gate, alice } = await ourSide(relay.url, dvm.pubkey);

    const req = alice.request(gate.pubkey, { input: "hold" });
    await alice.publish(req);
    // The upstream is working on it (its processing came through the gate): the job waits on the upstream.
    await waitFor(() => alice.feedback(req.id).some((f) => f.text === "upstream working"), 10_000, "the upstream's processing passed on");

    await relay.kill("SIGKILL");
    relay = await startRelayProcess(relay.port, tmp.file("relay.sqlite"));
    dvm.release();

    const result = await waitResult(ours.url, gate.pubkey, req, 30_000);
    expect(result.content).toBe("upstream:dloh");
    await expectOneResult(ours, gate, alice, req);
  });

  it("the gate's socket is cut while the upstream answers: the answer published while we were away is found", async () => {
    const tmp = makeTmpDir("dvm-gate-nip90-cut-");
    cleanups.push(() => tmp.remove());
    const relay = await startRelayProcess(0, tmp.file("relay.sqlite"));
    cleanups.push(() => relay.kill("SIGKILL"));
    const dvm = await startUpstreamDvm(relay.url, 5050);
    cleanups.push(() => dvm.kill());
    // Only the gate goes through the proxy; the DVM stays connected to its relay.
    const proxy = await startCutProxy(relay.port);
    cleanups.push(() => proxy.close());
    const { ours, gate, alice } = await ourSide(proxy.url, dvm.pubkey);

    const req = alice.request(gate.pubkey, { input: "hold" });
    await alice.publish(req);
    await waitFor(() => alice.feedback(req.id).some((f) => f.text === "upstream working"), 10_000, "the upstream's processing passed on");
    const [asked] = await fetchEvents(relay.url, { kinds: [5050], authors: [gate.pubkey] });
    expect(asked).toBeDefined();

    await proxy.cut();
    dvm.release();
    // The upstream's result is on its relay while the gate cannot reach it.
    await waitForAsync(
      async () => (await fetchEvents(relay.url, { kinds: [6050], authors: [dvm.pubkey], "#e": [asked!.id] }))[0],
      10_000,
      "the upstream's result on its relay",
    );
    expect(gate.ledger.getRequest(req.id)!.state).toBe("processing");
    const acceptedBefore = proxy.accepted();
    await proxy.restore();

    const result = await waitResult(ours.url, gate.pubkey, req, 30_000);
    expect(result.content).toBe("upstream:dloh");
    expect(proxy.accepted()).toBeGreaterThan(acceptedBefore);
    await expectOneResult(ours, gate, alice, req);
  });

  it("the relay comes back without what it stored: the gate publishes its request again and the DVM answers it", async () => {
    const tmp = makeTmpDir("dvm-gate-nip90-lost-");
    cleanups.push(() => tmp.remove());
    const dvmKey = generateSecretKey();
    let relay = await startRelayProcess(0, tmp.file("relay-1.sqlite"));
    cleanups.push(() => relay.kill("SIGKILL"));
    // No DVM yet: the request reaches the relay, nobody takes it, and the relay loses it.
    const { ours, gate, alice } = await ourSide(relay.url, getPublicKey(dvmKey));
    const req = alice.request(gate.pubkey, { input: "again" });
    await alice.publish(req);
    await waitForAsync(async () => (await fetchEvents(relay.url, { kinds: [5050], authors: [gate.pubkey] }))[0], 10_000, "the gate's upstream request");

    await relay.kill("SIGKILL");
    relay = await startRelayProcess(relay.port, tmp.file("relay-2.sqlite"));
    const dvm = await startUpstreamDvm(relay.url, 5050, Buffer.from(dvmKey).toString("hex"));
    cleanups.push(() => dvm.kill());

    const result = await waitResult(ours.url, gate.pubkey, req, 30_000);
    expect(result.content).toBe("upstream:niaga");
    await expectOneResult(ours, gate, alice, req);
  });

  it("no upstream relay can be reached: the job waits for one until its deadline, then is voided with the relays named", async () => {
    // A port nobody listens on: the proxy, cut before the gate ever connects.
    const proxy = await startCutProxy(1);
    await proxy.cut();
    const { gate, alice } = await ourSide(proxy.url, getPublicKey(generateSecretKey()), 3);
    const before = gate.ledger.totals();
    const req = alice.request(gate.pubkey, { input: "nobody there" });
    await alice.publish(req);
    const err = await alice.waitFeedback(req.id, "error", 15_000);
    expect(err.text).toContain("timeout: no upstream relay could be reached");
    expect(err.text).toContain(`127.0.0.1:${proxy.port}`);
    expect(gate.ledger.getRequest(req.id)!.state).toBe("failed");
    expect(gate.ledger.totals()).toEqual(before);
    expect(gate.verify()).toEqual([]);
  });

  it("an upstream relay that wants NIP-42 AUTH before it takes the gate's request: the gate authenticates with its key", async () => {
    const theirs = await startEmbeddedRelay({ authHostname: "127.0.0.1" });
    cleanups.push(() => theirs.close());
    const authed: string[] = [];
    let gatePubkey = "";
    let refused = 0;
    theirs.relay.register({
      async handleMessage(ctx: { pubkey?: string; sendMessage: (m: unknown[]) => void }, message: unknown[], next: () => Promise<unknown>) {
        const ev = message[0] === "EVENT" ? (message[1] as { id: string; pubkey: string }) : null;
        // Only the gate's events are held back: the DVM publishes unauthenticated.
        if (ev && !ctx.pubkey && ev.pubkey === gatePubkey) {
          refused++;
          ctx.sendMessage(["OK", ev.id, false, "auth-required: publish after AUTH"]);
          return { messageType: "EVENT", success: false };
        }
        const out = await next();
        if (message[0] === "AUTH" && ctx.pubkey) authed.push(ctx.pubkey);
        return out;
      },
    } as never);
    const dvm = await startUpstreamDvm(theirs.url, 5050);
    cleanups.push(() => dvm.kill());
    const gateKey = generateSecretKey();
    gatePubkey = getPublicKey(gateKey);
    const { ours, gate, alice } = await ourSide(theirs.url, dvm.pubkey, 40, gateKey);
    const req = alice.request(gate.pubkey, { input: "knock" });
    await alice.publish(req);
    const result = await waitResult(ours.url, gate.pubkey, req, 20_000);
    expect(result.content).toBe("upstream:kconk");
    expect(authed).toContain(gate.pubkey);
    // The relay took the gate's request (it takes none from the gate before AUTH).
    const [asked] = await fetchEvents(theirs.url, { kinds: [5050], authors: [gate.pubkey] });
    expect(asked).toBeDefined();
    await expectOneResult(ours, gate, alice, req);
  });
});
