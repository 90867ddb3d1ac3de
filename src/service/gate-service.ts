// The running gate: relay intake → validation → decision (with its reply written in the
// same transaction) → outbox publisher; invoices and payments; settlement by workers'
// results and errors and customers' deletions; the expiry sweep; pool status events.
// Every state change is one ledger transaction with no I/O inside; everything with
// I/O (relays, the wallet) happens after commit and is retried from durable rows.
import { getPublicKey, type Event, type EventTemplate, type VerifiedEvent } from "nostr-tools/pure";
import type { Filter } from "nostr-tools/filter";
import * as kinds from "nostr-tools/kinds";
import type { Logger } from "pino";
import type { RuntimeConfig } from "../config/load.js";
import type { Ledger, RequestRecord, Totals } from "../ledger/ledger.js";
import type { PaymentBackend } from "../payments/types.js";
import type { Tier } from "../policy/tiers.js";
import { checkJobRequest, type JobRequest, type JobRequestVerdict } from "../events/job-request.js";
import { readSettlementSignal } from "../events/job-events.js";
import { errorFeedback, encryptTemplateFor, processingFeedback, type ReplyTarget } from "../events/feedback.js";
import { signEvent } from "../events/verify.js";
import {
  collectEnqueued,
  enqueue,
  getCursorSec,
  markSeen,
  pruneBookkeeping,
  requestOfPaymentRequiredEvent,
  saveCursorSec,
  saveRequestMeta,
} from "../ledger/outbox-store.js";
import { isPaymentHashUsed } from "../ledger/invoice-store.js";
import { RecentIds, RelayIntake } from "../relay/intake.js";
import { frameOfEvent } from "../relay/safe-relay.js";
import { OutboxPublisher } from "../relay/publisher.js";
import { Invoicing } from "./invoicing.js";
import { applySignal, replyRelaysFor, type SettlementDeps } from "./settlement.js";
import { poolStatusTemplate } from "../events/announce.js";
import { checkZapReceipt } from "../payments/zap.js";
import { applyPayment } from "./settlement.js";
import { Deposits } from "./deposits.js";
import { JobRunner } from "./job-runner.js";
import type { KindBackend } from "../backends/types.js";
import { heartbeatTemplate } from "../events/announce.js";
import { IntakeQueue, type DropReason, type Queued } from "./intake-queue.js";
import { TierCache } from "./tier-cache.js";
import { KnownIdentities } from "../ledger/tier-lookup.js";
import { pruneLimited, type LimitedRequest } from "../ledger/invoice-limits-store.js";
import type { InvoiceLimit } from "../policy/invoice-limits.js";
import { DecisionRetry, isWriteFailure, type HeldRequest } from "./decision-retry.js";

/** What the service reports to metrics (GateMetrics implements it). */
export interface MetricsSink {
  decision(outcome: "free" | "partial" | "gate" | "blocked" | "error" | "ignored"): void;
  replyPublished(relay: string, ok: boolean): void;
  grant(absorbedMsats: number): void;
  setPool(t: Totals): void;
  relayConnected?(relay: string, up: boolean): void;
  /** A request dropped undecided: queues full (before its signature check) or waited too long. */
  shedRequest?(tier: Tier, why: DropReason): void;
  /** A request refused an invoice by a limit (SPEC §6), answered or dropped silently. */
  invoiceLimited?(limit: InvoiceLimit, replied: boolean): void;
  /** How to read the arrival queues' depths when metrics are collected. */
  watchIntake?(depths: () => Record<Tier, number>): void;
}

export interface GateServiceTuning {
  /** How often expired requests are swept (also at start). */
  expirySweepMs?: number;
  /** How often open invoices are looked up and pending invoices retried. */
  paymentPollMs?: number;
  /** Longest wait of the publisher between outbox polls. */
  publishPollMs?: number;
  /** Pool status events at most this often (after grants), and at least this often… */
  poolStatusMinIntervalMs?: number;
  /** …and at least this often. */
  poolStatusMaxIntervalMs?: number;
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
  cursorOverlapSec?: number;
  /** Decisions that could not be written: first retry after about this, doubling up to the max. */
  decisionRetryBaseMs?: number;
  decisionRetryMaxMs?: number;
  /** Requests held in memory for such a retry at most; beyond it they are read again from the relays. */
  decisionRetryMaxHeld?: number;
  /** The service's clock; tests move it to expire offers without waiting. */
  nowMs?: () => number;
  /** Heartbeat period (default nostr.heartbeatSec). */
  heartbeatMs?: number;
}

export interface GateServiceOptions {
  cfg: RuntimeConfig;
  ledger: Ledger;
  backend: PaymentBackend;
  log: Logger;
  metrics?: MetricsSink | null;
  secretKey: Uint8Array;
  /** Deposits into prepaid balances (made here when not given; `start` shares one with HTTP). */
  deposits?: Deposits;
  opts?: GateServiceTuning;
  /** Kinds the gate runs itself (SPEC §11); the others wait for an external worker. */
  backends?: ReadonlyMap<number, KindBackend>;
  /** Decision price of a request whose price depends on it (openai token pricing). */
  priceOf?: (kind: number, iTags: string[][], params: string[][]) => number | null;
}

