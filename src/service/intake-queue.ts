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
  readonly raw: Event;
  /** The event's id as it came (not checked yet): read without parsing a kept frame. */
  readonly id: unknown;
  relay: string;
  tier: Tier;
  arrivedMs: number;
  /** Sort key: the event's created_at, never later than its arrival. */
  orderSec: number;
  seq: number;
  gone: boolean;
}

/**
 * A waiting request. Given the relay frame that brought it, it keeps that string and
 * parses it again only when taken: most of a flood is shed unread, and one flat string
 * that lived a second costs the garbage collector far less than the parsed event does.
 */
class Waiting implements Queued {
  gone = false;
  constructor(
    private ev: Event | null,
    private frame: string | null,
    readonly id: unknown,
    readonly relay: string,
    readonly tier: Tier,
    readonly arrivedMs: number,
    readonly orderSec: number,
    readonly seq: number,
  ) {}

  get raw(): Event {
    if (this.ev === null) {
      // The same text the relay library parsed once already: `["EVENT", subId, event]`.
      this.ev = (JSON.parse(this.frame!) as unknown[])[2] as Event;
      this.frame = null;
    }
    return this.ev;
  }
}

export type DropReason = "full" | "stale";

/** What push returns when nothing was shed (most requests): one shared empty array, never written. */
const NONE_SHED: Queued[] = [];

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
    // Sifted with a hole, not swaps: this runs for every request a flood brings.
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = h[p]!;
      if (!before(q, parent)) break;
      h[i] = parent;
      i = p;
    }
    h[i] = q;
  }

  /**
   * For a full queue: takes the oldest live request and puts `q` (not older than it) in
   * its place with one sift, where push-then-pop would sift twice. Same contents after.
   */
  replaceTop(q: Queued): Queued {
    const top = this.peek()!;
    top.gone = true;
    this.siftDown(q);
    return top;
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
    const last = this.h.pop()!;
    if (this.h.length > 0) this.siftDown(last);
  }

  /** Puts `x` at the root (replacing what is there) and sifts it down to its place. */
  private siftDown(x: Queued): void {
    const h = this.h;
    const n = h.length;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const m = r < n && before(h[r]!, h[l]!) ? r : l;
      const child = h[m]!;
      if (!before(child, x)) break;
      h[i] = child;
      i = m;
    }
    h[i] = x;
  }
}

export class IntakeQueue {
  private readonly heaps = new Map<Tier, TierHeap>(TIERS.map((t) => [t, new TierHeap()]));
  private readonly byId = new Map<string, Queued>();
  /** The heaps, lowest tier first. */
  private readonly lowFirst: TierHeap[] = TIERS.map((t) => this.heaps.get(t)!);
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

  /** Queues one request (`frame`: the relay frame text that brought it, see Waiting); returns what was shed to make room (possibly this one). */
  push(raw: Event, relay: string, tier: Tier, nowMs: number, frame: string | null = null): Queued[] {
    const created = (raw as { created_at?: unknown }).created_at;
    const nowSec = Math.floor(nowMs / 1000);
    const orderSec = typeof created === "number" && Number.isFinite(created) ? Math.min(created, nowSec) : nowSec;
    const q = new Waiting(frame === null ? raw : null, frame, (raw as { id?: unknown }).id, relay, tier, nowMs, orderSec, this.seq++);
    const heap = this.heaps.get(tier)!;
    const id = q.id;
    let shed: Queued[] | null = null;
    if (heap.live >= this.limits.queueSizes[tier]) {
      // Full (a flood's steady state): what goes is the oldest of the waiting ones and this
      // one, decided before touching the heap; this one never enters if it is that one.
      if (before(q, heap.peek()!)) {
        // As if queued and shed at once: an entry of its id does not survive either way.
        if (typeof id === "string") this.byId.delete(id);
        return [q];
      }
      this.total++;
      if (typeof id === "string") this.byId.set(id, q);
      const top = heap.replaceTop(q);
      this.forget(top);
      shed = [top];
    } else {
      heap.push(q);
      this.total++;
      if (typeof id === "string") this.byId.set(id, q);
    }
    while (this.total > this.limits.maxQueued) {
      let lowest = this.lowFirst[0]!;
      for (const h of this.lowFirst) {
        if (h.live > 0) {
          lowest = h;
          break;
        }
      }
      (shed ??= []).push(this.popFrom(lowest)!);
    }
    return shed ?? NONE_SHED;
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
    const id = q.id;
    if (typeof id === "string" && this.byId.get(id) === q) this.byId.delete(id);
  }
}
