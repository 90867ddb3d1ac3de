// Relay intake: one long-lived subscription per configured relay, kept alive by our
// own reconnect loop (capped exponential backoff with jitter). nostr-tools' built-in
// reconnect resubscribes with `since = last + 1` and loses same-second events, so we
// keep a per-relay cursor (the newest created_at handled) in the database and
// resubscribe from `cursor − overlap`; the duplicates this brings back are dropped
// here by id and, durably, by the ledger's idempotency keys.
import { AbstractRelay, type Subscription } from "nostr-tools/abstract-relay";
import type { Filter } from "nostr-tools/filter";
import type { Event, EventTemplate, VerifiedEvent } from "nostr-tools/pure";
import { websocketImplementation } from "./ws.js";
import type { Logger } from "pino";

export interface IntakeOptions {
  relays: string[];
  /** The filters to subscribe with, given the `since` to use. */
  filters: (sinceSec: number) => Filter[];
  /** Stored cursor for a relay (newest created_at handled), or null the first time. */
  loadCursorSec: (relay: string) => number | null;
  saveCursorSec: (relay: string, sec: number) => void;
  /** Handles one event (unverified: the handler checks signatures). Must not throw for bad input. */
  onEvent: (ev: Event, relay: string) => void;
  /**
   * True for an id already handled: nostr-tools then drops the message before parsing it
   * (our own replies echoed back, the same request through a second relay).
   */
  alreadyHave?: (id: string) => boolean;
  /** Signs NIP-42 AUTH events with the gate key. */
  signAuth: (t: EventTemplate) => Promise<VerifiedEvent>;
  log: Logger;
  nowMs: () => number;
  /** Resubscribe this many seconds before the cursor. */
  overlapSec?: number;
  /** With no cursor yet, start this far back. */
  firstSinceAgoSec?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  connectTimeoutMs?: number;
  /** How often cursors are written (they only move forward). */
  cursorFlushMs?: number;
}

export { SafeWebSocket } from "./ws.js";

/** Bounded set of recently handled ids: cheap dedupe before any crypto or SQL. */
export class RecentIds {
  private ids = new Map<string, true>();
  constructor(private readonly max = 50_000) {}
  has(id: string): boolean {
    return this.ids.has(id);
  }
  delete(id: string): void {
    this.ids.delete(id);
  }
  add(id: string): void {
    this.ids.set(id, true);
    if (this.ids.size > this.max) {
      const oldest = this.ids.keys().next().value;
      if (oldest !== undefined) this.ids.delete(oldest);
    }
  }
}

export function backoffDelayMs(attempt: number, baseMs: number, maxMs: number, random = Math.random): number {
  const capped = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  // "Equal jitter": never below half the step, so a flapping relay is not hammered.
  return Math.floor(capped / 2 + random() * (capped / 2));
}

interface RelayState {
  url: string;
  relay: AbstractRelay | null;
  sub: Subscription | null;
  attempt: number;
  timer: NodeJS.Timeout | null;
  cursorSec: number | null;
  savedCursorSec: number | null;
  connected: boolean;
  connects: number;
}

export class RelayIntake {
  private states = new Map<string, RelayState>();
  private stopped = true;
  private flushTimer: NodeJS.Timeout | null = null;
  private readonly o: Required<Omit<IntakeOptions, "relays">> & { relays: string[] };

  constructor(opts: IntakeOptions) {
    this.o = {
      overlapSec: 60,
      firstSinceAgoSec: 900,
      backoffBaseMs: 500,
      backoffMaxMs: 60_000,
      connectTimeoutMs: 10_000,
      cursorFlushMs: 1000,
      alreadyHave: () => false,
      ...opts,
    };
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    for (const url of new Set(this.o.relays)) {
      const st: RelayState = { url, relay: null, sub: null, attempt: 0, timer: null, cursorSec: null, savedCursorSec: null, connected: false, connects: 0 };
      st.cursorSec = st.savedCursorSec = this.o.loadCursorSec(url);
      this.states.set(url, st);
      void this.connect(st);
    }
    this.flushTimer = setInterval(() => this.flushCursors(), this.o.cursorFlushMs);
    this.flushTimer.unref();
  }

  /** Relays whose subscription is currently open. */
  connectedRelays(): string[] {
    return [...this.states.values()].filter((s) => s.connected).map((s) => s.url);
  }