type Refused = Extract<JobRequestVerdict, { answer: "error" }>;
type PendingDecision = { type: "decide"; req: JobRequest; relay: string; now: number } | { type: "refuse"; v: Refused; relay: string; now: number };
type Decided =
  | { type: "decided"; rec: RequestRecord }
  | { type: "refused"; id: string; customer: string; reason: string; abuse: boolean }
  | { type: "limited"; l: LimitedRequest };

/**
 * Requests decided in one transaction at most: bounds how long the write lock is held
 * (each decision signs its reply, ~0.5 ms) and so the latency a batch adds.
 */
const MAX_DECISIONS_PER_TX = 32;
/** How long stop() goes on deciding what waits in the queues. */
const STOP_DRAIN_MS = 1000;
/** Error replies are kept by relays for this long (NIP-40). */
const ERROR_REPLY_TTL_SEC = 3600;
const FEEDBACK_KIND = kinds.JobFeedback;
const DELETION_KIND = kinds.EventDeletion;
const ZAP_RECEIPT_KIND = kinds.Zap;

export class GateService {
  readonly gatePubkey: string;
  readonly relays: string[];
  readonly intake: RelayIntake;
  readonly publisher: OutboxPublisher;
  readonly invoicing: Invoicing;
  readonly deposits: Deposits;
  readonly jobs: JobRunner | null;
  private readonly priceOf: GateServiceOptions["priceOf"];
  private heartbeatSec = 0;
  readonly decisionRetry: DecisionRetry;
  private readonly cfg: RuntimeConfig;
  private readonly ledger: Ledger;
  private readonly backend: PaymentBackend;
  private readonly log: Logger;
  private readonly metrics: MetricsSink | null;
  private readonly secretKey: Uint8Array;
  private readonly t: Required<Omit<GateServiceTuning, "nowMs">>;
  readonly nowMs: () => number;
  private readonly workers: Set<string>;
  private readonly jobKinds: number[];
  private readonly recent = new RecentIds();
  /** Job requests received, not yet checked, by tier (see flushDecisions). */
  private readonly queue: IntakeQueue;
  private readonly tiers: TierCache;
  private holdSinceMs: number | null = null;
  private holdTimer: NodeJS.Timeout | null = null;
  private flushTimer: NodeJS.Immediate | null = null;
  private readonly settlement: SettlementDeps;
  private timers: NodeJS.Timeout[] = [];
  private unhint: (() => void) | null = null;
  private poolStatusAtMs = 0;
  private poolStatusSec = 0;
  private poolStatusTimer: NodeJS.Timeout | null = null;
  private sweeping: Promise<void> | null = null;
  private started = false;

