import { describe, expect, it } from "vitest";
import type { Event } from "nostr-tools/pure";
import { IntakeQueue } from "../../src/service/intake-queue.js";
import type { Tier } from "../../src/policy/tiers.js";

const NOW = 1_700_000_000_000;
let n = 0;
function ev(createdAtSec = NOW / 1000): Event {
  const id = (n++).toString(16).padStart(64, "0");
  return { id, pubkey: "00".repeat(32), kind: 5050, created_at: createdAtSec, tags: [], content: "", sig: "" };
}
const sizes = (s: number): Record<Tier, number> => ({ new: s, established: s, trusted: s, elite: s });

describe("intake queue", () => {
  it("hands out the highest tier first, and within a tier the oldest created_at first", () => {
    const q = new IntakeQueue({ queueSizes: sizes(10), maxQueued: 100, maxWaitMs: 60_000 });
    const fresh = ev();
    const newerElite = ev(NOW / 1000 - 1);
    const olderElite = ev(NOW / 1000 - 5);
    const trusted = ev();
    q.push(fresh, "r", "new", NOW);
    q.push(newerElite, "r", "elite", NOW);
    q.push(trusted, "r", "trusted", NOW);
    q.push(olderElite, "r", "elite", NOW);
    expect(q.take(10, NOW).batch.map((x) => x.raw.id)).toEqual([olderElite.id, newerElite.id, trusted.id, fresh.id]);
    expect(q.size).toBe(0);
  });

  it("when full, sheds the lowest tier's oldest: new always before anybody known", () => {
    const q = new IntakeQueue({ queueSizes: sizes(10), maxQueued: 4, maxWaitMs: 60_000 });
    const a = ev(NOW / 1000 - 10);
    const b = ev(NOW / 1000 - 5);
    q.push(a, "r", "new", NOW);
    q.push(b, "r", "new", NOW);
    q.push(ev(), "r", "established", NOW);
    q.push(ev(), "r", "elite", NOW);
    expect(q.push(ev(), "r", "elite", NOW).map((x) => x.raw.id)).toEqual([a.id]);
    expect(q.push(ev(), "r", "trusted", NOW).map((x) => x.raw.id)).toEqual([b.id]);
    // No new left: the lowest known tier gives way to a higher one.
    expect(q.push(ev(), "r", "elite", NOW).map((x) => x.tier)).toEqual(["established"]);
    // A new arrival into a queue full of known customers is itself the one shed.
    const late = ev();
    expect(q.push(late, "r", "new", NOW).map((x) => x.raw.id)).toEqual([late.id]);
    expect(q.depths()).toEqual({ new: 0, established: 0, trusted: 1, elite: 3 });
  });

  it("bounds each tier's queue by its own size", () => {
    const q = new IntakeQueue({ queueSizes: { ...sizes(10), new: 2 }, maxQueued: 100, maxWaitMs: 60_000 });
    const first = ev(NOW / 1000 - 3);
    q.push(first, "r", "new", NOW);
    q.push(ev(NOW / 1000 - 2), "r", "new", NOW);
    expect(q.push(ev(NOW / 1000 - 1), "r", "new", NOW).map((x) => x.raw.id)).toEqual([first.id]);
    expect(q.size).toBe(2);
  });

  it("gives back requests that waited past maxWaitMs as stale, apart from the batch", () => {
    const q = new IntakeQueue({ queueSizes: sizes(10), maxQueued: 100, maxWaitMs: 1000 });
    const old = ev();
    q.push(old, "r", "elite", NOW);
    const recent = ev();
    q.push(recent, "r", "new", NOW + 1500);
    const t = q.take(10, NOW + 2000);
    expect(t.stale.map((x) => x.raw.id)).toEqual([old.id]);
    expect(t.batch.map((x) => x.raw.id)).toEqual([recent.id]);
  });

  it("takes named requests out of turn and keeps cursors behind the oldest waiting one", () => {
    const q = new IntakeQueue({ queueSizes: sizes(10), maxQueued: 100, maxWaitMs: 60_000 });
    const a = ev(NOW / 1000 - 30);
    const b = ev(NOW / 1000 - 10);
    q.push(a, "r", "new", NOW);
    q.push(b, "r", "elite", NOW);
    expect(q.oldestOrderSec()).toBe(NOW / 1000 - 30);
    expect(q.takeIds([a.id, "ff".repeat(32)]).map((x) => x.raw.id)).toEqual([a.id]);
    expect(q.oldestOrderSec()).toBe(NOW / 1000 - 10);
    expect(q.size).toBe(1);
    expect(q.take(10, NOW).batch.map((x) => x.raw.id)).toEqual([b.id]);
    expect(q.oldestOrderSec()).toBeNull();
  });
});
