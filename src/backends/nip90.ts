// `nip90` backend (SPEC §11): an existing, unmodified NIP-90 DVM on its own relays. The
// gate publishes the job as its own request (signed by the gate, `p` = the upstream,
// the decrypted `i`/`param`/`output` tags, `relays` = those relays), follows the
// upstream's feedback and result for it, and hands the result's content back; the job
// runner turns it into the gate's own result for the customer. An encrypted customer
// request is sent on in the clear, to these relays only (docs/BACKENDS.md says so).
//
// A job waits on the upstream for up to its whole timeout, so its relays may drop under
// it (restarted, socket closed). Each upstream relay is one link that, while jobs wait,
// reconnects with backoff and then, for every waiting job, subscribes again from the
// job's request time (so an answer published while we were away is found) and publishes
// the request again unless the upstream has already answered something about it (the
// same signed event: a relay that still has it dedupes it by id, one that lost it, or
// never got it, takes it now).
import type { Logger } from "pino";
import type { Event, EventTemplate, VerifiedEvent } from "nostr-tools/pure";
import type { Filter } from "nostr-tools/filter";
import { SafeRelay } from "../relay/safe-relay.js";
import { backoffDelayMs } from "../relay/backoff.js";
import { readFeedback } from "../events/feedback.js";
import { signEvent, toVerifiedEvent } from "../events/verify.js";
import { abortReason, shortReason, type Backend, type BackendJob, type BackendResult, type RunOptions } from "./types.js";

export const UPSTREAM_ASKS_PAYMENT = "the upstream DVM asks the gate to pay: serve the gate's pubkey free there";
/** The upstream's clock may be a little behind ours: its answers are looked for from this long before our request. */
const CLOCK_SLACK_SEC = 60;
/** A connection that lived this long was healthy: the next drop starts the backoff again from its base. */
const HEALTHY_AFTER_MS = 30_000;

export interface Nip90Settings {
  relays: string[];
  /** The upstream DVM's pubkey (hex). */
  pubkey: string;
  /** The gate's key: the upstream sees the gate as its customer (and NIP-42 AUTH is signed with it). */
  secretKey: Uint8Array;
  nowMs?: () => number;
  log?: Logger;
  connectTimeoutMs?: number;
  /** Reconnect backoff towards an upstream relay while jobs wait on it. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
}

/** One upstream relay: at most one socket, reconnected with backoff while jobs wait. */
interface Link {
  url: string;
  relay: SafeRelay | null;
  connecting: Promise<void> | null;
  timer: NodeJS.Timeout | null;
  attempt: number;
  connectedAtMs: number | null;
  /** Why the last connection attempt failed or the socket went away (named in a timeout's reason). */
  lastError: string | null;
  /** An outage is logged once at warn, not once per attempt. */
  outageLogged: boolean;
}

/** A job waiting on the upstream's answer. */
interface Waiter {
  request: Event;
  filter: Filter;
  onEvent: (raw: Event) => void;
  /** The upstream said something about the request: it has it, no need to publish it again. */
  heard: boolean;
  /** Some relay has taken the request (OK true) since the job started. */
  reached: boolean;
  /** Relays that refused the request (OK false): not asked again. */
  refused: Map<string, string>;
  /** The live subscription per link, on which socket. */
  subs: Map<Link, { relay: SafeRelay; close: () => void }>;
  fail: (reason: string) => void;
}

export class Nip90Backend implements Backend {
  readonly type = "nip90";
  private readonly links: Link[];
  private readonly waiters = new Set<Waiter>();
  private readonly nowMs: () => number;
  private closed = false;

  constructor(private readonly s: Nip90Settings) {
    this.links = s.relays.map((url) => ({
      url,
      relay: null,
      connecting: null,
      timer: null,
      attempt: 0,
      connectedAtMs: null,
      lastError: null,
      outageLogged: false,
    }));
    this.nowMs = s.nowMs ?? (() => Date.now());
  }