  constructor(o: GateServiceOptions) {
    this.cfg = o.cfg;
    this.ledger = o.ledger;
    this.backend = o.backend;
    this.log = o.log;
    this.metrics = o.metrics ?? null;
    this.secretKey = o.secretKey;
    this.nowMs = o.opts?.nowMs ?? (() => Date.now());
    this.t = {
      expirySweepMs: 15_000,
      paymentPollMs: 5_000,
      publishPollMs: 1_000,
      poolStatusMinIntervalMs: 10_000,
      poolStatusMaxIntervalMs: 15 * 60_000,
      reconnectBaseMs: 500,
      reconnectMaxMs: 60_000,
      cursorOverlapSec: 60,
      heartbeatMs: o.cfg.nostr.heartbeatSec * 1000,
      decisionRetryBaseMs: 500,
      decisionRetryMaxMs: 30_000,
      decisionRetryMaxHeld: 1000,
      ...Object.fromEntries(Object.entries(o.opts ?? {}).filter(([k, v]) => k !== "nowMs" && v !== undefined)),
    };
    this.gatePubkey = getPublicKey(this.secretKey);
    this.relays = [...new Set(o.cfg.nostr.relays)];
    this.workers = new Set([...o.cfg.jobs.workerPubkeys, this.gatePubkey]);
    this.jobKinds = [...o.cfg.jobs.priceMsatsByKind.keys()].sort((a, b) => a - b);
    const signAuth = async (t: EventTemplate) => signEvent(t, this.secretKey) as VerifiedEvent;
    this.queue = new IntakeQueue(o.cfg.intake);
    this.tiers = new TierCache(new KnownIdentities(this.ledger.db, o.cfg.trust), o.cfg.intake.tierCacheMs);
    this.metrics?.watchIntake?.(() => this.queue.depths());

    this.settlement = {
      ledger: this.ledger,
      log: this.log,
      secretKey: this.secretKey,
      relays: this.relays,
      maxReplyRelays: this.cfg.nostr.maxReplyRelays,
      nowMs: this.nowMs,
      onQueued: (outboxIds) => {
        if (outboxIds) this.publisher.deliverNew(outboxIds);
        else this.publisher.kick();
        this.jobs?.kick();
      },
      onGoSignal: (db, rec, now) => this.jobs?.onGoSignal(db, rec, now),
      onGrant: (absorbedMsats) => {
        this.metrics?.grant(absorbedMsats);
        this.schedulePoolStatus();
      },
    };
    this.publisher = new OutboxPublisher({
      db: this.ledger.db,
      log: this.log.child({ part: "publisher" }),
      nowMs: this.nowMs,
      signAuth,
      pollMs: this.t.publishPollMs,
      trustedRelays: this.relays,
      untrusted: this.cfg.nostr.customerRelays,
      // Our own replies come back through the intake (the gate's key is also a worker's):
      // an event with an id we signed is byte for byte ours and settles nothing, so it is
      // dropped before its signature is checked a second time (that check was ~13% of the
      // gate's CPU under load).
      onSending: (ev) => this.recent.add(ev.id),
      onPublished: (relay, ok) => this.metrics?.replyPublished(relay, ok),
    });
    this.priceOf = o.priceOf;
    this.jobs =
      o.backends && o.backends.size > 0
        ? new JobRunner({
            ledger: this.ledger,
            log: this.log.child({ part: "jobs" }),
            secretKey: this.secretKey,
            relays: this.relays,
            maxReplyRelays: this.cfg.nostr.maxReplyRelays,
            nowMs: this.nowMs,
            kinds: o.backends,
            maxResultBytes: this.cfg.jobs.maxResultBytes,
            onQueued: (outboxIds) => (outboxIds ? this.publisher.deliverNew(outboxIds) : this.publisher.kick()),
            onResolved: ({ absorbedMsats }) => {
              if (absorbedMsats > 0) this.metrics?.grant(absorbedMsats);
              this.schedulePoolStatus();
            },
          })
        : null;
    this.invoicing = new Invoicing({ ...this.settlement, backend: this.backend, invoiceExpirySec: this.cfg.payments.invoiceExpirySec });
    this.deposits =
      o.deposits ??
      new Deposits({
        ledger: this.ledger,
        backend: this.backend,
        log: this.log.child({ part: "deposits" }),
        gatePubkey: this.gatePubkey,
        zapProviderPubkey: this.cfg.payments.zapProviderPubkey,
        invoiceExpirySec: this.cfg.payments.invoiceExpirySec,
        nowMs: this.nowMs,
      });
    this.decisionRetry = new DecisionRetry({
      log: this.log.child({ part: "decision-retry" }),
      nowMs: this.nowMs,
      redecide: (items) => this.redecide(items),
      reread: () => this.intake.reread(),
      maxAgeSec: this.cfg.jobs.maxRequestAgeSec,
      maxHeld: this.t.decisionRetryMaxHeld,
      chunk: MAX_DECISIONS_PER_TX,
      baseMs: this.t.decisionRetryBaseMs,
      maxMs: this.t.decisionRetryMaxMs,
    });
    this.intake = new RelayIntake({
      relays: this.relays,
      filters: (since) => this.filters(since),
      loadCursorSec: (relay) => getCursorSec(this.ledger.db, relay),
      saveCursorSec: (relay, sec) => this.ledger.tx(() => saveCursorSec(this.ledger.db, relay, sec, this.nowMs())),
      onEvent: (ev, relay) => this.onEvent(ev, relay),
      alreadyHave: (id) => this.recent.has(id),
      holdCursorSec: () => this.undecidedSinceSec(),
      signAuth,
      log: this.log.child({ part: "intake" }),
      nowMs: this.nowMs,
      overlapSec: this.t.cursorOverlapSec,
      firstSinceAgoSec: this.cfg.jobs.maxRequestAgeSec,
      backoffBaseMs: this.t.reconnectBaseMs,
      backoffMaxMs: this.t.reconnectMaxMs,
    });
  }

