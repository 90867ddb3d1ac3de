// SPEC §5: rate-limit violations cost trust. The plugin's hot path stays read-only: a
// violation only adds the pubkey to a bounded set, and every `plugin.abuseReportSec` one
// short transaction records one abuse per pubkey. It never waits for the lock (25 ms
// busy timeout, no retry): a busy database just means the next round tries again, so
// the relay's writer thread is never held up by the service's writes.
import type { Logger } from "pino";
import type { RuntimeConfig } from "../src/config/load.js";
import { ledgerSettings } from "../src/config/ledger-settings.js";
import { openDb } from "../src/ledger/db.js";
import { Ledger } from "../src/ledger/ledger.js";

/** Most distinct pubkeys held between rounds; a flood beyond it is still rate-limited, just not all penalised. */
export const MAX_PENDING_REPORTS = 10_000;

export class AbuseReporter {
  private pending = new Set<string>();
  private ledger: Ledger | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly cfg: RuntimeConfig,
    private readonly log: Logger,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Called on the hot path: memory only. */
  report = (pubkey: string): void => {
    if (this.pending.size < MAX_PENDING_REPORTS) this.pending.add(pubkey);
  };

  start(): void {
    if (this.cfg.plugin.abuseReportSec === 0) return;
    this.timer = setInterval(() => this.flush(), this.cfg.plugin.abuseReportSec * 1000);
    this.timer.unref();
  }

  /** Writes what was collected; keeps it for the next round if the database is busy or absent. */
  flush(): number {
    if (this.pending.size === 0) return 0;
    const pubkeys = [...this.pending];
    try {
      this.ledger ??= new Ledger(openDb(this.cfg.database.path, { busyTimeoutMs: 25, synchronous: this.cfg.database.synchronous }), ledgerSettings(this.cfg));
      const n = this.ledger.recordAbuseMany(pubkeys, "rate limit exceeded at the relay", this.clock(), 1);
      for (const pk of pubkeys) this.pending.delete(pk);
      this.log.info({ pubkeys: n }, "rate-limit violations recorded as abuse");
      return n;
    } catch (err) {
      this.log.warn({ err: (err as Error).message, pubkeys: pubkeys.length }, "could not record rate-limit abuse yet; will retry");
      return 0;
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.flush();
    this.ledger?.close();
    this.ledger = null;
  }
}
