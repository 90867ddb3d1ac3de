// Log lines a peer can cause, rate-limited per key (a relay's url): a relay flooding us
// with malformed frames, NOTICEs or refusals must not flood our logs. At most `perWindow`
// lines per key per window; what is dropped is counted and reported as one
// "suppressed" line per key when its window ends.
import type { Logger } from "pino";

export interface RateLimitedLogOptions {
  perWindow?: number;
  windowMs?: number;
  /** Keys tracked at most (the oldest window is reported and dropped beyond it). */
  maxKeys?: number;
  nowMs?: () => number;
}

type Level = "debug" | "info" | "warn" | "error";

interface Window {
  startMs: number;
  lines: number;
  suppressed: number;
}

export class RateLimitedLog {
  private windows = new Map<string, Window>();
  private timer: NodeJS.Timeout | null = null;
  private readonly perWindow: number;
  private readonly windowMs: number;
  private readonly maxKeys: number;
  private readonly nowMs: () => number;

  constructor(
    private readonly log: Logger,
    o: RateLimitedLogOptions = {},
  ) {
    this.perWindow = o.perWindow ?? 10;
    this.windowMs = o.windowMs ?? 60_000;
    this.maxKeys = o.maxKeys ?? 1000;
    this.nowMs = o.nowMs ?? Date.now;
  }

  /** Logs `msg` unless `key` has used up its lines for this window. Returns whether it was written. */
  write(level: Level, key: string, fields: Record<string, unknown> | (() => Record<string, unknown>), msg: string): boolean {
    const now = this.nowMs();
    let w = this.windows.get(key);
    if (w && now - w.startMs >= this.windowMs) {
      this.report(key, w);
      this.windows.delete(key);
      w = undefined;
    }
    if (!w) {
      if (this.windows.size >= this.maxKeys) {
        const [oldestKey, oldest] = this.windows.entries().next().value as [string, Window];
        this.report(oldestKey, oldest);
        this.windows.delete(oldestKey);
      }
      w = { startMs: now, lines: 0, suppressed: 0 };
      this.windows.set(key, w);
      this.ensureTimer();
    }
    if (w.lines >= this.perWindow) {
      w.suppressed++;
      return false;
    }
    w.lines++;
    // Fields may be built lazily: what is suppressed costs no formatting.
    this.log[level](typeof fields === "function" ? fields() : fields, msg);
    return true;
  }

  /** Reports and closes the windows that have ended (runs on a timer too, so a flood that stops is still counted). */
  flush(all = false): void {
    const now = this.nowMs();
    for (const [key, w] of this.windows) {
      if (all || now - w.startMs >= this.windowMs) {
        this.report(key, w);
        this.windows.delete(key);
      }
    }
    if (this.windows.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  private report(key: string, w: Window): void {
    if (w.suppressed > 0) this.log.warn({ relay: key, suppressed: w.suppressed, windowMs: this.windowMs }, "log lines suppressed (rate limit)");
  }

  private ensureTimer(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.flush(), Math.max(1000, Math.floor(this.windowMs / 2)));
    this.timer.unref();
  }
}