  filters(since: number): Filter[] {
    const workers = [...this.workers];
    return [
      // No "#p" filter: open requests (without a p tag) are for any provider, us included.
      { kinds: this.jobKinds, since },
      { kinds: this.jobKinds.map((k) => k + 1000), authors: workers, since },
      { kinds: [FEEDBACK_KIND], authors: workers, since },
      { kinds: [DELETION_KIND], since },
      // Zaps of our payment-required feedback count as payment, from the configured LNURL provider only.
      ...(this.cfg.payments.zapProviderPubkey ? [{ kinds: [ZAP_RECEIPT_KIND], authors: [this.cfg.payments.zapProviderPubkey], since }] : []),
    ];
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    if (this.relays.length === 0) this.log.warn("no relays configured (nostr.relays): nothing will be received or published");
    this.publisher.start();
    await this.sweep();
    this.unhint = this.backend.onPaymentHint((hash) => {
      void this.invoicing.checkPayments([hash]);
      void this.deposits.checkInvoices([hash]);
    });
    this.every(this.t.expirySweepMs, () => this.sweep());
    this.every(this.t.paymentPollMs, async () => {
      await this.invoicing.issuePending();
      await this.invoicing.checkPayments();
      await this.deposits.checkInvoices();
    });
    this.every(this.t.poolStatusMaxIntervalMs, async () => this.publishPoolStatus());
    this.every(this.t.heartbeatMs, () => this.publishHeartbeat());
    this.jobs?.start();
    // Rows left by a previous run (or written by `dvm-gate settle`) go out now.
    void this.invoicing.issuePending();
    this.intake.start();
    this.publishPoolStatus();
    this.publishHeartbeat();
    this.log.info({ gate: this.gatePubkey, relays: this.relays, kinds: this.jobKinds, workers: this.workers.size }, "gate service started");
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    await this.intake.stop();
    if (this.holdTimer) clearTimeout(this.holdTimer);
    this.holdTimer = null;
    // What still waits after STOP_DRAIN_MS is left to the relays: the saved cursors stayed
    // behind it (undecidedSinceSec), so the next start reads it again.
    const drainUntil = Date.now() + STOP_DRAIN_MS;
    while (this.queue.size > 0 && Date.now() < drainUntil) this.flushDecisions();
    if (this.queue.size > 0) this.log.info({ left: this.queue.size }, "stopped with requests still waiting; they are read again at the next start");
    this.decisionRetry.stop();
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    if (this.poolStatusTimer) clearTimeout(this.poolStatusTimer);
    this.poolStatusTimer = null;
    this.unhint?.();
    this.unhint = null;
    await this.sweeping;
    await this.jobs?.stop();
    await this.invoicing.issuePending().catch(() => {});
    await this.publisher.stop();
    this.log.info("gate service stopped");
  }

  private every(ms: number, fn: () => Promise<void> | void): void {
    let busy = false;
    const t = setInterval(() => {
      if (busy) return;
      busy = true;
      Promise.resolve()
        .then(fn)
        .catch((err) => this.log.error({ err: (err as Error).message }, "periodic task failed"))
        .finally(() => {
          busy = false;
        });
    }, ms);
    this.timers.push(t);
  }

  private lastPruneMs = 0;

  /**
   * Hourly: forget event ids older than any acceptable request (plus a day) and outbox
   * rows delivered more than a week ago, so the service's bookkeeping stays bounded.
   * The ledger's own history is never pruned.
   */
  private pruneIfDue(now: number): void {
    if (now - this.lastPruneMs < 3_600_000) return;
    this.lastPruneMs = now;
    const r = this.ledger.tx(() =>
      pruneBookkeeping(this.ledger.db, {
        seenBeforeMs: now - (this.cfg.jobs.maxRequestAgeSec + 86_400) * 1000,
        doneBeforeMs: now - 7 * 86_400_000,
      }),
    );
    const limited = this.ledger.tx(() => pruneLimited(this.ledger.db, now - (this.cfg.jobs.maxRequestAgeSec + 86_400) * 1000));
    if (r.seen + r.outbox + limited > 0) this.log.info({ ...r, limited }, "pruned old bookkeeping");
  }

  /** Expires what is due (after a last look at its invoices) and closes dead invoices. */
  sweep(): Promise<void> {
    if (!this.sweeping) {
      this.sweeping = (async () => {
        const now = this.nowMs();
        await this.invoicing.checkDue(now);
        const r = this.ledger.expire(now);
        await this.invoicing.closeExpired(now);
        if (r.requestsExpired > 0) {
          this.log.info(r, "expired");
          this.schedulePoolStatus();
        }
        this.pruneIfDue(now);
        this.metrics?.setPool(this.ledger.totals());
        for (const relay of this.relays) this.metrics?.relayConnected?.(relay, this.intake.connectedRelays().includes(relay));
      })().finally(() => {
        this.sweeping = null;
      });
    }
    return this.sweeping;
  }

  /** One incoming event from a relay. Never throws for bad input. */
  onEvent(ev: Event, relay: string): void {
    const id = (ev as { id?: unknown }).id;
    if (typeof id !== "string" || this.recent.has(id)) return;
    const kind = (ev as { kind?: unknown }).kind;
    if (typeof kind === "number" && kind >= 5000 && kind <= 5999) this.onJobRequest(ev, relay);
    else {
      // Settlement follows the decisions of the requests it names, still waiting or not.
      this.decideNamed(ev);
      if (!this.settleOrHold(ev, relay)) return;
    }
    this.recent.add(id);
  }

