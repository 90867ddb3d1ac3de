// The outbox publisher: delivers committed outbox rows to their relays, one delivery
// row per (event, relay), and records each relay's OK. A row is only ever marked
// delivered after the relay said OK (or "duplicate:"), so a crash at any point means
// the same signed event is sent again — never a different one, never none: relays
// dedupe by event id, so the customer sees each reply once.
//
// The common case costs no read and no transaction of its own: the decision that wrote
// a reply hands its outbox ids over after commit (deliverNew), and relays' OKs are kept
// in memory and written together every ackFlushMs. A crash before that write forgets
// the OKs, and those events are sent again after the restart (the same bytes; the relay
// answers "duplicate:"). Everything else (failures, rows written by other processes,
// retries) is found by scanning the outbox, on a kick or every pollMs.
//
// Relays named in a customer's `relays` tag are untrusted peers: anyone can aim us at an
// address that hangs, refuses us or needs AUTH we cannot pass. They get short timeouts,
// few attempts per reply and a budget of connections of their own, so the configured
// relays are never starved by them; and every relay that fails as a whole backs off as a
// whole (capped exponential, with jitter), with its failures logged once per attempt at
// most, rate-limited per relay.
import type { Event, EventTemplate, VerifiedEvent } from "nostr-tools/pure";
import type { Logger } from "pino";
import type { Db } from "../ledger/db.js";
import { withBusyRetry } from "../ledger/db.js";
import {
  deferRelay,
  dueDeliveries,
  MAX_DELIVERY_ATTEMPTS,
  nextDeliveryAtMs,
  pendingDeliveriesOf,
  recordDelivery,
  type DueDelivery,
} from "../ledger/outbox-store.js";
import { backoffDelayMs } from "./backoff.js";
import { RateLimitedLog } from "./rate-limited-log.js";
import { SafeRelay } from "./safe-relay.js";

/** Bounds for relays we did not configure (a customer's `relays` tag). */
export interface UntrustedRelayLimits {
  /** Customer relays connected or being delivered to at once, in total. */
  maxOpen: number;
  connectTimeoutMs: number;
  publishTimeoutMs: number;
  /** Attempts per reply per relay before that delivery is given up. */
  maxAttempts: number;
}

export const DEFAULT_UNTRUSTED_LIMITS: UntrustedRelayLimits = { maxOpen: 16, connectTimeoutMs: 3000, publishTimeoutMs: 3000, maxAttempts: 3 };

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
  /** The configured relays; any other is a customer's and gets `untrusted`'s bounds. */
  trustedRelays?: string[];
  untrusted?: UntrustedRelayLimits;
  /** Per-relay backoff after a relay failed as a whole (no connection, no OK, refused us). */
  relayBackoffBaseMs?: number;
  relayBackoffMaxMs?: number;
  /** Relays' OKs are written together at most this long after they came (one transaction for all). */
  ackFlushMs?: number;
}

interface Conn {
  relay: SafeRelay;
  lastUsedMs: number;
  trusted: boolean;
}

interface RelayHealth {
  failures: number;
  untilMs: number;
}

/** Relays whose backoff is remembered at most (the rest is in the rows' next_attempt_at_ms). */
const MAX_TRACKED_RELAYS = 10_000;
/** OKs held before they are written at once, whatever ackFlushMs says (below a scan's batch, so held rows cannot fill one). */
const MAX_HELD_ACKS = 500;

interface HeldAck {
  outboxId: number;
  relay: string;
  msg: string;
}

