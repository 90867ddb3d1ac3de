// Relay intake: one long-lived subscription per configured relay, kept alive by our
// own reconnect loop (capped exponential backoff with jitter). nostr-tools' built-in
// reconnect resubscribes with `since = last + 1` and loses same-second events, so we
// keep a per-relay cursor (the newest created_at handled) in the database and
// resubscribe from `cursor − overlap`; the duplicates this brings back are dropped
// here by id and, durably, by the ledger's idempotency keys.
import type { Subscription } from "nostr-tools/abstract-relay";
import { matchFilter, type Filter } from "nostr-tools/filter";
import type { Event, EventTemplate, VerifiedEvent } from "nostr-tools/pure";
import type { Logger } from "pino";
import { SafeRelay } from "./safe-relay.js";
import { RateLimitedLog } from "./rate-limited-log.js";
import { backoffDelayMs } from "./backoff.js";

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
  /** How often cursors are written (forward, or back only to a held second: see holdCursorSec). */
  cursorFlushMs?: number;
  /** A connection that stayed up this long resets the reconnect backoff. */
  healthyAfterMs?: number;
  /**
   * The newest second a cursor may be saved at or resumed from (a request from then is
   * not decided yet, e.g. its write failed), or null for no limit.
   */
  holdCursorSec?: () => number | null;
}

export { SafeWebSocket } from "./ws.js";

/** Pages of stored events read back after a (re)subscription at most (see pageBack). */
export const MAX_BACKFILL_PAGES = 1000;
/** Events asked for per filter on each page back (relays clamp it to their own maximum). */
export const BACKFILL_PAGE_LIMIT = 5000;

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

/** matchFilter on an event nobody checked yet: a malformed one matches nothing. */
function matches(f: Filter, ev: Event): boolean {
  try {
    return matchFilter(f, ev);
  } catch {
    return false;
  }
}

export { backoffDelayMs } from "./backoff.js";

interface RelayState {
  url: string;
  relay: SafeRelay | null;
  sub: Subscription | null;
  attempt: number;
  timer: NodeJS.Timeout | null;
  cursorSec: number | null;
  savedCursorSec: number | null;
  /**
   * While set, events from this second on may still be missing (stored events not yet
   * paged through): a resubscription starts here and the cursor is not saved.
   */
  resumeSinceSec: number | null;
  connected: boolean;
  connects: number;
  /** When the current subscription opened: a relay that lets us in and then refuses us must not reset its backoff. */
  subscribedAtMs: number | null;
  /** Why we are closing the socket ourselves (the reconnect line says it, once). */
  closeWhy: string | null;
  /** Counts subscriptions: the catch-up of one replaced by reread() must not clear the next one's resume point. */
  subGen: number;
}

export class RelayIntake {
  private states = new Map<string, RelayState>();
  private stopped = true;
  private flushTimer: NodeJS.Timeout | null = null;
  private readonly o: Required<Omit<IntakeOptions, "relays">> & { relays: string[] };
  /** Lines a relay can cause (refusals, bad frames) are rate-limited per relay. */
  private readonly peerLog: RateLimitedLog;