  /** A result, error, deletion or zap; false when its write failed and it is held for a retry. */
  private settleOrHold(ev: Event, relay: string): boolean {
    try {
      // A zap of the gate's profile is a deposit (SPEC §12); one of a feedback event pays a job.
      if (ev.kind === ZAP_RECEIPT_KIND) {
        if (!this.deposits.onZapReceipt(ev)) this.onZapReceipt(ev);
      } else this.onSignal(ev);
      return true;
    } catch (err) {
      if (!isWriteFailure(err)) throw err;
      this.log.error({ id: ev.id, kind: ev.kind, err: (err as Error).message }, "could not record a settlement signal");
      this.decisionRetry.failed([{ raw: ev, relay }]);
      return false;
    }
  }

  /** A retry round's events, in the order they came: false (and all not written held again) when writes fail. */
  private redecide(items: HeldRequest[]): boolean {
    for (const [i, h] of items.entries()) {
      const kind = h.raw.kind;
      if (kind >= 5000 && kind <= 5999) {
        this.requeue(h.raw, h.relay);
        continue;
      }
      if (!this.flushDecisions()) {
        this.decisionRetry.failed(items.slice(i));
        return false;
      }
      if (!this.settleOrHold(h.raw, h.relay)) {
        this.decisionRetry.failed(items.slice(i + 1));
        return false;
      }
    }
    return this.flushDecisions();
  }

  private onSignal(ev: Event): void {
    const s = readSettlementSignal(ev, this.workers, { gateSecretKey: this.secretKey });
    if ("ignore" in s) {
      this.log.trace({ id: ev.id, why: s.ignore }, "event ignored");
      return;
    }
    const out = applySignal(this.settlement, s);
    if (s.type === "deletion") this.jobs?.cancel(s.requestIds, s.author);
    if (out.signal !== "result" || out.result.status !== "posted") this.schedulePoolStatusIfChanged(out);
  }

  /**
   * SPEC §6: a zap receipt for one of our payment-required replies pays the request when
   * checkZapReceipt accepts it (signer, both signatures, description hash, amount, e tag,
   * payment hash not used before).
   */
  private onZapReceipt(ev: Event): void {
    const provider = this.cfg.payments.zapProviderPubkey;
    if (!provider) return;
    const db = this.ledger.db;
    // The zapped event is named in the embedded zap request; receipts copy its e tag.
    const zapped = ev.tags?.find?.((t) => Array.isArray(t) && t[0] === "e")?.[1];
    if (typeof zapped !== "string") return;
    const requestId = requestOfPaymentRequiredEvent(db, zapped);
    if (!requestId) return;
    const req = this.ledger.getRequest(requestId);
    if (!req || req.state !== "awaiting-payment") return;
    const used = (hash: string) => isPaymentHashUsed(db, hash);
    const check = checkZapReceipt(
      ev,
      { providerPubkey: provider, recipientPubkey: this.gatePubkey, feedbackEventId: zapped, chargeMsats: req.chargeMsats },
      used,
    );
    if (!check.ok) {
      this.log.info({ receipt: ev.id, request: req.requestId, why: check.reason }, "zap receipt not accepted");
      return;
    }
    applyPayment(this.settlement, { requestId: req.requestId, paymentHash: check.paymentHash, amountMsats: check.amountMsats, atMs: this.nowMs() });
  }

  private schedulePoolStatusIfChanged(out: ReturnType<typeof applySignal>): void {
    const changed =
      out.signal === "worker-error"
        ? out.result.status === "voided"
        : out.signal === "deletion"
          ? out.results.some((r) => r.result.status === "voided")
          : false;
    if (changed) {
      this.metrics?.setPool(this.ledger.totals());
      this.schedulePoolStatus();
    }
  }

  private onJobRequest(raw: Event, relay: string): void {
    // Queued by the tier its pubkey claims (a cached read, no signature check yet), checked
    // at the flush, all together: the signature checks of a burst run back to back (the
    // verifier's code and tables stay in the CPU's caches) and none waits on SQL.
    this.requeue(raw, relay, frameOfEvent(raw));
    this.scheduleDrain();
  }

  private requeue(raw: Event, relay: string, frame: string | null = null): void {
    const now = this.nowMs();
    for (const q of this.queue.push(raw, relay, this.tiers.tierOf((raw as { pubkey?: unknown }).pubkey, now), now, frame)) this.dropped(q, "full");
  }

  private dropped(q: Queued, why: DropReason): void {
    this.metrics?.shedRequest?.(q.tier, why);
    // Checked first: a flood sheds thousands a second, and the line's object would be made for nothing.
    if (this.log.isLevelEnabled("trace")) this.log.trace({ id: q.id, tier: q.tier, why }, "request shed");
  }

  private scheduleDrain(): void {
    // After stop() what still waits is left to the relays (see stop).
    if (!this.started) return;
    this.flushTimer ??= setImmediate(() => {
      this.flushTimer = null;
      if (this.holding()) this.holdTimer ??= setTimeout(() => ((this.holdTimer = null), this.scheduleDrain()), 25);
      else this.flushDecisions();
    });
  }