export class OutboxPublisher {
  private conns = new Map<string, Conn>();
  private inFlight = new Map<string, Promise<void>>();
  private health = new Map<string, RelayHealth>();
  private readonly trusted: Set<string>;
  private readonly peerLog: RateLimitedLog;
  private running = false;
  private stopped = true;
  private wake: (() => void) | null = null;
  /** OKs not written yet, by `outboxId relay`: a scan skips these rows. */
  private acks = new Map<string, HeldAck>();
  private ackTimer: NodeJS.Timeout | null = null;
  /** Relays that had due rows left over (batch full, a failure): scanned for when their delivery ends. */
  private leftover = new Set<string>();
  /** New rows (deliverNew) for a relay that was busy: sent when its delivery ends, without a scan. */
  private waiting = new Map<string, DueDelivery[]>();
  /** Customer relays' rows were left over the budget: the next end of one kicks a scan. */
  private untrustedWaiting = false;
  private loopDone: Promise<void> = Promise.resolve();
  private readonly o: Required<Omit<PublisherOptions, "onPublished" | "onSending">> & Pick<PublisherOptions, "onPublished" | "onSending">;

  constructor(opts: PublisherOptions) {
    this.o = {
      pollMs: 1000,
      publishTimeoutMs: 8000,
      connectTimeoutMs: 8000,
      idleCloseMs: 60_000,
      maxConnections: 64,
      batch: 200,
      stopWaitMs: 2000,
      trustedRelays: [],
      untrusted: DEFAULT_UNTRUSTED_LIMITS,
      relayBackoffBaseMs: 1000,
      relayBackoffMaxMs: 5 * 60_000,
      ackFlushMs: 250,
      ...opts,
    };
    this.trusted = new Set(this.o.trustedRelays);
    this.peerLog = new RateLimitedLog(this.o.log, { perWindow: 10, windowMs: 60_000 });
  }

