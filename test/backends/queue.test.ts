// The job queue of SPEC §11: at most maxConcurrent jobs of a kind run at once (counted
// by the backend process itself), waiting jobs start elite first, and a customer's
// deletion stops a running exec job (its process is gone) and voids it; a paid job whose
// deadline passes while it waits is expired, and only an invoice's needs a refund by hand.
import { existsSync, readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { finalizeEvent } from "nostr-tools/pure";
import { pino } from "pino";
import { devPay } from "../../src/payments/dev.js";
import { startEmbeddedRelay } from "../../src/peers/embedded-relay.js";
import { getJob } from "../../src/ledger/job-store.js";
import { waitFor } from "../e2e/harness.js";
import { backendGate, customerOf, execCommand, serverStats, startBackendServer, waitResult } from "./harness.js";
import { makeTmpDir } from "../helpers/tmp.js";

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("job queue", () => {
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it("runs at most maxConcurrent jobs of a kind at once, and a later elite job starts before earlier established ones", async () => {
    const relay = await startEmbeddedRelay();
    cleanups.push(() => relay.close());
    const server = await startBackendServer();
    cleanups.push(() => server.kill());
    const gate = await backendGate(relay.url, {
      "5300": { priceSats: 1, backend: { type: "http", url: `${server.url}/record?holdMs=400`, maxConcurrent: 2 } },
    });
    cleanups.push(async () => {
      await gate.stop();
      gate.tmp.remove();
    });
    const est = await customerOf(gate, relay.url, "established");
    const elite = await customerOf(gate, relay.url, "elite");
    cleanups.push(() => est.close());
    cleanups.push(() => elite.close());

    const early = Array.from({ length: 20 }, (_, i) => est.request(gate.pubkey, { kind: 5300, input: `job ${i}` }));
    for (const r of early) await est.publish(r);
    // All 20 are decided and queued before the elite job arrives.
    await waitFor(() => early.every((r) => getJob(gate.ledger.db, r.id) !== null), 10_000, "the 20 jobs to be queued");
    const late = elite.request(gate.pubkey, { kind: 5300, input: "elite job" });
    await elite.publish(late);

    for (const r of [...early, late]) await waitResult(relay.url, gate.pubkey, r, 30_000);
    const stats = await serverStats(server.url);
    expect(stats.maxActive).toBe(2);
    expect(stats.started).toHaveLength(21);
    const eliteAt = stats.started.indexOf(late.id);
    const eliteJob = getJob(gate.ledger.db, late.id)!;
    // The established jobs still waiting when the elite one was queued start after it
    // (first come first served would start the elite job last).
    const waitingThen = early.filter((r) => getJob(gate.ledger.db, r.id)!.startedAtMs! > eliteJob.queuedAtMs);
    expect(waitingThen.length).toBeGreaterThanOrEqual(5);
    // Claimed in tier order; two claimed in the same round may reach the backend in either
    // order, so at most maxConcurrent − 1 of them can show up just ahead of it.
    const ahead = waitingThen.filter((r) => stats.started.indexOf(r.id) < eliteAt).length;
    expect(ahead).toBeLessThanOrEqual(1);
    expect(waitingThen.length - ahead).toBeGreaterThanOrEqual(5);
    expect(gate.verify()).toEqual([]);
  });

  it("a customer's deletion kills a running exec job's process and voids the job", async () => {
    const tmp = makeTmpDir("dvm-gate-cancel-");
    cleanups.push(() => tmp.remove());
    const pidFile = tmp.file("pids");
    const relay = await startEmbeddedRelay();
    cleanups.push(() => relay.close());
    const gate = await backendGate(relay.url, { "5301": { priceSats: 3, backend: { type: "exec", command: execCommand("sleep", pidFile) } } });
    cleanups.push(async () => {
      await gate.stop();
      gate.tmp.remove();
    });
    const alice = await customerOf(gate, relay.url, "elite");
    cleanups.push(() => alice.close());
    const before = gate.ledger.totals();

    const req = alice.request(gate.pubkey, { kind: 5301, input: "long job" });
    await alice.publish(req);
    await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, "utf8").trim() !== "", 10_000, "the exec program to start");
    const pid = Number(readFileSync(pidFile, "utf8").trim());
    expect(isAlive(pid)).toBe(true);
    expect(gate.ledger.totals().pendingMsats).toBe(before.pendingMsats + 3000);

    const deletion = finalizeEvent(
      {
        kind: 5,
        created_at: Math.floor(Date.now() / 1000),
        tags: [
          ["e", req.id],
          ["k", "5301"],
        ],
        content: "",
      },
      alice.secretKey,
    );
    await alice.publish(deletion);
    await waitFor(() => !isAlive(pid), 10_000, "the exec program to be killed");
    await waitFor(() => getJob(gate.ledger.db, req.id)?.state === "cancelled", 5000, "the job to be cancelled");
    expect(gate.ledger.getRequest(req.id)!.state).toBe("failed");
    expect(gate.ledger.totals()).toEqual(before);
    expect(gate.ledger.grants({ pubkey: alice.pubkey })).toEqual([]);
    expect(gate.verify()).toEqual([]);
  });

  it("paid jobs whose deadline passes while they wait for a slot: expired, the customers told, a refund by hand asked only for the invoice-paid one", async () => {
    const relay = await startEmbeddedRelay();
    cleanups.push(() => relay.close());
    const server = await startBackendServer();
    cleanups.push(() => server.kill());
    const lines: { level: number; msg: string; request?: string }[] = [];
    const log = pino({ level: "info" }, { write: (l: string) => void lines.push(JSON.parse(l) as (typeof lines)[number]) });
    const gate = await backendGate(
      relay.url,
      { "5302": { priceSats: 2, backend: { type: "http", url: `${server.url}/slow`, maxConcurrent: 1 } } },
      { timeoutSec: 3, log },
    );
    cleanups.push(async () => {
      await gate.stop();
      gate.tmp.remove();
    });
    const alice = await customerOf(gate, relay.url, "elite");
    const bob = await customerOf(gate, relay.url, "new");
    const carol = await customerOf(gate, relay.url, "new");
    for (const c of [alice, bob, carol]) cleanups.push(() => c.close());
    gate.ledger.deposit({ pubkey: carol.pubkey, amountMsats: 10_000, source: "operator", ref: null, overCap: "refuse" }, gate.nowMs());

    // Alice's free job holds the only slot (the backend never answers).
    const first = alice.request(gate.pubkey, { kind: 5302, input: "slow" });
    await alice.publish(first);
    await waitFor(() => getJob(gate.ledger.db, first.id)?.state === "running", 5000, "the first job running");
    // Bob pays an invoice, Carol pays from her balance: both wait behind it.
    const paid = bob.request(gate.pubkey, { kind: 5302, input: "by invoice" });
    await bob.publish(paid);
    const offer = await bob.waitFeedback(paid.id, "payment-required");
    expect(devPay(gate.ledger.db, offer.bolt11!, Date.now()).status).toBe("paid");
    await bob.waitFeedback(paid.id, "processing");
    const prepaid = carol.request(gate.pubkey, { kind: 5302, input: "by balance" });
    await carol.publish(prepaid);
    await carol.waitFeedback(prepaid.id, "processing");
    expect(getJob(gate.ledger.db, paid.id)?.state).toBe("waiting");
    expect(getJob(gate.ledger.db, prepaid.id)?.state).toBe("waiting");

    // Their deadlines pass while they wait (the sweep expires them); the slot frees at the first job's own timeout.
    gate.advance(10_000);
    for (const [c, r] of [
      [bob, paid],
      [carol, prepaid],
    ] as const) {
      const err = await c.waitFeedback(r.id, "error", 10_000);
      expect(err.text).toContain("timeout: the job waited past its deadline");
      expect(gate.ledger.getRequest(r.id)!.state).toBe("expired");
    }
    const byHand = lines.filter((l) => l.msg.includes("refund the customer by hand"));
    expect(byHand.map((l) => l.request)).toEqual([paid.id]);
    expect(byHand[0]!.level).toBe(40); // warn
    expect(gate.ledger.balance(carol.pubkey)).toMatchObject({ balanceMsats: 10_000, heldMsats: 0, spentMsats: 0 });
    expect(gate.verify()).toEqual([]);
  });
});