  /**
   * While a relay is still sending its backlog (newest first), decisions wait, at most
   * intake.catchUpHoldMs and until the queues are full, so the backlog's oldest requests
   * of a high tier are decided before the fresh keys' requests that came before them.
   */
  private holding(): boolean {
    if (!this.intake.catchingUp() || this.queue.size >= this.cfg.intake.maxQueued) {
      this.holdSinceMs = null;
      return false;
    }
    const now = Date.now();
    this.holdSinceMs ??= now;
    return now - this.holdSinceMs < this.cfg.intake.catchUpHoldMs;
  }

  /** A deletion, result or feedback naming waiting requests: those are decided first. */
  private decideNamed(ev: Event): void {
    if (this.queue.size === 0 || !Array.isArray(ev.tags)) return;
    const ids = ev.tags.filter((t) => Array.isArray(t) && t[0] === "e" && typeof t[1] === "string").map((t) => t[1] as string);
    if (ids.length > 0) this.flushDecisions(this.queue.takeIds(ids.slice(0, MAX_DECISIONS_PER_TX)));
  }

  /** Validates the next batch (highest tier first); signatures are checked here, outside any transaction. */
  private checkArrived(taken?: Queued[]): PendingDecision[] {
    const now = this.nowMs();
    let arrived = taken;
    if (!arrived) {
      const next = this.queue.take(MAX_DECISIONS_PER_TX, now);
      for (const q of next.stale) this.dropped(q, "stale");
      arrived = next.batch;
    }
    const out: PendingDecision[] = [];
    for (const { raw, relay } of arrived) {
      let v: JobRequestVerdict;
      try {
        v = checkJobRequest(raw, {
          gatePubkey: this.gatePubkey,
          priceMsatsByKind: this.cfg.jobs.priceMsatsByKind,
          maxRequestBytes: this.cfg.jobs.maxRequestBytes,
          maxRequestAgeSec: this.cfg.jobs.maxRequestAgeSec,
          nowSec: Math.floor(now / 1000),
          gateSecretKey: this.secretKey,
          ...(this.priceOf ? { priceOf: this.priceOf } : {}),
        });
      } catch (err) {
        // A bug, not bad input (checkJobRequest answers that): log it, drop this one event.
        this.log.error({ id: (raw as { id?: unknown }).id, relay, err: (err as Error).message }, "event handler failed");
        continue;
      }
      if (!v.ok && v.answer === "ignore") {
        // A forged copy must not keep the real event with the same id out.
        if (v.reason === "invalid: bad id or signature" && typeof raw.id === "string") this.recent.delete(raw.id);
        this.metrics?.decision("ignored");
        this.log.debug({ id: (raw as { id?: unknown }).id, relay, why: v.reason }, "request ignored");
        continue;
      }
      out.push(v.ok ? { type: "decide", req: v.request, relay, now } : { type: "refuse", v, relay, now });
    }
    return out;
  }

  /**
   * Writes the next batch (at most MAX_DECISIONS_PER_TX waiting requests, highest tier
   * first, or `taken`) in one BEGIN IMMEDIATE transaction, and schedules the next batch.
   * Under FULL each commit is an fsync, and one per request was the gate's largest cost
   * after the crypto. Each decision still runs in its own savepoint (a nested Ledger
   * transaction) with its reply, in queue order, so the per-customer budget sees every
   * earlier decision of the batch, and one that fails is rolled back alone. Queued requests
   * live only in memory, and a crash loses nothing durable: the relay cursors are held
   * behind the oldest of them (undecidedSinceSec), so the relays send them again.
   */
  flushDecisions(taken?: Queued[]): boolean {
    if (this.flushTimer) clearImmediate(this.flushTimer);
    this.flushTimer = null;
    if (this.queue.size > 0 && !this.holdTimer) this.scheduleDrain();
    const batch = this.checkArrived(taken);
    if (batch.length === 0) return true;
    let done: (Decided | null)[];
    let outboxIds: number[];
    try {
      ({ value: done, outboxIds } = collectEnqueued(() => this.ledger.tx(() => batch.map((p) => this.writeDecision(p)))));
    } catch (err) {
      // Nothing of the batch was written: let the same events be handled again if they come back.
      for (const p of batch) this.recent.delete(p.type === "decide" ? p.req.id : p.v.event.id);
      this.log.error({ err: (err as Error).message, requests: batch.length }, "could not record decisions");
      if (!isWriteFailure(err)) return true;
      this.decisionRetry.failed(batch.map((p): HeldRequest => ({ raw: p.type === "decide" ? p.req.event : p.v.event, relay: p.relay })));
      return false;
    }
    this.decisionRetry.succeeded();
    let kick = false;
    let invoice = false;
    for (const d of done) {
      if (d === null) continue;
      if (d.type === "limited") {
        this.metrics?.invoiceLimited?.(d.l.limit, d.l.reply);
        this.log.debug({ id: d.l.requestId, customer: d.l.pubkey, tier: d.l.tier, limit: d.l.limit, replied: d.l.reply }, "invoice limit");
        if (d.l.reply) kick = true;
        continue;
      }
      if (d.type === "refused") {
        this.metrics?.decision("error");
        this.log.info({ id: d.id, customer: d.customer, reason: d.reason, abuse: d.abuse }, "request refused");
        kick = true;
        continue;
      }
      const rec = d.rec;
      this.metrics?.decision(rec.decision);
      this.log.info(
        {
          id: rec.requestId,
          customer: rec.pubkey,
          kind: rec.kind,
          decision: rec.decision,
          tier: rec.tier,
          absorbMsats: rec.absorbMsats,
          chargeMsats: rec.chargeMsats,
          reason: rec.reason,
        },
        "decided",
      );
      if ((rec.decision === "partial" || rec.decision === "gate") && rec.balanceLeftMsats === undefined) invoice = true;
      else kick = true;
    }
    if (invoice) void this.invoicing.issuePending();
    // The replies just written go out now, read by id: no scan of the outbox.
    this.publisher.deliverNew(outboxIds);
    if (kick) this.jobs?.kick();
    // The pool's gauges are read fresh at each /metrics scrape (http/server.ts), not here per batch.
    return true;
  }

