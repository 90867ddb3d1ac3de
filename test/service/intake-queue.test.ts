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

  it("sheds and hands out exactly what a plain sorted list would, through floods, takes and named takes", () => {
    // The reference: every waiting request in one list; full means drop the lowest tier's
    // oldest (created_at, then arrival), take means highest tier first, oldest first.
    const order = ["new", "established", "trusted", "elite"] as const;
    let seed = 7;
    const rnd = (k: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % k);
    const limits = { queueSizes: { new: 5, established: 3, trusted: 2, elite: 4 }, maxQueued: 9, maxWaitMs: 60_000 };
    const q = new IntakeQueue(limits);
    type M = { id: string; tier: Tier; sec: number; seq: number };
    let model: M[] = [];
    let seq = 0;
    const older = (a: M, b: M) => a.sec < b.sec || (a.sec === b.sec && a.seq < b.seq);
    const oldestOf = (xs: M[]) => xs.reduce((m, x) => (older(x, m) ? x : m));
    const ids = (xs: { raw: Event }[]) => xs.map((x) => x.raw.id);
    let sheds = 0;
    for (let step = 0; step < 3000; step++) {
      const r = rnd(10);
      if (r < 7) {
        const tier = order[rnd(4)]!;
        const e = ev(NOW / 1000 - rnd(20));
        const m: M = { id: e.id, tier, sec: e.created_at, seq: seq++ };
        model.push(m);
        const want: string[] = [];
        const same = model.filter((x) => x.tier === tier);
        if (same.length > limits.queueSizes[tier]) want.push(oldestOf(same).id);
        model = model.filter((x) => !want.includes(x.id));
        while (model.length > limits.maxQueued) {
          const low = order.find((t) => model.some((x) => x.tier === t))!;
          const o = oldestOf(model.filter((x) => x.tier === low));
          want.push(o.id);
          model = model.filter((x) => x !== o);
        }
        const got = ids(q.push(e, "r", tier, NOW));
        expect(got).toEqual(want);
        sheds += got.length;
      } else if (r < 9) {
        const max = 1 + rnd(3);
        const want: string[] = [];
        for (const t of [...order].reverse()) {
          const of = model.filter((x) => x.tier === t).sort((a, b) => (older(a, b) ? -1 : 1));
          for (const x of of) if (want.length < max) want.push(x.id);
        }
        model = model.filter((x) => !want.includes(x.id));
        expect(ids(q.take(max, NOW).batch)).toEqual(want);
      } else if (model.length > 0) {
        const named = model[rnd(model.length)]!;
        model = model.filter((x) => x !== named);
        expect(ids(q.takeIds([named.id]))).toEqual([named.id]);
      }
      expect(q.size).toBe(model.length);
      expect(q.oldestOrderSec()).toBe(model.length === 0 ? null : oldestOf(model).sec);
    }
    expect(sheds).toBeGreaterThan(100);
  });

  it("keeps a request as the frame it came in and gives back that event when taken; what is shed keeps its id", () => {
    const q = new IntakeQueue({ queueSizes: { ...sizes(10), new: 1 }, maxQueued: 100, maxWaitMs: 60_000 });
    const first = ev(NOW / 1000 - 1);
    const second = { ...ev(), tags: [["param", "x", "y"]], content: 'a "quoted" ü' };
    q.push(first, "r", "new", NOW, JSON.stringify(["EVENT", "sub:1", first]));
    const shed = q.push(second, "r", "new", NOW, JSON.stringify(["EVENT", "sub:1", second]));
    expect(shed.map((x) => x.id)).toEqual([first.id]);
    const [taken] = q.take(10, NOW).batch;
    expect(taken!.raw).toEqual(second);
    expect(taken!.raw).toBe(taken!.raw);
  });
});