  /** A relay we did not configure is a customer's. */
  isTrusted(url: string): boolean {
    return this.trusted.has(url);
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

  /**
   * Delivers the deliveries of these outbox rows, just committed (collectEnqueued), now and
   * without a scan: read by primary key. A relay busy or backed off gets them from a scan later.
   */
  deliverNew(outboxIds: readonly number[]): void {
    if (this.stopped || outboxIds.length === 0) return;
    let due: DueDelivery[];
    try {
      due = pendingDeliveriesOf(this.o.db, [...new Set(outboxIds)]);
    } catch (err) {
      this.o.log.error({ err: (err as Error).message }, "publisher could not read new deliveries");
      this.kick();
      return;
    }
    this.begin(this.notAcked(due), true);
  }

  /** Finishes the round in progress, then closes every connection. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.kick();
    await this.loopDone;
    if (this.ackTimer) clearTimeout(this.ackTimer);
    this.ackTimer = null;
    this.flushAcks();
    for (const c of this.conns.values()) c.relay.safeClose();
    this.conns.clear();
    this.peerLog.flush(true);
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
      let waitMs = this.o.pollMs;
      try {
        const now = this.o.nowMs();
        const next = nextDeliveryAtMs(this.o.db);
        if (next !== null) waitMs = Math.max(0, Math.min(this.o.pollMs, next - now));
        // Due but not started: held back by a relay's backoff (in memory, when the database
        // could not take it) or a busy relay (whose end kicks): sleep to the backoff's end.
        if (waitMs === 0) waitMs = Math.min(this.o.pollMs, ...[...this.health.values()].map((h) => h.untilMs - now).filter((ms) => ms > 0));
      } catch (err) {
        this.o.log.error({ err: (err as Error).message }, "publisher round failed");
      }
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
    const now = this.o.nowMs();
    const busy = [...this.inFlight.keys()];
    for (const [url, h] of this.health) if (h.untilMs > now) busy.push(url);
    // Two reads, so a backlog of customer relays cannot crowd the configured ones out of the batch.
    const due = dueDeliveries(this.o.db, now, this.o.batch * 4, busy, [...this.trusted]);
    if (this.untrustedOpen() < this.o.untrusted.maxOpen) due.push(...dueDeliveries(this.o.db, now, this.o.batch * 4, [...busy, ...this.trusted]));
    else this.untrustedWaiting = true;
    // OKs not written yet: those rows are delivered already.
    return this.begin(this.notAcked(due));
  }

  private untrustedOpen(): number {
    let n = 0;
    for (const u of this.inFlight.keys()) if (!this.isTrusted(u)) n++;
    return n;
  }

  /**
   * Starts one delivery task per relay that is neither busy nor backed off; returns how
   * many deliveries started. `fresh` rows (deliverNew) for a busy relay wait in memory for
   * its delivery to end; a scan's never do (a scan skips busy relays).
   */
  private begin(due: DueDelivery[], fresh = false): number {
    if (due.length === 0) return 0;
    const now = this.o.nowMs();
    let untrustedOpen = this.untrustedOpen();
    const byRelay = new Map<string, DueDelivery[]>();
    let started = 0;
    for (const d of due) {
      let list = byRelay.get(d.relay);
      if (!list) {
        if (this.inFlight.has(d.relay)) {
          // Sent when the delivery in progress ends.
          const w = this.waiting.get(d.relay);
          if (!fresh || (w?.length ?? 0) >= this.o.batch) this.leftover.add(d.relay);
          else if (w) w.push(d);
          else this.waiting.set(d.relay, [d]);
          continue;
        }
        if ((this.health.get(d.relay)?.untilMs ?? 0) > now) continue;
        if (!this.isTrusted(d.relay)) {
          // The budget of customer relays: what is over it waits until one ends (which kicks).
          if (untrustedOpen >= this.o.untrusted.maxOpen) {
            this.untrustedWaiting = true;
            continue;
          }
          untrustedOpen++;
        }
        byRelay.set(d.relay, (list = []));
      }
      if (list.length >= this.o.batch) {
        this.leftover.add(d.relay);
        continue;
      }
      list.push(d);
      started++;
    }
    for (const [relay, ds] of byRelay) {
      const task = this.deliverTo(relay, ds)
        .catch((err) => {
          // Not the relay's answer but ours (the store refuses writes, a full disk): the rows
          // stay due, so without a pause the same events would go out again at once, in a
          // loop. Backed off in memory, capped at 30 s so that recovery is noticed soon.
          const retryInMs = this.relayFailed(relay, false, 30_000);
          this.peerLog.write("error", relay, { relay, err: String((err as Error)?.message ?? err).slice(0, 200), retryInMs }, "delivery failed");
          this.leftover.add(relay);
        })
        .finally(() => {
          this.inFlight.delete(relay);
          // A scan only when something may be waiting for this relay: the usual delivery
          // (all OK, nothing new meanwhile) costs no read.
          const waited = !this.isTrusted(relay) && this.untrustedWaiting;
          if (waited) this.untrustedWaiting = false;
          const next = this.waiting.get(relay);
          if (next) {
            this.waiting.delete(relay);
            if (!this.stopped) this.begin(this.notAcked(next), true);
          }
          if (this.leftover.delete(relay) || waited) this.kick();
        });
      this.inFlight.set(relay, task);
    }
    return started;
  }

  private async deliverTo(url: string, ds: DueDelivery[]): Promise<void> {
    let relay: SafeRelay;
    try {
      relay = await this.connection(url);
    } catch (err) {
      const msg = `error: cannot connect: ${String((err as Error)?.message ?? err)}`;
      this.record(
        ds.map((d) => ({ d, ok: false, msg })),
        url,
      );
      return;
    }
    const results = await Promise.all(ds.map(async (d) => ({ d, ...(await this.publishOne(relay, d.event)) })));
    this.record(results, url);
  }

  private async publishOne(relay: SafeRelay, ev: Event): Promise<{ ok: boolean; msg: string }> {
    this.o.onSending?.(ev);
    const attempt = async () => {
      try {
        return { ok: true, msg: String((await relay.publish(ev)) || "ok") };
      } catch (err) {
        const msg = String((err as Error)?.message ?? err);
        // NIP-01: the relay already has it. That is what we wanted.
        return { ok: msg.startsWith("duplicate:"), msg };
      }
    };
    const first = await attempt();
    if (!first.ok && relay.authFailure) return { ok: false, msg: `auth-required: ${relay.authFailure}` };
    if (first.ok || !first.msg.startsWith("auth-required:")) return first;
    try {
      await relay.authenticate();
    } catch (err) {
      return { ok: false, msg: `auth-required: ${relay.authFailure ?? `auth failed: ${String((err as Error)?.message ?? err)}`}` };
    }
    return attempt();
  }

  private maxAttempts(url: string): number {
    return this.isTrusted(url) ? MAX_DELIVERY_ATTEMPTS : Math.min(MAX_DELIVERY_ATTEMPTS, this.o.untrusted.maxAttempts);
  }

  /** Counts a failure of the relay as a whole; returns its backoff. */
  private relayFailed(url: string, persist: boolean, maxMs = this.o.relayBackoffMaxMs): number {
    const h = this.health.get(url) ?? { failures: 0, untilMs: 0 };
    this.health.delete(url);
    const delayMs = backoffDelayMs(h.failures, this.o.relayBackoffBaseMs, Math.min(maxMs, this.o.relayBackoffMaxMs));
    h.failures++;
    h.untilMs = this.o.nowMs() + delayMs;
    this.health.set(url, h);
    if (this.health.size > MAX_TRACKED_RELAYS) this.health.delete(this.health.keys().next().value as string);
    if (persist) deferRelay(this.o.db, url, h.untilMs);
    return delayMs;
  }

  private record(results: { d: DueDelivery; ok: boolean; msg: string }[], url: string): void {
    const now = this.o.nowMs();
    const maxAttempts = this.maxAttempts(url);
    const failed = results.filter((r) => !r.ok);
    // A relay that took nothing failed as a whole; one OK shows it works (single rejections are the rows' own backoff).
    const relayDown = failed.length > 0 && failed.length === results.length;
    let retryInMs: number | null = null;
    if (failed.length === 0) {
      // All OK (the usual answer): held, and written with others (flushAcks).
      for (const r of results) this.acks.set(ackKey(r.d.outboxId, url), { outboxId: r.d.outboxId, relay: url, msg: r.msg });
      if (this.acks.size >= MAX_HELD_ACKS) this.flushAcks();
      else this.ackTimer ??= setTimeout(() => ((this.ackTimer = null), this.flushAcks()), this.o.ackFlushMs);
    } else {
      // A failure sets the row's next attempt: written now, with the OKs held so far.
      const held = [...this.acks.values()];
      withBusyRetry(() =>
        this.o.db
          .transaction(() => {
            this.writeAcks(held, now);
            for (const r of results) recordDelivery(this.o.db, r.d.outboxId, url, r.ok, r.msg, now, maxAttempts);
            if (relayDown) retryInMs = this.relayFailed(url, true);
          })
          .immediate(),
      );
      this.forgetAcks(held);
      // The rows' new due times: the loop recomputes its sleep.
      this.leftover.add(url);
    }
    if (!relayDown && results.length > 0) this.health.delete(url);
    if (failed.length > 0) {
      const givenUp = failed.filter((r) => r.d.attempts + 1 >= maxAttempts).length;
      const f = failed[0]!;
      this.peerLog.write(
        "warn",
        url,
        () => ({
          relay: url,
          trusted: this.isTrusted(url),
          failed: failed.length,
          of: results.length,
          givenUp,
          event: f.d.event.id,
          kind: f.d.event.kind,
          attempts: f.d.attempts + 1,
          relayMessage: f.msg.slice(0, 200),
          retryInMs,
        }),
        givenUp === failed.length ? "publish failed; given up for this relay" : "publish failed; will retry",
      );
    }
    for (const r of results) {
      if (r.ok) this.o.log.debug({ relay: url, event: r.d.event.id, kind: r.d.event.kind }, "published");
      this.o.onPublished?.(url, r.ok, r.d);
    }
  }

  /** Writes the OKs held so far in one transaction; kept for the next try if the store refuses. */
  private flushAcks(): void {
    if (this.acks.size === 0) return;
    const held = [...this.acks.values()];
    const now = this.o.nowMs();
    try {
      withBusyRetry(() => this.o.db.transaction(() => this.writeAcks(held, now)).immediate());
      this.forgetAcks(held);
    } catch (err) {
      this.peerLog.write(
        "error",
        "(store)",
        { err: String((err as Error)?.message ?? err).slice(0, 200), held: held.length },
        "could not record relay OKs; retrying",
      );
      if (!this.stopped) this.ackTimer ??= setTimeout(() => ((this.ackTimer = null), this.flushAcks()), Math.max(1000, this.o.ackFlushMs));
    }
  }

  /** Rows whose OK is held are delivered already: never sent again. */
  private notAcked(due: DueDelivery[]): DueDelivery[] {
    return this.acks.size === 0 ? due : due.filter((d) => !this.acks.has(ackKey(d.outboxId, d.relay)));
  }

  /** Inside the caller's transaction. */
  private writeAcks(held: HeldAck[], now: number): void {
    for (const a of held) recordDelivery(this.o.db, a.outboxId, a.relay, true, a.msg, now);
  }

  private forgetAcks(held: HeldAck[]): void {
    for (const a of held) {
      const k = ackKey(a.outboxId, a.relay);
      if (this.acks.get(k) === a) this.acks.delete(k);
    }
  }

  private async connection(url: string): Promise<SafeRelay> {
    const existing = this.conns.get(url);
    if (existing && existing.relay.connected) {
      existing.lastUsedMs = this.o.nowMs();
      return existing.relay;
    }
    if (existing) {
      existing.relay.safeClose();
      this.conns.delete(url);
    }
    const trusted = this.isTrusted(url);
    if (this.conns.size >= this.o.maxConnections) this.closeOldest(() => true);
    if (!trusted) {
      let open = 0;
      for (const c of this.conns.values()) if (!c.trusted) open++;
      if (open >= this.o.untrusted.maxOpen) this.closeOldest((u, c) => !c.trusted && !this.inFlight.has(u));
    }
    const relay: SafeRelay = new SafeRelay(url, {
      signAuth: this.o.signAuth,
      // Our AUTH got no OK, OK false, or the challenge was garbage: the relay refuses us.
      // Closing fails what is in flight, which records the attempt (the failure line says
      // why, once) and backs the relay off.
      onAuthFailed: () => relay.safeClose(),
      onBadFrame: (reason) => this.peerLog.write("warn", url, { relay: url, reason }, "relay sent a frame we could not handle"),
    });
    relay.publishTimeout = trusted ? this.o.publishTimeoutMs : this.o.untrusted.publishTimeoutMs;
    await relay.connect({ timeout: trusted ? this.o.connectTimeoutMs : this.o.untrusted.connectTimeoutMs });
    if (this.stopped || !relay.connected) {
      relay.safeClose();
      throw new Error(this.stopped ? "publisher stopped" : "connection dropped at once");
    }
    relay.onclose = () => {
      if (this.conns.get(url)?.relay === relay) this.conns.delete(url);
    };
    this.conns.set(url, { relay, lastUsedMs: this.o.nowMs(), trusted });
    return relay;
  }

  private closeIdle(): void {
    const now = this.o.nowMs();
    for (const [url, c] of this.conns) {
      if (now - c.lastUsedMs > this.o.idleCloseMs || !c.relay.connected) {
        c.relay.safeClose();
        this.conns.delete(url);
      }
    }
  }

  private closeOldest(which: (url: string, c: Conn) => boolean): void {
    let oldest: [string, Conn] | null = null;
    for (const e of this.conns) if (which(e[0], e[1]) && (!oldest || e[1].lastUsedMs < oldest[1].lastUsedMs)) oldest = e;
    if (oldest) {
      oldest[1].relay.safeClose();
      this.conns.delete(oldest[0]);
    }
  }
}

function ackKey(outboxId: number, relay: string): string {
  return `${outboxId} ${relay}`;
}
