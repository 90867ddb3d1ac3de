// What the operator sees of a flood (the page's floods section and /metrics): queue
// depth and requests shed per tier, invoice-limit refusals, and decisions per second.
import type { Tier } from "../policy/tiers.js";
import type { InvoiceLimit } from "../policy/invoice-limits.js";

export interface FloodStats {
  depths: Record<Tier, number>;
  shed: Record<Tier, { full: number; stale: number }>;
  limited: Record<InvoiceLimit, { replied: number; silent: number }>;
  decisionsPerSecond: number;
}

/** Decisions counted in one-second buckets over a fixed window: bounded memory, O(1) per decision. */
export class DecisionRate {
  private readonly counts: number[];
  private readonly secs: number[];

  constructor(private readonly windowSec = 10) {
    this.counts = new Array<number>(windowSec).fill(0);
    this.secs = new Array<number>(windowSec).fill(-1);
  }

  add(nowMs: number): void {
    const sec = Math.floor(nowMs / 1000);
    const i = sec % this.windowSec;
    if (this.secs[i] !== sec) {
      this.secs[i] = sec;
      this.counts[i] = 0;
    }
    this.counts[i]!++;
  }

  /** Mean over the last full `windowSec` seconds before now (the current second is still filling). */
  perSecond(nowMs: number): number {
    const sec = Math.floor(nowMs / 1000);
    let n = 0;
    for (let k = 0; k < this.windowSec; k++) if (this.secs[k]! < sec && this.secs[k]! >= sec - this.windowSec) n += this.counts[k]!;
    return n / this.windowSec;
  }
}
