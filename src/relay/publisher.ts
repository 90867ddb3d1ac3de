// The outbox publisher: delivers committed outbox rows to their relays, one delivery
// row per (event, relay), and records each relay's OK. A row is only ever marked
// delivered after the relay said OK (or "duplicate:"), so a crash at any point means
// the same signed event is sent again — never a different one, never none: relays
// dedupe by event id, so the customer sees each reply once.
import { AbstractRelay } from "nostr-tools/abstract-relay";
import type { Event, EventTemplate, VerifiedEvent } from "nostr-tools/pure";
import type { Logger } from "pino";
import type { Db } from "../ledger/db.js";
import { withBusyRetry } from "../ledger/db.js";
import { websocketImplementation } from "./ws.js";
import { backoffDelayMs } from "./intake.js";
import { dueDeliveries, nextDeliveryAtMs, recordDelivery, type DueDelivery } from "../ledger/outbox-store.js";

export interface PublisherOptions {
  db: Db;
  log: Logger;
  nowMs: () => number;
  signAuth: (t: EventTemplate) => Promise<VerifiedEvent>;
  onPublished?: (relay: string, ok: boolean, d: DueDelivery) => void;
  /** Called just before an event goes out, so the caller can recognise it when it comes back. */
  onSending?: (ev: Event) => void;
  /** Longest sleep between rounds: rows written by other processes (`dvm-gate settle`) are found this late. */
  pollMs?: number;
  publishTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** Connections to relays unused this long are closed. */
  idleCloseMs?: number;
  /** At most this many relay connections at once (reply relays come from customers). */
  maxConnections?: number;
  batch?: number;
  /** How long stop() waits for deliveries in progress. */
  stopWaitMs?: number;
}

interface Conn {
  relay: AbstractRelay;
  lastUsedMs: number;
}

export class OutboxPublisher {
  private conns = new Map<string, Conn>();
  private inFlight = new Map<string, Promise<void>>();
  private running = false;
  private stopped = true;
  private wake: (() => void) | null = null;
  private loopDone: Promise<void> = Promise.resolve();
  /** Rounds in a row whose results could not be recorded (a full disk): the relay waits longer each time. */
  private recordFailures = 0;
  private readonly o: Required<Omit<PublisherOptions, "onPublished" | "onSending">> & Pick<PublisherOptions, "onPublished" | "onSending">;

  constructor(opts: PublisherOptions) {
    this.o = { pollMs: 1000, publishTimeoutMs: 8000, connectTimeoutMs: 8000, idleCloseMs: 60_000, maxConnections: 64, batch: 200, stopWaitMs: 2000, ...opts };
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loopDone = this.loop();
  }

  /** Something was enqueued: publish now rather than at the next poll. */
  kick(): void {
    this.wake?.();
  }

  /** Finishes the round in progress, then closes every connection. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.kick();
    await this.loopDone;
    for (const c of this.conns.values()) safeClose(c.relay);
    this.conns.clear();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      let started = 0;
      try {
        started = this.round();
      } catch (err) {
        this.o.log.error({ err: (err as Error).message }, "publisher round failed");
      }
      this.closeIdle();
      if (this.stopped) break;
      if (started > 0) continue;
      const next = nextDeliveryAtMs(this.o.db);
      const waitMs = next === null ? this.o.pollMs : Math.max(0, Math.min(this.o.pollMs, next - this.o.nowMs()));
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(20, waitMs));
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = null;
    }
    // Bounded: a relay stuck in its handshake is not worth a slow shutdown; what is
    // left pending is delivered after the next start.
    await Promise.race([Promise.all(this.inFlight.values()), new Promise((r) => setTimeout(r, this.o.stopWaitMs).unref())]);
  }

  /**
   * Starts delivering what is due, one task per relay. A relay still busy (slow, or a
   * dead address a customer named) is skipped, so it never holds up the others.
   * Returns how many deliveries were started.
   */
  round(): number {
    const due = dueDeliveries(this.o.db, this.o.nowMs(), this.o.batch * 4, [...this.inFlight.keys()]);
    const byRelay = new Map<string, DueDelivery[]>();
    let started = 0;
    for (const d of due) {
      const list = byRelay.get(d.relay) ?? [];
      if (list.length >= this.o.batch) continue;
      list.push(d);
      byRelay.set(d.relay, list);
      started++;
    }
    for (const [relay, ds] of byRelay) {
      const task = this.deliverTo(relay, ds)
        .catch(async (err) => {
          // Results not recorded (the store refuses writes): the rows stay due, so without a
          // pause the same events would be sent again at once, in a loop.
          const waitMs = backoffDelayMs(this.recordFailures++, Math.max(100, this.o.pollMs), 30_000);
          this.o.log.error({ relay, err: (err as Error).message, retryInMs: waitMs }, "delivery failed");
          if (!this.stopped) await new Promise((r) => setTimeout(r, waitMs).unref());
        })
        .finally(() => {
          this.inFlight.delete(relay);
          this.kick();
        });
      this.inFlight.set(relay, task);
    }
    return started;
  }