  /** How many times each relay's subscription was (re)opened: lets tests see reconnects. */
  connectCount(url: string): number {
    return this.states.get(url)?.connects ?? 0;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.flushTimer) clearInterval(this.flushTimer);
    this.flushTimer = null;
    for (const st of this.states.values()) {
      if (st.timer) clearTimeout(st.timer);
      st.timer = null;
      try {
        st.relay?.close();
      } catch {
        /* already closed */
      }
      st.relay = null;
      st.connected = false;
    }
    this.flushCursors();
    this.states.clear();
  }

  private flushCursors(): void {
    for (const st of this.states.values()) {
      if (st.cursorSec !== null && st.cursorSec !== st.savedCursorSec) {
        try {
          this.o.saveCursorSec(st.url, st.cursorSec);
          st.savedCursorSec = st.cursorSec;
        } catch (err) {
          this.o.log.warn({ relay: st.url, err: (err as Error).message }, "could not save relay cursor");
        }
      }
    }
  }

  private sinceFor(st: RelayState): number {
    const nowSec = Math.floor(this.o.nowMs() / 1000);
    if (st.cursorSec === null) return Math.max(0, nowSec - this.o.firstSinceAgoSec);
    return Math.max(0, st.cursorSec - this.o.overlapSec);
  }

  private scheduleReconnect(st: RelayState, why: string): void {
    if (this.stopped || st.timer) return;
    st.connected = false;
    const delayMs = backoffDelayMs(st.attempt, this.o.backoffBaseMs, this.o.backoffMaxMs);
    st.attempt++;
    this.o.log.info({ relay: st.url, why, retryInMs: delayMs }, "relay disconnected; reconnecting");
    st.timer = setTimeout(() => {
      st.timer = null;
      void this.connect(st);
    }, delayMs);
  }

  private async connect(st: RelayState): Promise<void> {
    if (this.stopped) return;
    const relay = new AbstractRelay(st.url, {
      // Handlers verify what they use (and answer invalid requests), so the socket layer does not.
      verifyEvent: () => true,
      websocketImplementation: websocketImplementation,
      enablePing: true,
    });
    relay.onnotice = (msg) => this.o.log.debug({ relay: st.url, msg: msg.slice(0, 200) }, "relay notice");
    relay.onauth = (t) => this.o.signAuth(t);
    st.relay = relay;
    try {
      await relay.connect({ timeout: this.o.connectTimeoutMs });
    } catch (err) {
      if (st.relay === relay) {
        st.relay = null;
        try {
          relay.close();
        } catch {
          /* never opened */
        }
        this.scheduleReconnect(st, String((err as Error)?.message ?? err));
      }
      return;
    }
    if (this.stopped || st.relay !== relay) {
      relay.close();
      return;
    }
    relay.onclose = () => {
      if (st.relay !== relay) return;
      st.relay = null;
      st.sub = null;
      this.scheduleReconnect(st, "connection closed");
    };
    this.subscribe(st, relay);
  }

  private subscribe(st: RelayState, relay: AbstractRelay, authRetried = false): void {
    const since = this.sinceFor(st);
    const sub = relay.subscribe(this.o.filters(since), {
      onevent: (ev) => this.handle(st, ev),
      alreadyHaveEvent: this.o.alreadyHave,
      oneose: () => {
        st.attempt = 0;
        this.o.log.debug({ relay: st.url, since }, "relay caught up");
      },
      onclose: (reason) => {
        if (this.stopped || st.relay !== relay || st.sub !== sub) return;
        st.sub = null;
        st.connected = false;
        if (!authRetried && reason.startsWith("auth-required:")) {
          // The relay wants NIP-42 first: authenticate with the gate key, then ask again.
          relay
            .auth((t) => this.o.signAuth(t))
            .then(() => {
              if (st.relay === relay && !this.stopped) this.subscribe(st, relay, true);
            })
            .catch((err) => {
              this.o.log.warn({ relay: st.url, err: String((err as Error)?.message ?? err) }, "relay auth failed");
              relay.close();
            });
          return;
        }
        // The relay closed our subscription (not the socket): drop the socket and start over.
        this.o.log.warn({ relay: st.url, reason: reason.slice(0, 200) }, "relay closed the subscription");
        relay.close();
      },
      eoseTimeout: 30_000,
    });
    st.sub = sub;
    st.connected = true;
    st.connects++;
    this.o.log.info({ relay: st.url, since }, "subscribed");
  }

  private handle(st: RelayState, ev: Event): void {
    try {
      this.o.onEvent(ev, st.url);
    } catch (err) {
      this.o.log.error({ relay: st.url, id: (ev as { id?: unknown }).id, err: (err as Error).message }, "event handler failed");
    }
    const created = (ev as { created_at?: unknown }).created_at;
    // The cursor never runs ahead of the clock: a future-dated event must not make us skip.
    const nowSec = Math.floor(this.o.nowMs() / 1000);
    if (typeof created === "number" && Number.isSafeInteger(created) && created <= nowSec + 60) {
      const c = Math.min(created, nowSec);
      if (st.cursorSec === null || c > st.cursorSec) st.cursorSec = c;
    }
  }
}
