// The job queue of SPEC §11: at most maxConcurrent jobs of a kind run at once (counted
// by the backend process itself), waiting jobs start elite first, and a customer's
// deletion stops a running exec job (its process is gone) and voids it.
import { existsSync, readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { finalizeEvent } from "nostr-tools/pure";
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
});
