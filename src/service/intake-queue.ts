// Job requests waiting to be decided, in one bounded queue per tier. When requests come
// faster than the gate decides, the highest tier is decided first, and within a tier the
// oldest request (by created_at: relays page backlogs newest first, so arrival order
// would put the oldest last). When the queues are full, the lowest tier's oldest waiting
// requests go first, before their signature is checked, so a flood of fresh keys costs
// the gate a map lookup per request and known customers never wait behind it.
// No I/O: the tier of each request is looked up by the caller (TierCache).
import type { Event } from "nostr-tools/pure";
import { TIERS, type Tier } from "../policy/tiers.js";

export interface IntakeQueueLimits {
  /** Requests each tier's queue holds at most; its oldest go beyond that. */
  queueSizes: Record<Tier, number>;
  /** Requests all queues hold together at most; the lowest tier's oldest go beyond that. */
  maxQueued: number;
  /** A request that waited longer than this is stale: dropped, not decided. */
  maxWaitMs: number;
}

export interface Queued {
  raw: Event;
  relay: string;
  tier: Tier;
  arrivedMs: number;
  /** Sort key: the event's created_at, never later than its arrival. */
  orderSec: number;
  seq: number;
  gone: boolean;
}

export type DropReason = "full" | "stale";

/** Highest tier first. */
const BY_PRIORITY: readonly Tier[] = [...TIERS].reverse();

function before(a: Queued, b: Queued): boolean {
  return a.orderSec < b.orderSec || (a.orderSec === b.orderSec && a.seq < b.seq);
}

/** A binary min-heap of one tier's waiting requests, oldest on top; removals are lazy. */
class TierHeap {
  private h: Queued[] = [];
  live = 0;

  push(q: Queued): void {
    const h = this.h;
    h.push(q);
    this.live++;
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  /** The oldest live request, without taking it. */
  peek(): Queued | undefined {
    while (this.h.length > 0 && this.h[0]!.gone) this.popTop();
    return this.h[0];
  }

  pop(): Queued | undefined {
    const top = this.peek();
    if (!top) return undefined;
    this.popTop();
    this.live--;
    top.gone = true;
    return top;
  }

  /** Marks one request taken out of turn (popped later, lazily). */
  remove(q: Queued): void {
    if (q.gone) return;
    q.gone = true;
    this.live--;
  }

  private popTop(): void {
    const h = this.h;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && before(h[l]!, h[m]!)) m = l;
      if (r < h.length && before(h[r]!, h[m]!)) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}

export class IntakeQueue {
  private readonly heaps = new Map<Tier, TierHeap>(TIERS.map((t) => [t, new TierHeap()]));
  private readonly byId = new Map<string, Queued>();
  private seq = 0;
  private total = 0;

  constructor(private readonly limits: IntakeQueueLimits) {
    for (const t of TIERS) if (!(limits.queueSizes[t] >= 1)) throw new Error(`invariant: queue size of ${t} must be ≥ 1`);
    if (!(limits.maxQueued >= 1)) throw new Error("invariant: maxQueued must be ≥ 1");
  }

  get size(): number {
    return this.total;
  }

  depths(): Record<Tier, number> {
    return Object.fromEntries(TIERS.map((t) => [t, this.heaps.get(t)!.live])) as Record<Tier, number>;
  }

  /** Queues one request; returns what was shed to make room (possibly this one). */
  push(raw: Event, relay: string, tier: Tier, nowMs: number): Queued[] {
    const created = (raw as { created_at?: unknown }).created_at;
    const nowSec = Math.floor(nowMs / 1000);
    const orderSec = typeof created === "number" && Number.isFinite(created) ? Math.min(created, nowSec) : nowSec;
    const q: Queued = { raw, relay, tier, arrivedMs: nowMs, orderSec, seq: this.seq++, gone: false };
    const heap = this.heaps.get(tier)!;
    heap.push(q);
    this.total++;
    const id = (raw as { id?: unknown }).id;
    if (typeof id === "string") this.byId.set(id, q);
    const shed: Queued[] = [];
    if (heap.live > this.limits.queueSizes[tier]) shed.push(this.popFrom(heap)!);
    while (this.total > this.limits.maxQueued) {
      const lowest = TIERS.map((t) => this.heaps.get(t)!).find((h) => h.live > 0)!;
      shed.push(this.popFrom(lowest)!);
    }
    return shed;
  }

  /** Up to `max` requests to decide now, highest tier first; stale ones come back apart. */
  take(max: number, nowMs: number): { batch: Queued[]; stale: Queued[] } {
    const batch: Queued[] = [];
    const stale: Queued[] = [];
    for (const t of BY_PRIORITY) {
      const heap = this.heaps.get(t)!;
      while (batch.length < max && heap.live > 0) {
        const q = this.popFrom(heap)!;
        if (nowMs - q.arrivedMs > this.limits.maxWaitMs) stale.push(q);
        else batch.push(q);
      }
      if (batch.length >= max) break;
    }
    return { batch, stale };
  }

  /** Takes the waiting requests with these ids out of turn (a deletion or result naming them). */
  takeIds(ids: readonly string[]): Queued[] {
    const out: Queued[] = [];
    for (const id of ids) {
      const q = this.byId.get(id);
      if (!q || q.gone) continue;
      this.heaps.get(q.tier)!.remove(q);
      this.forget(q);
      out.push(q);
    }
    return out;
  }

  /** The oldest created_at still waiting: a relay cursor must not move past it. */
  oldestOrderSec(): number | null {
    let min: number | null = null;
    for (const h of this.heaps.values()) {
      const top = h.peek();
      if (top && (min === null || top.orderSec < min)) min = top.orderSec;
    }
    return min;
  }

  private popFrom(heap: TierHeap): Queued | undefined {
    const q = heap.pop();
    if (q) this.forget(q);
    return q;
  }

  private forget(q: Queued): void {
    this.total--;
    const id = (q.raw as { id?: unknown }).id;
    if (typeof id === "string" && this.byId.get(id) === q) this.byId.delete(id);
  }
}