  async run(job: BackendJob, opts: RunOptions): Promise<BackendResult> {
    if (opts.signal.aborted) return { ok: false, reason: abortReason(opts.signal) };
    const tags: string[][] = [
      ...job.inputs.map((i) => ["i", ...i]),
      ...Object.entries(job.params).map(([k, v]) => ["param", k, v]),
      ...(job.output ? [["output", job.output]] : []),
      ["p", this.s.pubkey],
      ["relays", ...this.s.relays],
    ];
    const request = signEvent({ kind: job.kind, created_at: Math.floor(this.nowMs() / 1000), tags, content: "" }, this.s.secretKey);

    return new Promise<BackendResult>((resolve) => {
      let done = false;
      const finish = (r: BackendResult, deleteUpstream: boolean) => {
        if (done) return;
        done = true;
        opts.signal.removeEventListener("abort", onAbort);
        this.waiters.delete(w);
        for (const sub of w.subs.values()) sub.close();
        w.subs.clear();
        if (deleteUpstream) void this.deleteRequest(request);
        resolve(r);
      };
      const onAbort = () => {
        const why = abortReason(opts.signal);
        // A timeout with no relay ever reached says so: the operator's problem is the relays, not the DVM.
        const unreachable = why.startsWith("timeout") && !w.reached && !w.heard ? this.unreachableReason() : null;
        finish({ ok: false, reason: unreachable ?? why }, true);
      };
      const w: Waiter = {
        request,
        filter: { kinds: [job.kind + 1000, 7000], authors: [this.s.pubkey], "#e": [request.id], since: request.created_at - CLOCK_SLACK_SEC },
        heard: false,
        reached: false,
        refused: new Map(),
        subs: new Map(),
        fail: (reason) => finish({ ok: false, reason }, false),
        onEvent: (raw) => {
          const ev = toVerifiedEvent(raw);
          if (!ev || ev.pubkey !== this.s.pubkey || !ev.tags.some((t) => t[0] === "e" && t[1] === request.id)) return;
          w.heard = true;
          if (ev.kind === job.kind + 1000) return finish({ ok: true, content: ev.content }, false);
          if (ev.kind !== 7000) return;
          const fb = readFeedback(ev);
          if (typeof fb === "string") return;
          if (fb.status === "error") finish({ ok: false, reason: shortReason("upstream error", fb.text || "error") }, false);
          else if (fb.status === "payment-required") finish({ ok: false, reason: UPSTREAM_ASKS_PAYMENT }, true);
          else if (fb.status === "processing" || fb.status === "partial") opts.onProgress?.(fb.status, fb.text);
        },
      };
      opts.signal.addEventListener("abort", onAbort, { once: true });
      this.waiters.add(w);
      for (const link of this.links) {
        if (link.relay?.connected) this.attach(w, link, link.relay);
        else this.ensure(link);
      }
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const link of this.links) {
      if (link.timer) clearTimeout(link.timer);
      link.timer = null;
      const r = link.relay;
      link.relay = null;
      r?.safeClose();
    }
  }

  /** Starts connecting a link that is neither connected nor connecting nor waiting out its backoff. */
  private ensure(link: Link): void {
    if (this.closed || link.relay || link.connecting || link.timer) return;
    link.connecting = this.connect(link).finally(() => {
      link.connecting = null;
    });
  }

  private async connect(link: Link): Promise<void> {
    const relay = new SafeRelay(link.url, {
      enablePing: true,
      signAuth: async (t: EventTemplate) => signEvent(t, this.s.secretKey) as VerifiedEvent,
      onAuthFailed: (reason) => this.s.log?.warn({ relay: link.url, reason }, "upstream relay: AUTH failed"),
      onBadFrame: (reason) => this.s.log?.debug({ relay: link.url, reason }, "upstream relay sent a frame we could not handle"),
    });
    try {
      await relay.connect({ timeout: this.s.connectTimeoutMs ?? 5000 });
    } catch (err) {
      relay.safeClose();
      this.lost(link, `cannot connect: ${errText(err)}`);
      return;
    }
    if (this.closed || !relay.connected) {
      relay.safeClose();
      if (!this.closed) this.lost(link, "connection dropped at once");
      return;
    }
    relay.onclose = () => {
      if (link.relay !== relay) return;
      link.relay = null;
      // Subscriptions on the dead socket are gone; the reconnect makes new ones.
      for (const w of this.waiters) if (w.subs.get(link)?.relay === relay) w.subs.delete(link);
      if (!relay.closing) this.lost(link, "connection closed");
    };
    link.relay = relay;
    link.connectedAtMs = this.nowMs();
    if (link.outageLogged) this.s.log?.info({ relay: link.url }, "upstream relay reachable again");
    link.outageLogged = false;
    link.lastError = null;
    for (const w of this.waiters) this.attach(w, link, relay);
  }

  /** The link has no socket: try again after the backoff while jobs wait on it. */
  private lost(link: Link, why: string): void {
    link.lastError = why;
    if (link.connectedAtMs !== null && this.nowMs() - link.connectedAtMs >= HEALTHY_AFTER_MS) link.attempt = 0;
    link.connectedAtMs = null;
    if (this.closed || this.waiters.size === 0) return;
    this.retryLater(link, why);
  }

  /** After the backoff: reconnect, or (still connected) subscribe the jobs whose subscription the relay closed. */
  private retryLater(link: Link, why: string): void {
    if (this.closed || link.timer) return;
    const delayMs = backoffDelayMs(link.attempt, this.s.backoffBaseMs ?? 500, this.s.backoffMaxMs ?? 15_000);
    link.attempt++;
    const fields = { relay: link.url, why: why.slice(0, 200), retryInMs: delayMs, waitingJobs: this.waiters.size };
    if (!link.outageLogged) this.s.log?.warn(fields, "upstream relay lost; jobs keep waiting, reconnecting");
    else this.s.log?.debug(fields, "upstream relay still unreachable");
    link.outageLogged = true;
    link.timer = setTimeout(() => {
      link.timer = null;
      if (this.closed || this.waiters.size === 0) return;
      if (link.relay?.connected) {
        for (const w of this.waiters) this.attach(w, link, link.relay);
      } else this.ensure(link);
    }, delayMs);
  }

  /**
   * Subscribes `w` on this socket (from the request's time: stored answers come back) and
   * publishes the request there unless the upstream has already answered about it.
   */
  private attach(w: Waiter, link: Link, relay: SafeRelay): void {
    if (!this.waiters.has(w) || w.subs.get(link)?.relay === relay) return;
    let sub: { close: () => void };
    try {
      sub = relay.subscribe([w.filter], {
        onevent: w.onEvent,
        onclose: (reason) => this.subClosed(w, link, relay, reason),
      });
    } catch (err) {
      this.s.log?.debug({ relay: link.url, err: errText(err) }, "could not subscribe on an upstream relay");
      return;
    }
    w.subs.set(link, { relay, close: () => sub.close() });
    if (!w.heard && !w.refused.has(link.url)) this.publishTo(w, link, relay, false);
  }

  /** The relay closed our subscription while the socket stays up (CLOSED): authenticate if asked, else try later. */
  private subClosed(w: Waiter, link: Link, relay: SafeRelay, reason: string): void {
    if (w.subs.get(link)?.relay !== relay) return; // ours (job finished) or the socket's end
    w.subs.delete(link);
    if (link.relay !== relay || !relay.connected || !this.waiters.has(w)) return;
    if (String(reason).startsWith("auth-required:"))
      return void relay.authenticate().then(
        () => this.attach(w, link, relay),
        () => this.retryLater(link, `subscription refused: ${reason}`),
      );
    this.retryLater(link, `subscription closed by the relay: ${reason}`);
  }

  private publishTo(w: Waiter, link: Link, relay: SafeRelay, authTried: boolean): void {
    relay.publish(w.request).then(
      () => {
        w.reached = true;
      },
      async (err: unknown) => {
        // The socket went away: the reconnect publishes again. No OK in time: the subscription may still hear an answer.
        if (link.relay !== relay || !relay.connected || !this.waiters.has(w)) return;
        const msg = errText(err);
        if (msg === "publish timed out") return;
        if (msg.startsWith("auth-required:") && !authTried) {
          try {
            await relay.authenticate();
            if (link.relay === relay && this.waiters.has(w)) this.publishTo(w, link, relay, true);
            return;
          } catch {
            /* counted as this relay's refusal below */
          }
        }
        w.refused.set(link.url, msg);
        if (w.refused.size === this.links.length)
          w.fail(shortReason("nip90: no upstream relay took the request", [...w.refused].map(([u, m]) => `${u}: ${m}`).join("; ")));
      },
    );
  }

  private unreachableReason(): string | null {
    if (this.links.some((l) => l.relay?.connected)) return null;
    const why = this.links.map((l) => `${l.url}: ${l.lastError ?? "not connected"}`).join("; ");
    return shortReason("timeout: no upstream relay could be reached", why);
  }

  /** NIP-09: the gate withdraws its upstream request (the customer cancelled, or the deadline passed). */
  private async deleteRequest(request: Event): Promise<void> {
    const del = signEvent(
      {
        kind: 5,
        created_at: Math.floor(this.nowMs() / 1000),
        tags: [
          ["e", request.id],
          ["k", String(request.kind)],
        ],
        content: "cancelled",
      },
      this.s.secretKey,
    );
    const open = this.links.flatMap((l) => (l.relay?.connected ? [l.relay] : []));
    await Promise.allSettled(open.map((r) => r.publish(del)));
  }
}

function errText(err: unknown): string {
  return String((err as Error)?.message ?? err).slice(0, 200);
}