  /** Oldest created_at of a request received but not decided yet (queued, or held after a failed write). */
  private undecidedSinceSec(): number | null {
    // Requests waiting in the queues too: a crash must bring them back.
    const held = this.decisionRetry.holdSec();
    const queued = this.queue.oldestOrderSec();
    return held === null ? queued : queued === null ? held : Math.min(held, queued);
  }

  /** One queued request, inside the batch's transaction; null when nothing new was written. */
  private writeDecision(p: PendingDecision): Decided | null {
    const id = p.type === "decide" ? p.req.id : p.v.event.id;
    try {
      return p.type === "decide" ? this.decide(p.req, p.relay, p.now) : this.refuse(p.v, p.relay, p.now);
    } catch (err) {
      // The store refuses writes (full, I/O): the whole batch waits for a retry.
      if (isWriteFailure(err)) throw err;
      // Its savepoint is rolled back; the rest of the batch stands.
      this.recent.delete(id);
      this.log.error({ id, relay: p.relay, err: (err as Error).message }, "event handler failed");
      return null;
    }
  }

  private refuse(v: Refused, relay: string, now: number): Decided | null {
    const nowSec = Math.floor(now / 1000);
    const { event, customer, reason, abuse, encryption } = v;
    return this.ledger.tx(() => {
      // Same bad request through several relays: one answer, one penalty.
      if (!markSeen(this.ledger.db, event.id, event.kind, now)) return null;
      const target: ReplyTarget = { requestId: event.id, customer, relayHint: relay, encryption, expiresAtSec: nowSec + ERROR_REPLY_TTL_SEC };
      const ev = signEvent(encryptTemplateFor(errorFeedback(target, reason, nowSec), target, this.secretKey), this.secretKey);
      enqueue(this.ledger.db, { requestId: event.id, purpose: "feedback-error", event: ev, relays: this.relays, nowMs: now });
      if (abuse) this.ledger.recordAbuse(customer, reason, now);
      return { type: "refused", id: event.id, customer, reason, abuse } as const;
    });
  }