  private async deliverTo(url: string, ds: DueDelivery[]): Promise<void> {
    let relay: AbstractRelay;
    try {
      relay = await this.connection(url);
    } catch (err) {
      const msg = `error: cannot connect: ${String((err as Error)?.message ?? err)}`;
      this.record(ds.map((d) => ({ d, ok: false, msg })), url);
      return;
    }
    const results = await Promise.all(ds.map(async (d) => ({ d, ...(await this.publishOne(relay, d.event)) })));
    this.record(results, url);
  }

  private async publishOne(relay: AbstractRelay, ev: Event): Promise<{ ok: boolean; msg: string }> {
    this.o.onSending?.(ev);
    const attempt = async () => {
      try {
        return { ok: true, msg: (await relay.publish(ev)) || "ok" };
      } catch (err) {
        const msg = String((err as Error)?.message ?? err);
        // NIP-01: the relay already has it. That is what we wanted.
        return { ok: msg.startsWith("duplicate:"), msg };
      }
    };
    const first = await attempt();
    if (first.ok || !first.msg.startsWith("auth-required:")) return first;
    try {
      await relay.auth((t) => this.o.signAuth(t));
    } catch (err) {
      return { ok: false, msg: `auth-required: auth failed: ${String((err as Error)?.message ?? err)}` };
    }
    return attempt();
  }

  private record(results: { d: DueDelivery; ok: boolean; msg: string }[], url: string): void {
    const now = this.o.nowMs();
    withBusyRetry(() =>
      this.o.db
        .transaction(() => {
          for (const r of results) recordDelivery(this.o.db, r.d.outboxId, url, r.ok, r.msg, now);
        })
        .immediate(),
    );
    this.recordFailures = 0;
    for (const r of results) {
      if (!r.ok) this.o.log.warn({ relay: url, event: r.d.event.id, kind: r.d.event.kind, attempts: r.d.attempts + 1, relayMessage: r.msg.slice(0, 200) }, "publish failed; will retry");
      else this.o.log.debug({ relay: url, event: r.d.event.id, kind: r.d.event.kind }, "published");
      this.o.onPublished?.(url, r.ok, r.d);
    }
  }

  private async connection(url: string): Promise<AbstractRelay> {
    const existing = this.conns.get(url);
    if (existing && existing.relay.connected) {
      existing.lastUsedMs = this.o.nowMs();
      return existing.relay;
    }
    if (existing) {
      safeClose(existing.relay);
      this.conns.delete(url);
    }
    if (this.conns.size >= this.o.maxConnections) this.closeOldest();
    const relay = new AbstractRelay(url, {
      verifyEvent: () => true,
      websocketImplementation: websocketImplementation,
    });
    relay.publishTimeout = this.o.publishTimeoutMs;
    relay.onnotice = () => {};
    relay.onauth = (t) => this.o.signAuth(t);
    await relay.connect({ timeout: this.o.connectTimeoutMs });
    if (this.stopped) {
      safeClose(relay);
      throw new Error("publisher stopped");
    }
    this.conns.set(url, { relay, lastUsedMs: this.o.nowMs() });
    return relay;
  }

  private closeIdle(): void {
    const now = this.o.nowMs();
    for (const [url, c] of this.conns) {
      if (now - c.lastUsedMs > this.o.idleCloseMs || !c.relay.connected) {
        safeClose(c.relay);
        this.conns.delete(url);
      }
    }
  }

  private closeOldest(): void {
    let oldest: [string, Conn] | null = null;
    for (const e of this.conns) if (!oldest || e[1].lastUsedMs < oldest[1].lastUsedMs) oldest = e;
    if (oldest) {
      safeClose(oldest[1].relay);
      this.conns.delete(oldest[0]);
    }
  }
}

function safeClose(r: AbstractRelay): void {
  try {
    r.close();
  } catch {
    /* already closed */
  }
}
