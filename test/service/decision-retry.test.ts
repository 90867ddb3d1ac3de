// The retry queue for decisions a store refused, on its own: a redecide that fails
// while a switch says the disk is full, real timers with small steps.
import { describe, expect, it } from "vitest";
import { pino } from "pino";
import { finalizeEvent, generateSecretKey } from "nostr-tools/pure";
import { DecisionRetry, isWriteFailure, type HeldRequest } from "../../src/service/decision-retry.js";
import { waitFor } from "../e2e/harness.js";

const sk = generateSecretKey();
const held = (createdAtSec: number, i: number): HeldRequest => ({
  raw: finalizeEvent({ kind: 5050, created_at: createdAtSec, tags: [["i", `job ${i}`, "text"]], content: "" }, sk),
  relay: "ws://127.0.0.1:1",
});

function queue(o: { maxHeld?: number; maxAgeSec?: number; nowSec?: () => number } = {}) {
  let full = true;
  const written: string[] = [];
  let rereads = 0;
  const r: DecisionRetry = new DecisionRetry({
    log: pino({ level: "silent" }),
    nowMs: () => (o.nowSec ? o.nowSec() * 1000 : Date.now()),
    redecide: (items) => {
      if (full) {
        r.failed(items);
        return false;
      }
      written.push(...items.map((h) => h.raw.id));
      return true;
    },
    reread: () => void rereads++,
    maxAgeSec: o.maxAgeSec ?? 900,
    maxHeld: o.maxHeld ?? 100,
    chunk: 3,
    baseMs: 20,
    maxMs: 160,
  });
  return { r, written, rereads: () => rereads, setFull: (f: boolean) => void (full = f) };
}

describe("decision retry", () => {
  it("knows a store failure from a bug", () => {
    expect(isWriteFailure(Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" }))).toBe(true);
    expect(isWriteFailure(Object.assign(new Error("disk I/O error"), { code: "SQLITE_IOERR_WRITE" }))).toBe(true);
    expect(isWriteFailure(Object.assign(new Error("CHECK constraint failed"), { code: "SQLITE_CONSTRAINT_CHECK" }))).toBe(false);
    expect(isWriteFailure(new TypeError("x is undefined"))).toBe(false);
  });

  it("backs off while writes fail (capped), then writes every held request once", async () => {
    const q = queue();
    const nowSec = Math.floor(Date.now() / 1000);
    const items = Array.from({ length: 7 }, (_, i) => held(nowSec - 10 + i, i));
    q.r.failed(items);
    expect(q.r.holdSec()).toBe(nowSec - 10);
    await waitFor(() => q.r.stats().failedRounds >= 6, 10_000, "six failed rounds");
    const d = q.r.stats().delaysMs;
    // Equal jitter: step n waits between half and all of min(160, 20·2ⁿ).
    for (const [n, ms] of d.slice(0, 6).entries()) {
      const step = Math.min(160, 20 * 2 ** n);
      expect(ms, `wait ${n}`).toBeGreaterThanOrEqual(step / 2);
      expect(ms, `wait ${n}`).toBeLessThanOrEqual(step);
    }
    q.setFull(false);
    await waitFor(() => q.r.stats().held === 0, 5_000, "all written");
    expect(q.written.sort()).toEqual(items.map((h) => h.raw.id).sort());
    expect(q.r.holdSec()).toBeNull();
    q.r.stop();
  });

  it("a write that succeeds elsewhere brings the next round forward, once per failed round", async () => {
    const q = queue();
    q.r.failed([held(Math.floor(Date.now() / 1000), 0)]);
    await waitFor(() => q.r.stats().failedRounds >= 4, 10_000, "four failed rounds (next wait 80–160 ms)");
    const rounds = q.r.stats().rounds;
    q.r.succeeded();
    q.r.succeeded();
    q.r.succeeded();
    // One early round (10–20 ms), not three; it fails again and the backoff goes on from step 5.
    await waitFor(() => q.r.stats().rounds === rounds + 1, 5_000, "the early round");
    const d = q.r.stats().delaysMs;
    expect(d.at(-2)).toBeLessThanOrEqual(20);
    expect(d.at(-1)).toBeGreaterThanOrEqual(80);
    q.r.stop();
  });

  it("past its cap it drops requests but holds the cursor for them, and asks for a re-read once writes succeed", async () => {
    const q = queue({ maxHeld: 3 });
    const nowSec = Math.floor(Date.now() / 1000);
    q.r.failed([held(nowSec - 5, 0), held(nowSec - 4, 1), held(nowSec - 3, 2), held(nowSec - 20, 3), held(nowSec - 2, 4)]);
    expect(q.r.stats()).toMatchObject({ held: 3, dropped: 2 });
    expect(q.r.holdSec()).toBe(nowSec - 20);
    q.setFull(false);
    await waitFor(() => q.rereads() === 1, 5_000, "the re-read");
    expect(q.written).toHaveLength(3);
    expect(q.r.holdSec()).toBeNull();
    q.r.stop();
  });

  it("lets go of requests older than maxRequestAgeSec, and of their hold", async () => {
    let nowSec = 1_800_000_000;
    const q = queue({ maxAgeSec: 60, maxHeld: 1, nowSec: () => nowSec });
    q.r.failed([held(nowSec - 30, 0), held(nowSec - 50, 1)]);
    expect(q.r.holdSec()).toBe(nowSec - 50);
    nowSec += 40; // both now older than 60 s
    expect(q.r.holdSec()).toBe(nowSec - 70); // the held one still counts until its round
    q.setFull(false);
    await waitFor(() => q.r.stats().held === 0, 5_000, "the round");
    expect(q.written).toEqual([]);
    expect(q.r.holdSec()).toBeNull();
    q.r.stop();
  });
});