  constructor(opts: IntakeOptions) {
    this.o = {
      overlapSec: 60,
      firstSinceAgoSec: 900,
      backoffBaseMs: 500,
      backoffMaxMs: 60_000,
      connectTimeoutMs: 10_000,
      cursorFlushMs: 1000,
      healthyAfterMs: 30_000,
      alreadyHave: () => false,
      holdCursorSec: () => null,
      ...opts,
    };
    this.peerLog = new RateLimitedLog(this.o.log, { perWindow: 10, windowMs: 60_000 });
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    for (const url of new Set(this.o.relays)) {
      const st: RelayState = {
        url,
        relay: null,
        sub: null,
        attempt: 0,
        timer: null,
        cursorSec: null,
        savedCursorSec: null,
        resumeSinceSec: null,
        connected: false,
        connects: 0,
        subscribedAtMs: null,
        closeWhy: null,
        subGen: 0,
      };
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

  /**
   * True while a connected relay may still send stored events older than those it sent
   * (before EOSE, or paging back): the gate holds its decisions a bounded while so that a
   * backlog's oldest requests, which come last, are ordered with the rest.
   */
  catchingUp(): boolean {
    for (const s of this.states.values()) if (s.connected && s.resumeSinceSec !== null) return true;
    return false;
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
      st.relay?.safeClose();
      st.relay = null;
      st.connected = false;
    }
    this.flushCursors();
    this.states.clear();
    this.peerLog.flush(true);
  }

  private flushCursors(): void {
    for (const st of this.states.values()) {
      // Mid-backfill the newest event seen says nothing about older ones still to come.
      if (st.resumeSinceSec !== null) continue;
      const sec = this.heldCursor(st.cursorSec);
      if (sec !== null && sec !== st.savedCursorSec) {
        try {
          this.o.saveCursorSec(st.url, sec);
          st.savedCursorSec = sec;
        } catch (err) {
          this.o.log.warn({ relay: st.url, err: (err as Error).message }, "could not save relay cursor");
        }
      }
    }
  }

  private sinceFor(st: RelayState): number {
    if (st.resumeSinceSec !== null) return st.resumeSinceSec;
    const nowSec = Math.floor(this.o.nowMs() / 1000);
    const cursorSec = this.heldCursor(st.cursorSec);
    if (cursorSec === null) return Math.max(0, nowSec - this.o.firstSinceAgoSec);
    return Math.max(0, cursorSec - this.o.overlapSec);
  }

  private heldCursor(sec: number | null): number | null {
    const hold = this.o.holdCursorSec();
    return sec === null || hold === null ? sec : Math.min(sec, hold);
  }

  /** Subscribes every open relay again from its (held) cursor: what could not be recorded comes back. */
  reread(): void {
    for (const st of this.states.values()) {
      const relay = st.relay;
      if (!relay || !st.sub || this.stopped) continue;
      const old = st.sub;
      st.sub = null;
      old.close();
      this.subscribe(st, relay);
    }
  }

  private scheduleReconnect(st: RelayState, why: string): void {
    if (this.stopped || st.timer) return;
    st.connected = false;
    if (st.subscribedAtMs !== null && this.o.nowMs() - st.subscribedAtMs >= this.o.healthyAfterMs) st.attempt = 0;
    st.subscribedAtMs = null;
    const delayMs = backoffDelayMs(st.attempt, this.o.backoffBaseMs, this.o.backoffMaxMs);
    st.attempt++;
    this.peerLog.write("info", st.url, { relay: st.url, why: why.slice(0, 200), retryInMs: delayMs }, "relay disconnected; reconnecting");
    st.timer = setTimeout(() => {
      st.timer = null;
      void this.connect(st);
    }, delayMs);
  }

  private async connect(st: RelayState): Promise<void> {
    if (this.stopped) return;
    const relay: SafeRelay = new SafeRelay(st.url, {
      enablePing: true,
      signAuth: this.o.signAuth,
      // A relay whose AUTH we cannot pass refuses us: drop the socket, come back after the
      // backoff. Logged once, by the reconnect line.
      onAuthFailed: (reason) => {
        if (st.relay !== relay) return;
        this.refused(st, relay, `auth failed: ${reason}`);
      },
      onBadFrame: (reason) => this.peerLog.write("warn", st.url, { relay: st.url, reason }, "relay sent a frame we could not handle"),
    });
    relay.onnotice = (msg) => this.peerLog.write("debug", st.url, () => ({ relay: st.url, msg: String(msg).slice(0, 200) }), "relay notice");
    st.relay = relay;
    st.closeWhy = null;
    try {
      await relay.connect({ timeout: this.o.connectTimeoutMs });
    } catch (err) {
      if (st.relay === relay) {
        st.relay = null;
        relay.safeClose();
        this.scheduleReconnect(st, String((err as Error)?.message ?? err));
      }
      return;
    }
    if (this.stopped || st.relay !== relay) {
      relay.safeClose();
      return;
    }
    if (!relay.connected) {
      // Dropped between the handshake and now (its close went to nobody yet).
      st.relay = null;
      relay.safeClose();
      const why = st.closeWhy ?? "connection dropped at once";
      st.closeWhy = null;
      this.scheduleReconnect(st, why);
      return;
    }
    relay.onclose = () => {
      if (st.relay !== relay) return;
      st.relay = null;
      st.sub = null;
      const why = st.closeWhy ?? "connection closed";
      st.closeWhy = null;
      this.scheduleReconnect(st, why);
    };
    try {
      this.subscribe(st, relay);
    } catch (err) {
      // The socket went away between open and REQ.
      relay.safeClose();
      if (st.relay === relay) {
        st.relay = null;
        this.scheduleReconnect(st, String((err as Error)?.message ?? err));
      }
    }
  }

  private subscribe(st: RelayState, relay: SafeRelay, authRetried = false): void {
    const since = this.sinceFor(st);
    st.resumeSinceSec = since;
    const gen = ++st.subGen;
    const current = () => st.relay === relay && st.subGen === gen;
    const filters = this.o.filters(since);
    // Stored events come newest first, and a relay returns at most its limit of them
    // *per filter*: each filter pages back from its own oldest event, or a filter whose
    // events reach further back (the gate's own replies) would make another skip a gap.
    const stored = new Set<string>();
    const oldestSec: number[] = filters.map(() => Infinity);
    let eosed = false;
    const sub = relay.subscribe(filters, {
      onevent: (ev) => {
        if (!eosed) {
          if (typeof ev.id === "string") stored.add(ev.id);
          if (typeof ev.created_at === "number") {
            for (let i = 0; i < filters.length; i++) if (ev.created_at < oldestSec[i]! && matches(filters[i]!, ev)) oldestSec[i] = ev.created_at;
          }
        }
        this.handle(st, ev);
      },
      // Before EOSE every stored event is parsed, known or not: their times say where to page back from.
      alreadyHaveEvent: (id) => eosed && this.o.alreadyHave(id),
      oneose: () => {
        eosed = true;
        this.o.log.debug({ relay: st.url, since, stored: stored.size }, "relay caught up");
        const toPage = filters.map((f, i) => ({ filter: f, untilSec: oldestSec[i]! })).filter((p) => Number.isFinite(p.untilSec));
        if (toPage.length === 0) {
          if (current()) st.resumeSinceSec = null;
          return;
        }
        // The cursor may move on only once every filter is through.
        let open = toPage.length;
        const done = (complete: boolean) => {
          open--;
          if (!complete) open = -Infinity;
          if (open === 0 && current()) st.resumeSinceSec = null;
        };
        for (const p of toPage) this.pageBack(st, relay, current, since, p.filter, p.untilSec, stored, 1, done);
      },
      onclose: (reason) => {
        if (this.stopped || st.relay !== relay || st.sub !== sub || relay.closing || !relay.connected) return;
        st.sub = null;
        st.connected = false;
        if (!authRetried && reason.startsWith("auth-required:")) {
          // The relay wants NIP-42 first: authenticate with the gate key, then ask again.
          relay
            .authenticate()
            .then(() => {
              if (st.relay === relay && !this.stopped) this.subscribe(st, relay, true);
            })
            .catch((err) => {
              if (st.relay === relay) this.refused(st, relay, `auth failed: ${String((err as Error)?.message ?? err).slice(0, 200)}`);
            });
          return;
        }
        // The relay closed our subscription (not the socket): drop the socket and start over.
        this.refused(st, relay, `subscription closed: ${reason.slice(0, 200)}`);
      },
      eoseTimeout: 30_000,
    });
    st.sub = sub;
    st.connected = true;
    st.connects++;
    st.subscribedAtMs = this.o.nowMs();
    this.peerLog.write("info", st.url, { relay: st.url, since }, "subscribed");
  }

  /** The relay refuses us (AUTH we cannot pass, our subscription closed): close it and reconnect after the backoff. */
  private refused(st: RelayState, relay: SafeRelay, why: string): void {
    if (relay.closing) return;
    st.closeWhy = why;
    relay.safeClose();
  }

  /**
   * Pages back through one filter's stored events older than its previous page held
   * (REQ with `until`, inclusive, so the boundary second is asked again and deduped),
   * until a page brings no event not seen before; then calls `done(true)`. Events
   * inside one second beyond the relay's limit cannot be reached this way (NIP-01 has no
   * finer cursor); MAX_BACKFILL_PAGES bounds a relay that keeps answering.
   */
  private pageBack(
    st: RelayState,
    relay: SafeRelay,
    current: () => boolean,
    since: number,
    filter: Filter,
    untilSec: number,
    seen: Set<string>,
    page: number,
    done: (complete: boolean) => void,
  ): void {
    if (this.stopped || !current()) return;
    if (page > MAX_BACKFILL_PAGES || untilSec < since) {
      if (page > MAX_BACKFILL_PAGES)
        this.o.log.warn({ relay: st.url, since, untilSec, kinds: filter.kinds }, "backfill stopped after the page limit; older stored events were not read");
      done(true);
      return;
    }
    let fresh = 0;
    let oldestSec = Infinity;
    let ended = false;
    let sub: Subscription;
    try {
      sub = relay.subscribe(
        // An explicit limit: relays clamp it to their maximum, usually well above their default.
        [{ ...filter, until: untilSec, limit: BACKFILL_PAGE_LIMIT }],
        {
          onevent: (ev) => {
            // Handled already in this catch-up (the boundary second comes back on every page).
            if (typeof ev.id !== "string" || seen.has(ev.id)) return;
            seen.add(ev.id);
            fresh++;
            if (typeof ev.created_at === "number" && ev.created_at < oldestSec) oldestSec = ev.created_at;
            this.handle(st, ev);
          },
          oneose: () => {
            if (ended) return;
            ended = true;
            sub.close();
            this.o.log.debug({ relay: st.url, kinds: filter.kinds, page, untilSec, fresh }, "backfill page");
            if (fresh > 0 && Number.isFinite(oldestSec)) this.pageBack(st, relay, current, since, filter, oldestSec, seen, page + 1, done);
            else done(true);
          },
          onclose: (reason) => {
            if (ended) return;
            ended = true;
            // Left set: the next subscription on this relay starts from `since` again.
            done(false);
            if (!relay.closing && relay.connected)
              this.peerLog.write("warn", st.url, { relay: st.url, page, reason: reason.slice(0, 200) }, "backfill page closed by the relay");
          },
          eoseTimeout: 30_000,
        },
      );
    } catch {
      done(false);
    }
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
