// The database fills up while requests keep arriving on a real relay: SQLite's
// max_page_count on the gate's own connection is set to the pages it has (the file
// cannot grow: SQLITE_FULL, as on a full disk), then raised again. Every request
// published during the outage must be decided and answered exactly once, in the same
// process and across a restart in the middle of the outage, with the books clean.
import { execFileSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmdirSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import type { TmpDir } from "../helpers/tmp.js";
import { TestWorker } from "../helpers/worker.js";
import { pino } from "pino";
import type { Event } from "nostr-tools/pure";
import { startEmbeddedRelay } from "../../src/peers/embedded-relay.js";
import { getCursorSec } from "../../src/ledger/outbox-store.js";
import { Customer, fetchEvents, startGate, waitFor, waitForAsync, type Gate } from "./harness.js";

const MANY_PAGES = 1_073_741_823;

function fillUp(gate: Gate): void {
  const pages = gate.ledger.db.pragma("page_count", { simple: true }) as number;
  gate.ledger.db.pragma(`max_page_count = ${pages}`);
}

function spaceBack(gate: Gate): void {
  gate.ledger.db.pragma(`max_page_count = ${MANY_PAGES}`);
}

/** A 4 MB tmpfs for the database (CI runs as root), or null where mounting is not allowed. */
function mountSmallTmpfs(): (TmpDir & { fill: () => void; free: () => void }) | null {
  const path = mkdtempSync(join(tmpdir(), "dvm-gate-tmpfs-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", path], { stdio: "ignore" });
  } catch {
    rmdirSync(path);
    return null;
  }
  const filler = join(path, "filler");
  return {
    path,
    file: (name) => join(path, name),
    // Every free block taken: the next write that needs one gets ENOSPC (SQLITE_FULL).
    fill: () => {
      const fd = openSync(filler, "w");
      const chunk = Buffer.alloc(64 * 1024, 1);
      try {
        for (;;) writeSync(fd, chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
      } finally {
        closeSync(fd);
      }
      // What is left is less than a chunk: take it too, byte by byte in small steps.
      const fd2 = openSync(filler, "a");
      try {
        for (;;) writeSync(fd2, chunk, 0, 512);
      } catch {
        /* full */
      } finally {
        closeSync(fd2);
      }
    },
    free: () => rmSync(filler, { force: true }),
    remove: () => {
      try {
        execFileSync("umount", ["-l", path], { stdio: "ignore" });
      } finally {
        rmSync(path, { recursive: true, force: true });
      }
    },
  };
}

async function repliesPerRequest(url: string, gatePubkey: string, ids: string[]): Promise<Map<string, Event[]>> {
  const out = new Map<string, Event[]>(ids.map((id) => [id, []]));
  for (const ev of await fetchEvents(url, { kinds: [7000], authors: [gatePubkey], "#e": ids })) {
    const id = ev.tags.find((t) => t[0] === "e")?.[1];
    if (id && out.has(id)) out.get(id)!.push(ev);
  }
  return out;
}

async function waitAllAnswered(url: string, gatePubkey: string, ids: string[], timeoutMs: number): Promise<Map<string, Event[]>> {
  return waitForAsync(
    async () => {
      const m = await repliesPerRequest(url, gatePubkey, ids);
      return [...m.values()].every((v) => v.length >= 1) ? m : null;
    },
    timeoutMs,
    `a reply to each of ${ids.length} requests`,
  );
}

const rowCount = (gate: Gate, sql: string) => (gate.ledger.db.prepare(sql).get() as { n: number }).n;

describe("a database that fills up mid-stream", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it("decides every request that arrived while writes failed, exactly once, once space returns", { timeout: 60_000 }, async () => {
    const relay = await startEmbeddedRelay();
    cleanups.push(() => relay.close());
    const worker = await new TestWorker().connect([relay.url]);
    cleanups.push(() => worker.close());
    const gate = await startGate({
      relays: [relay.url],
      workers: [worker.pubkey],
      over: { freeTier: { maxPendingPerPubkey: 1000 } },
      tuning: { decisionRetryBaseMs: 100, decisionRetryMaxMs: 800 },
    });
    cleanups.push(async () => {
      await gate.stop();
      gate.tmp.remove();
    });
    const customer = await new Customer().connect([relay.url]);
    cleanups.push(() => customer.close());
    gate.ledger.setTier(customer.pubkey, "elite", gate.nowMs());
    const sent: Event[] = [];
    const publish = async (n: number, label: string) => {
      for (let i = 0; i < n; i++) {
        const ev = customer.request(gate.pubkey, { input: `${label} ${i}` });
        await customer.publish(ev);
        sent.push(ev);
      }
    };

    await publish(5, "before");
    await waitAllAnswered(
      relay.url,
      gate.pubkey,
      sent.map((e) => e.id),
      10_000,
    );

    fillUp(gate);
    const OUTAGE = 30;
    await publish(15, "during");
    // A worker's result in the middle of the outage: its posting must not be lost either.
    await worker.result(sent[0]!);
    await publish(OUTAGE - 15, "later during");
    const during = sent.slice(5);
    // The store refuses them: they are held and retried, with growing waits.
    const retry = gate.service.decisionRetry;
    await waitFor(
      () =>
        retry.stats().failedRounds >= 3 &&
        retry.stats().held + rowCount(gate, "SELECT COUNT(*) AS n FROM requests") + rowCount(gate, "SELECT COUNT(*) AS n FROM grants") === 5 + OUTAGE + 1,
      20_000,
      "all of them received, three failed retry rounds",
    );
    const decidedDuringOutage = rowCount(gate, "SELECT COUNT(*) AS n FROM requests");
    const heldAtPeak = retry.stats().held;
    expect(heldAtPeak).toBeGreaterThan(0);
    // Some of the slack in the last pages may have taken a few; the rest wait.
    expect(decidedDuringOutage + heldAtPeak).toBeGreaterThanOrEqual(5 + OUTAGE);

    spaceBack(gate);
    await publish(5, "after");
    const replies = await waitAllAnswered(
      relay.url,
      gate.pubkey,
      sent.map((e) => e.id),
      20_000,
    );
    expect(replies.size).toBe(5 + OUTAGE + 5);
    // Each reply once: its outbox row delivered, then read back from the relay.
    await waitFor(
      () => rowCount(gate, "SELECT COUNT(*) AS n FROM outbox WHERE purpose LIKE 'feedback-%' AND state = 'done'") === sent.length,
      10_000,
      "every reply delivered",
    );
    const final = await repliesPerRequest(
      relay.url,
      gate.pubkey,
      sent.map((e) => e.id),
    );
    for (const [i, ev] of sent.entries()) expect(final.get(ev.id)!.length, `request ${i}`).toBe(1);
    for (const ev of during) expect(final.get(ev.id)![0]!.tags.find((t) => t[0] === "status")?.[1]).toBe("processing");
    expect(rowCount(gate, "SELECT COUNT(*) AS n FROM requests")).toBe(sent.length);
    expect(rowCount(gate, "SELECT COUNT(*) AS n FROM outbox WHERE purpose LIKE 'feedback-%'")).toBe(sent.length);
    expect(retry.stats().held).toBe(0);
    await waitFor(() => gate.ledger.getRequest(sent[0]!.id)?.state === "done", 10_000, "the held result posted");
    expect(rowCount(gate, "SELECT COUNT(*) AS n FROM grants")).toBe(1);
    expect(gate.verify()).toEqual([]);

    // Backoff: each wait after a failed round at least as long as half the one before
    // (equal jitter) and the sequence grows until the cap.
    const s = retry.stats();
    console.log(
      JSON.stringify({
        outageRequests: OUTAGE,
        decidedDuringOutage: decidedDuringOutage - 5,
        heldAtPeak,
        rounds: s.rounds,
        failedRounds: s.failedRounds,
        delaysMs: s.delaysMs,
      }),
    );
    const firstDelays = s.delaysMs.slice(0, s.failedRounds + 1);
    expect(Math.max(...firstDelays)).toBeGreaterThan(Math.min(...firstDelays) * 2);
  });

  it("a restart in the middle of the outage reads the undecided requests again: each decided once", { timeout: 60_000 }, async () => {
    const relay = await startEmbeddedRelay();
    cleanups.push(() => relay.close());
    const over = { freeTier: { maxPendingPerPubkey: 1000 } };
    const first = await startGate({ relays: [relay.url], over, tuning: { decisionRetryBaseMs: 100, decisionRetryMaxMs: 800 } });
    cleanups.push(() => first.tmp.remove());
    let firstRunning = true;
    cleanups.push(() => (firstRunning ? first.stop() : undefined));
    const customer = await new Customer().connect([relay.url]);
    cleanups.push(() => customer.close());
    first.ledger.setTier(customer.pubkey, "elite", first.nowMs());

    const before = customer.request(first.pubkey, { input: "before" });
    await customer.publish(before);
    await customer.waitFeedback(before.id, "processing");
    // The gate's own replies come back through the intake: its cursor is at "now".
    await waitFor(() => (getCursorSec(first.ledger.db, relay.url) ?? 0) >= before.created_at, 10_000, "a saved cursor");

    fillUp(first);
    // Two minutes old (still acceptable, beyond the 60 s cursor overlap): what a restart
    // two minutes into an outage would have to read again.
    const oldSec = Math.floor(Date.now() / 1000) - 120;
    const OUTAGE = 20;
    const during: Event[] = [];
    for (let i = 0; i < OUTAGE; i++) {
      const ev = customer.request(first.pubkey, { input: `during ${i}`, createdAt: oldSec });
      await customer.publish(ev);
      during.push(ev);
    }
    const retry = first.service.decisionRetry;
    await waitFor(
      () => retry.stats().failedRounds >= 1 && retry.stats().held + rowCount(first, "SELECT COUNT(*) AS n FROM requests") === 1 + OUTAGE,
      20_000,
      "the outage's requests held",
    );
    const held = retry.stats().held;
    expect(held).toBeGreaterThan(0);
    firstRunning = false;
    await first.stop();
    // Stopped with requests undecided: the cursor was held at the oldest of them.
    const look = new Database(first.cfg.database.path, { readonly: true });
    expect(getCursorSec(look, relay.url)).toBe(oldSec);
    look.close();

    const second = await startGate({ relays: [relay.url], over, tmp: first.tmp, secretKey: first.secretKey });
    cleanups.push(() => second.stop());
    const ids = [before.id, ...during.map((e) => e.id)];
    await waitAllAnswered(relay.url, second.pubkey, ids, 20_000);
    await waitFor(
      () => rowCount(second, "SELECT COUNT(*) AS n FROM outbox WHERE request_id IS NOT NULL AND state = 'done'") === ids.length,
      10_000,
      "every reply delivered",
    );
    const final = await repliesPerRequest(relay.url, second.pubkey, ids);
    for (const [i, id] of ids.entries()) expect(final.get(id)!.length, `request ${i}`).toBe(1);
    expect(rowCount(second, "SELECT COUNT(*) AS n FROM requests")).toBe(ids.length);
    expect(second.verify()).toEqual([]);
    console.log(JSON.stringify({ outageRequests: OUTAGE, heldAtRestart: held, answeredAfterRestart: ids.length - 1 }));
  });

  it("past the retry queue's cap, the requests left out are read again from the relay once writes succeed", { timeout: 60_000 }, async () => {
    const relay = await startEmbeddedRelay();
    cleanups.push(() => relay.close());
    const MAX_HELD = 4;
    const gate = await startGate({
      relays: [relay.url],
      over: { freeTier: { maxPendingPerPubkey: 1000 } },
      tuning: { decisionRetryBaseMs: 100, decisionRetryMaxMs: 800, decisionRetryMaxHeld: MAX_HELD },
    });
    cleanups.push(async () => {
      await gate.stop();
      gate.tmp.remove();
    });
    const customer = await new Customer().connect([relay.url]);
    cleanups.push(() => customer.close());
    gate.ledger.setTier(customer.pubkey, "elite", gate.nowMs());
    const warm = customer.request(gate.pubkey, { input: "before" });
    await customer.publish(warm);
    await customer.waitFeedback(warm.id, "processing");

    fillUp(gate);
    const OUTAGE = 20;
    const during: Event[] = [];
    for (let i = 0; i < OUTAGE; i++) {
      const ev = customer.request(gate.pubkey, { input: `during ${i}` });
      await customer.publish(ev);
      during.push(ev);
    }
    const retry = gate.service.decisionRetry;
    await waitFor(
      () => retry.stats().failedRounds >= 1 && retry.stats().held + retry.stats().dropped + rowCount(gate, "SELECT COUNT(*) AS n FROM requests") >= 1 + OUTAGE,
      20_000,
      "the outage's requests held or dropped",
    );
    expect(retry.stats().held).toBe(MAX_HELD);
    const dropped = retry.stats().dropped;
    expect(dropped).toBeGreaterThan(0);

    spaceBack(gate);
    const ids = [warm.id, ...during.map((e) => e.id)];
    await waitAllAnswered(relay.url, gate.pubkey, ids, 20_000);
    await waitFor(
      () => rowCount(gate, "SELECT COUNT(*) AS n FROM outbox WHERE request_id IS NOT NULL AND state = 'done'") === ids.length,
      10_000,
      "every reply delivered",
    );
    const final = await repliesPerRequest(relay.url, gate.pubkey, ids);
    for (const [i, id] of ids.entries()) expect(final.get(id)!.length, `request ${i}`).toBe(1);
    expect(rowCount(gate, "SELECT COUNT(*) AS n FROM requests")).toBe(ids.length);
    expect(retry.holdSec()).toBeNull();
    expect(gate.verify()).toEqual([]);
    console.log(JSON.stringify({ outageRequests: OUTAGE, held: MAX_HELD, dropped, answeredAfter: ids.length - 1 }));
  });

  it("on a real full filesystem (a 4 MB tmpfs filled up), every request of the outage is answered once after space returns", { timeout: 60_000 }, async () => {
    const relay = await startEmbeddedRelay();
    cleanups.push(() => relay.close());
    const fs = mountSmallTmpfs();
    const logLines: string[] = [];
    const log = pino({ level: "info" }, { write: (line: string) => void logLines.push(line) });
    const logged = (msg: string) => logLines.filter((l) => (JSON.parse(l) as { msg?: string }).msg === msg).length;
    // Where mounting is not allowed the same run uses max_page_count: never skipped.
    const gate = await startGate({
      log,
      relays: [relay.url],
      over: { freeTier: { maxPendingPerPubkey: 1000 } },
      tuning: { decisionRetryBaseMs: 100, decisionRetryMaxMs: 800 },
      ...(fs ? { tmp: fs } : {}),
    });
    cleanups.push(async () => {
      await gate.stop();
      gate.tmp.remove();
    });
    const customer = await new Customer().connect([relay.url]);
    cleanups.push(() => customer.close());
    gate.ledger.setTier(customer.pubkey, "elite", gate.nowMs());
    const warm = customer.request(gate.pubkey, { input: "before" });
    await customer.publish(warm);
    await customer.waitFeedback(warm.id, "processing");

    // One more decided and committed, and the disk full before the publisher can record
    // what the relay answered: its delivery cannot be marked done.
    const last = customer.request(gate.pubkey, { input: "just before" });
    gate.service.onEvent(last, relay.url);
    gate.service.flushDecisions();
    if (fs) fs.fill();
    else fillUp(gate);
    const OUTAGE = 30;
    const during: Event[] = [];
    for (let i = 0; i < OUTAGE; i++) {
      const ev = customer.request(gate.pubkey, { input: `during ${i}` });
      await customer.publish(ev);
      during.push(ev);
    }
    const retry = gate.service.decisionRetry;
    await waitFor(
      () => retry.stats().failedRounds >= 4 && retry.stats().held + rowCount(gate, "SELECT COUNT(*) AS n FROM requests") === 2 + OUTAGE,
      20_000,
      "the outage's requests held",
    );
    const held = retry.stats().held;
    expect(held).toBeGreaterThan(0);
    // Over the same time (four retry rounds, about 1.5 s) the publisher tried again a few times, backing off, not in a loop:
    // the relay's OK of `last` could not be written (held in memory and retried), nor anything it would deliver.
    const deliveryFailures = logged("delivery failed") + logged("could not record relay OKs; retrying");
    if (fs) expect(deliveryFailures).toBeGreaterThan(0);
    expect(deliveryFailures).toBeLessThanOrEqual(8);
    if (fs) fs.free();
    else spaceBack(gate);

    const ids = [warm.id, last.id, ...during.map((e) => e.id)];
    await waitAllAnswered(relay.url, gate.pubkey, ids, 20_000);
    await waitFor(
      () => rowCount(gate, "SELECT COUNT(*) AS n FROM outbox WHERE request_id IS NOT NULL AND state = 'done'") === ids.length,
      10_000,
      "every reply delivered",
    );
    const final = await repliesPerRequest(relay.url, gate.pubkey, ids);
    for (const [i, id] of ids.entries()) expect(final.get(id)!.length, `request ${i}`).toBe(1);
    expect(rowCount(gate, "SELECT COUNT(*) AS n FROM requests")).toBe(ids.length);
    expect(gate.verify()).toEqual([]);
    console.log(
      JSON.stringify({
        disk: fs ? "tmpfs 4 MB" : "max_page_count",
        outageRequests: OUTAGE,
        held,
        deliveryFailures,
        rounds: retry.stats().rounds,
        failedRounds: retry.stats().failedRounds,
        delaysMs: retry.stats().delaysMs,
      }),
    );
  });
});
