// Requests whose decision could not be written (disk full, I/O error, a lock never
// released), and settlement signals (results, errors, deletions, zaps) likewise, are
// not lost: they are held here, bounded, and handled again with capped exponential
// backoff, sooner once some other write went through. While any request is
// held (or was dropped from a full queue and not yet read again), the relay cursors
// are held at its created_at, so a restart reads it again from the relay. A held
// request older than `maxAgeSec` would be ignored on any re-read (SPEC §4), so it is let
// go, and with it its hold.
import type { Event } from "nostr-tools/pure";
import type { Logger } from "pino";
import { backoffDelayMs } from "../relay/intake.js";

export interface HeldRequest {
  raw: Event;
  relay: string;
}

export interface DecisionRetryOptions {
  log: Logger;
  nowMs: () => number;
  /** Decides these again; false when their writes failed again (they are then back in `failed`). */
  redecide: (items: HeldRequest[]) => boolean;
  /** Asks the relays to send again what was dropped from a full queue (from the held cursor). */
  reread: () => void;
  maxAgeSec: number;
  maxHeld?: number;
  /** Requests decided per transaction in a retry round. */
  chunk?: number;
  baseMs?: number;
  maxMs?: number;
}

export interface DecisionRetryStats {
  held: number;
  /** Retry rounds run, and those whose writes failed again. */
  rounds: number;
  failedRounds: number;
  /** Requests dropped from a full queue (left to the relays and the cursor hold). */
  dropped: number;
  /** Wait before each round, as scheduled (newest last, the last 50). */
  delaysMs: number[];
}

/** SQLite error codes that say the write itself failed, not the request. */
const WRITE_FAILURE = /^SQLITE_(FULL|IOERR|BUSY|LOCKED|READONLY|CANTOPEN|PROTOCOL|NOMEM)/;

/** True when a decision failed because it could not be written, so trying later may succeed. */
export function isWriteFailure(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string" && WRITE_FAILURE.test(code)) return true;
  return (err as Error | null)?.name === "LedgerBusyError";
}

export class DecisionRetry {
  private held = new Map<string, HeldRequest>();
  /** Oldest created_at of a request dropped from the full queue, until re-read or too old. */
  private droppedFloorSec: number | null = null;
  private step = 0;
  private timer: NodeJS.Timeout | null = null;
  private timerAtMs = 0;
  private pulledForward = false;
  private running = false;
  private stopped = false;
  private warnedFull = false;
  private readonly st: DecisionRetryStats = { held: 0, rounds: 0, failedRounds: 0, dropped: 0, delaysMs: [] };
  private readonly o: Required<DecisionRetryOptions>;

  constructor(o: DecisionRetryOptions) {
    this.o = { maxHeld: 1000, chunk: 32, baseMs: 500, maxMs: 30_000, ...o };
  }

  /** These requests' decisions were not written: hold them and try again later. */
  failed(items: HeldRequest[]): void {
    for (const it of items) {
      if (this.held.has(it.raw.id)) continue;
      if (this.held.size >= this.o.maxHeld) {
        this.drop(it);
        continue;
      }
      this.held.set(it.raw.id, it);
    }
    if (!this.running) this.schedule();
  }

  /** A decision was written: the disk takes writes again, so held requests need not wait out their backoff. */
  succeeded(): void {
    if (this.running || this.stopped) return;
    if (this.held.size === 0) {
      if (this.droppedFloorSec !== null) this.rereadDropped();
      return;
    }
    // Once per failed round, so a store that takes some writes and refuses others is
    // still retried at a backed-off pace, not once per incoming request.
    if (this.pulledForward || this.timerAtMs - this.o.nowMs() <= this.o.baseMs) return;
    this.pulledForward = true;
    this.arm(backoffDelayMs(0, this.o.baseMs, this.o.baseMs));
  }

  /** The newest second a relay cursor may stand at: the oldest request not decided yet, or null. */
  holdSec(): number | null {
    const tooOldSec = Math.floor(this.o.nowMs() / 1000) - this.o.maxAgeSec;
    if (this.droppedFloorSec !== null && this.droppedFloorSec < tooOldSec) this.droppedFloorSec = null;
    let min = this.droppedFloorSec;
    for (const h of this.held.values()) if (min === null || h.raw.created_at < min) min = h.raw.created_at;
    return min;
  }

  stats(): DecisionRetryStats {
    return { ...this.st, held: this.held.size, delaysMs: [...this.st.delaysMs] };
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private drop(it: HeldRequest): void {
    this.st.dropped++;
    const c = it.raw.created_at;
    if (this.droppedFloorSec === null || c < this.droppedFloorSec) this.droppedFloorSec = c;
    if (!this.warnedFull) {
      this.warnedFull = true;
      this.o.log.error(
        { maxHeld: this.o.maxHeld, holdSinceSec: this.droppedFloorSec },
        "decision retry queue full: further undecided requests are left on the relays; cursors stay at the oldest, and they are read again once writes succeed",
      );
    }
  }

  private schedule(): void {
    if (this.stopped || this.held.size === 0 || this.timer) return;
    const delayMs = backoffDelayMs(this.step, this.o.baseMs, this.o.maxMs);
    this.arm(delayMs);
  }

  private arm(delayMs: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timerAtMs = this.o.nowMs() + delayMs;
    this.st.delaysMs.push(delayMs);
    if (this.st.delaysMs.length > 50) this.st.delaysMs.shift();
    this.timer = setTimeout(() => {
      this.timer = null;
      this.round();
    }, delayMs);
    this.timer.unref();
  }

  private round(): void {
    if (this.stopped) return;
    this.running = true;
    this.st.rounds++;
    let ok = true;
    try {
      const tooOldSec = Math.floor(this.o.nowMs() / 1000) - this.o.maxAgeSec;
      const all = [...this.held.values()];
      this.held.clear();
      for (let i = 0; i < all.length; i += this.o.chunk) {
        // A request re-read meanwhile may be written already: the ledger's idempotency key makes that a no-op.
        const chunk = all.slice(i, i + this.o.chunk).filter((h) => h.raw.created_at >= tooOldSec);
        if (chunk.length === 0) continue;
        if (!this.o.redecide(chunk)) {
          // Still failing: keep the rest for the next round (redecide re-held this chunk).
          for (const h of all.slice(i + this.o.chunk)) if (!this.held.has(h.raw.id)) this.held.set(h.raw.id, h);
          ok = false;
          break;
        }
      }
    } finally {
      this.running = false;
    }
    this.pulledForward = false;
    if (ok && this.held.size === 0) {
      this.step = 0;
      this.o.log.info({ rounds: this.st.rounds }, "held decisions written");
      if (this.droppedFloorSec !== null) this.rereadDropped();
      return;
    }
    if (!ok) {
      this.st.failedRounds++;
      this.step++;
    }
    const delayMs = backoffDelayMs(this.step, this.o.baseMs, this.o.maxMs);
    this.o.log.warn({ held: this.held.size, attempt: this.step, retryInMs: delayMs }, "decisions still not written; will retry");
    this.arm(delayMs);
  }

  private rereadDropped(): void {
    // The relays' catch-up after this holds their cursors until it is through, so the
    // floor can go now: what it protected is being read again.
    this.droppedFloorSec = null;
    this.warnedFull = false;
    this.o.log.info("writes succeed again: reading the relays again for requests dropped from the retry queue");
    this.o.reread();
  }
}