  private decide(req: JobRequest, relay: string, now: number): Decided | null {
    const nowSec = Math.floor(now / 1000);
    const relays = replyRelaysFor(this.settlement, req.replyRelays);
    const onLimited = (db: typeof this.ledger.db, l: LimitedRequest) => {
      if (!l.reply) return;
      const target: ReplyTarget = {
        requestId: req.id,
        customer: req.customer,
        relayHint: relay,
        encryption: req.encryption,
        expiresAtSec: nowSec + ERROR_REPLY_TTL_SEC,
      };
      const ev = signEvent(encryptTemplateFor(errorFeedback(target, `rate-limited: ${l.why}`, nowSec), target, this.secretKey), this.secretKey);
      enqueue(db, { requestId: req.id, purpose: "feedback-error", event: ev, relays, nowMs: now });
    };
    const res = this.ledger.decide(
      { requestId: req.id, pubkey: req.customer, kind: req.kind, priceMsats: req.priceMsats },
      now,
      (db, rec) => {
        saveRequestMeta(db, {
          requestId: req.id,
          encryption: req.encryption,
          relayHint: relay,
          replyRelays: req.replyRelays,
          eventJson: JSON.stringify(req.event),
        });
        const target: ReplyTarget = {
          requestId: req.id,
          customer: req.customer,
          relayHint: relay,
          encryption: req.encryption,
          expiresAtSec: rec.expiresAtMs !== null ? Math.ceil(rec.expiresAtMs / 1000) : nowSec + ERROR_REPLY_TTL_SEC,
        };
        const signed = (t: EventTemplate) => signEvent(encryptTemplateFor(t, target, this.secretKey), this.secretKey);
        const base = { requestId: req.id, relays, nowMs: now };
        switch (rec.decision) {
          case "free":
            enqueue(db, {
              ...base,
              purpose: "feedback-processing",
              event: signed(processingFeedback(target, { text: freeText(rec), freeTier: { label: "free", absorbedMsats: rec.absorbMsats } }, nowSec)),
            });
            this.jobs?.onGoSignal(db, rec, now);
            break;
          case "partial":
          case "gate":
            if (rec.balanceLeftMsats !== undefined) {
              enqueue(db, { ...base, purpose: "feedback-processing", event: signed(balancePaidFeedback(target, rec, nowSec)) });
              // Paid from the balance: the processing reply is the go signal, as for a free job.
              this.jobs?.onGoSignal(db, rec, now);
              break;
            }
            // The invoice is made after commit (no network in here); this row waits for it.
            enqueue(db, { ...base, purpose: "feedback-payment-required", event: null });
            break;
          case "blocked":
            enqueue(db, { ...base, purpose: "feedback-error", event: signed(errorFeedback(target, "blocked: this pubkey may not use this service", nowSec)) });
            break;
        }
      },
      { onLimited },
    );
    if (res.status === "limited") return res.fresh ? { type: "limited", l: res.limited } : null;
    return res.status === "exists" ? null : { type: "decided", rec: res.request };
  }

  /** Pool status (a replaceable event): after changes, but at most every poolStatusMinIntervalMs. */
  private schedulePoolStatus(): void {
    if (this.poolStatusTimer || !this.started) return;
    const waitMs = Math.max(0, this.poolStatusAtMs + this.t.poolStatusMinIntervalMs - Date.now());
    this.poolStatusTimer = setTimeout(() => {
      this.poolStatusTimer = null;
      this.publishPoolStatus();
    }, waitMs);
  }

  /** SPEC §11 liveness: kind 11998 (replaceable), each strictly newer than the last. */
  private publishHeartbeat(): void {
    if (this.relays.length === 0) return;
    try {
      const now = this.nowMs();
      const createdAtSec = Math.max(Math.floor(now / 1000), this.heartbeatSec + 1);
      this.heartbeatSec = createdAtSec;
      const running = this.jobs?.runningCount() ?? 0;
      const ev = signEvent(
        heartbeatTemplate(
          { status: `online: ${running} job${running === 1 ? "" : "s"} running`, periodSec: Math.ceil(this.t.heartbeatMs / 1000) },
          createdAtSec,
        ),
        this.secretKey,
      );
      this.ledger.tx(() => enqueue(this.ledger.db, { requestId: null, purpose: "heartbeat", event: ev, relays: this.relays, nowMs: now }));
      this.publisher.kick();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "could not queue the heartbeat");
    }
  }

  private publishPoolStatus(): void {
    if (this.relays.length === 0) return;
    try {
      this.poolStatusAtMs = Date.now();
      const now = this.nowMs();
      this.ledger.tx(() => {
        const t = this.ledger.totals();
        // Replaceable: relays keep the newest created_at (ties go to the lowest id), so each
        // status must be strictly newer than the last or a stale one could win.
        const createdAtSec = Math.max(Math.floor(now / 1000), this.poolStatusSec + 1);
        this.poolStatusSec = createdAtSec;
        const ev = signEvent(poolStatusTemplate(t, this.cfg.freeTier.budgetsMsats as Record<Tier, number>, createdAtSec), this.secretKey);
        enqueue(this.ledger.db, { requestId: null, purpose: "pool-status", event: ev, relays: this.relays, nowMs: now });
      });
      this.publisher.kick();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "could not queue the pool status");
    }
  }
}

/** SPEC §12: paid from the prepaid balance; the free-tier tag too when the pool paid a part. */
function balancePaidFeedback(target: ReplyTarget, rec: RequestRecord, nowSec: number): EventTemplate {
  const pool = rec.absorbMsats > 0 ? `the pool covers ${rec.absorbMsats} msats, ` : "";
  return processingFeedback(
    target,
    {
      text: `${pool}your balance paid ${rec.chargeMsats} msats; ${rec.balanceLeftMsats} msats left`,
      ...(rec.absorbMsats > 0 ? { freeTier: { label: "partial" as const, absorbedMsats: rec.absorbMsats, chargeMsats: rec.chargeMsats } } : {}),
      balanceLeftMsats: rec.balanceLeftMsats!,
    },
    nowSec,
  );
}

function freeText(rec: RequestRecord): string {
  return rec.absorbMsats > 0 ? `free tier (${rec.tier}): the pool covers ${rec.absorbMsats} msats` : "free: this job costs nothing";
}
