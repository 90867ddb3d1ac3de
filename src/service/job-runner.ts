// Runs approved jobs through the kind's backend (SPEC §11) from the durable queue in
// the ledger (src/ledger/job-store.ts). The queue row is written with the go signal;
// here a job is claimed in one short transaction, run with no transaction open, and
// ended in the transaction that posts its reservation and queues its signed result
// (or voids it and queues the `error`), so across crashes a result is published once.
//
// Bounds: at most `maxConcurrent` jobs per kind run at once (waiting ones start elite
// first, then by arrival); each is aborted at its deadline; a job found running at
// start (the gate died under it) is run again until `maxAttempts` starts in all.
import type { Event, EventTemplate } from "nostr-tools/pure";
import type { Logger } from "pino";
import { paidFromBalance, type Ledger, type RequestRecord, type SettleResult } from "../ledger/ledger.js";
import type { Db } from "../ledger/db.js";
import type { BackendJob, BackendResult, KindBackend } from "../backends/types.js";
export type { KindBackend };
import { collectEnqueued, enqueue, getRequestMeta, type OutboxPurpose, type RequestMeta } from "../ledger/outbox-store.js";
import { endJob, getJob, markRunning, nextWaiting, queueJob, releaseJob, requeue, runningJobs, type JobRow } from "../ledger/job-store.js";
import { encryptTemplateFor, errorFeedback, processingFeedback, type ReplyTarget } from "../events/feedback.js";
import { jobResultTemplate, jobTagsOf, partialFeedback, type JobTags } from "../events/job-result.js";
import { signEvent } from "../events/verify.js";
import { replyRelaysFor, warnIfPaid } from "./settlement.js";

export interface JobRunnerOptions {
  ledger: Ledger;
  log: Logger;
  secretKey: Uint8Array;
  /** The gate's relays (replies also go to a request's own `relays`, at most maxReplyRelays of them). */
  relays: string[];
  maxReplyRelays?: number;
  nowMs: () => number;
  kinds: ReadonlyMap<number, KindBackend>;
  maxResultBytes: number;
  /** After a commit that queued events to publish (with their outbox ids when known: see SettlementDeps.onQueued). */
  onQueued: (outboxIds?: readonly number[]) => void;
  /** After a reservation was resolved here (pool status, metrics). */
  onResolved?: (r: { absorbedMsats: number }) => void;
  /** How often the queue is looked at without a kick (jobs queued by another process). */
  pollMs?: number;
}

interface Run {
  kind: number;
  controller: AbortController;
  timer: NodeJS.Timeout;
  done: Promise<void>;
}

const CANCELLED = "cancelled by the customer";
const STOPPING = "the gate is stopping";
/** Finished replies are about a closed matter: relays may drop them after a day. */
const REPLY_TTL_SEC = 86_400;
const DEADLINE_MARGIN_MS = 1000;

export class JobRunner {
  private readonly o: JobRunnerOptions;
  private readonly runs = new Map<string, Run>();
  /**
   * Jobs marked running inside a go-signal transaction, to be started after its commit.
   * Bounded by maxConcurrent per kind; an entry whose transaction rolled back finds no
   * running job when it is started and is dropped.
   */
  private readonly preclaimed = new Map<string, number>();
  private pumpTimer: NodeJS.Immediate | null = null;
  private poll: NodeJS.Timeout | null = null;
  private stopping = false;
  private started = false;

  constructor(o: JobRunnerOptions) {
    this.o = o;
  }

  handles(kind: number): boolean {
    return this.o.kinds.has(kind);
  }

  /**
   * Inside the transaction that sends a go signal: the job becomes runnable with it. When
   * a slot is free and the job is next in line anyway, it is claimed right here (one
   * `BEGIN IMMEDIATE` less per job) and started just after the commit.
   */
  onGoSignal(db: Db, rec: RequestRecord, nowMs: number): void {
    const kb = this.o.kinds.get(rec.kind);
    if (!kb) return;
    if (!queueJob(db, { requestId: rec.requestId, kind: rec.kind, tier: rec.tier, nowMs })) return;
    if (!this.started || this.stopping || this.runningCount(rec.kind) >= kb.maxConcurrent) return;
    const next = nextWaiting(db, rec.kind);
    if (next?.requestId === rec.requestId && markRunning(db, next.id, nowMs)) this.preclaimed.set(rec.requestId, rec.kind);
  }

  /** Jobs left running by a stopped gate are run again, or failed past maxAttempts. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.recover();
    this.poll = setInterval(() => this.kick(), this.o.pollMs ?? 1000);
    this.kick();
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.stopping = true;
    if (this.poll) clearInterval(this.poll);
    if (this.pumpTimer) clearImmediate(this.pumpTimer);
    // Claimed but not started: they wait for the next start, their attempt given back.
    const pre = [...this.preclaimed.keys()];
    this.preclaimed.clear();
    if (pre.length > 0)
      this.o.ledger.tx(() => {
        for (const id of pre) {
          const job = getJob(this.o.ledger.db, id);
          if (job) releaseJob(this.o.ledger.db, job.id);
        }
      });
    const running = [...this.runs.values()];
    for (const r of running) r.controller.abort(STOPPING);
    await Promise.all(running.map((r) => r.done));
  }

  /** Looks for startable jobs after the current tick (coalesced). */
  kick(): void {
    if (!this.started || this.pumpTimer) return;
    this.pumpTimer = setImmediate(() => {
      this.pumpTimer = null;
      for (const kind of this.o.kinds.keys()) this.pump(kind);
    });
  }

  runningCount(kind?: number): number {
    let n = 0;
    for (const r of this.runs.values()) if (kind === undefined || r.kind === kind) n++;
    for (const k of this.preclaimed.values()) if (kind === undefined || k === kind) n++;
    return n;
  }

  /**
   * A customer's deletion: a waiting or running job of theirs is stopped and its
   * reservation voided (the work was not done), in one transaction; the backend is
   * aborted after commit (exec: the process is killed; nip90: the upstream request is deleted).
   */
  cancel(requestIds: readonly string[], author: string): void {
    const now = this.o.nowMs();
    for (const id of requestIds) {
      const req = this.o.ledger.getRequest(id);
      if (!req || req.pubkey !== author || !this.o.kinds.has(req.kind)) continue;
      const ended = this.o.ledger.tx(() => {
        const job = getJob(this.o.ledger.db, id);
        if (!job || (job.state !== "waiting" && job.state !== "running")) return false;
        warnIfPaid(this.o, this.o.ledger.fail(id, "deleted by the customer", now));
        return endJob(this.o.ledger.db, id, "cancelled", CANCELLED, now);
      });
      if (!ended) continue;
      this.o.log.info({ request: id }, "job cancelled by the customer's deletion");
      this.runs.get(id)?.controller.abort(CANCELLED);
      this.o.onResolved?.({ absorbedMsats: 0 });
    }
  }

  private recover(): void {
    const now = this.o.nowMs();
    const db = this.o.ledger.db;
    const failed: string[] = [];
    this.o.ledger.tx(() => {
      for (const job of runningJobs(db)) {
        const kb = this.o.kinds.get(job.kind);
        if (kb && job.attempts < kb.maxAttempts) requeue(db, job.id);
        else {
          const why = kb
            ? `the gate stopped while the job ran, ${job.attempts} time${job.attempts === 1 ? "" : "s"}`
            : `no backend is configured for kind ${job.kind} any more`;
          this.failInTx(job.requestId, why, now);
          failed.push(job.requestId);
        }
      }
    });
    if (failed.length > 0) {
      this.o.log.warn({ requests: failed }, "jobs voided after a restart: out of attempts");
      this.o.onQueued();
    }
  }

  private pump(kind: number): void {
    const kb = this.o.kinds.get(kind)!;
    for (const [id, k] of [...this.preclaimed]) {
      if (k !== kind) continue;
      this.preclaimed.delete(id);
      const c = this.stopping ? null : this.prepared(id);
      if (c && c !== "skipped") this.launch(kb, c);
    }
    while (!this.stopping && this.runningCount(kind) < kb.maxConcurrent) {
      // A plain read first: every job's end kicks the pump, and with none waiting a claim
      // would take the write lock (BEGIN IMMEDIATE) for nothing.
      if (nextWaiting(this.o.ledger.db, kind) === null) return;
      const claim = this.claim(kind);
      if (claim === null) return;
      if (claim === "skipped") continue;
      this.launch(kb, claim);
    }
  }

  /** The next waiting job, marked running, with what it needs; "skipped" when it could not run. */
  private claim(kind: number): Claimed | "skipped" | null {
    const now = this.o.nowMs();
    const db = this.o.ledger.db;
    let queued = false;
    const out = this.o.ledger.tx((): Claimed | "skipped" | null => {
      const job = nextWaiting(db, kind);
      if (!job) return null;
      const req = this.o.ledger.getRequest(job.requestId);
      const meta = getRequestMeta(db, job.requestId);
      const alive = req !== null && req.state === "processing" && req.expiresAtMs !== null && req.expiresAtMs > now;
      if (!alive || !meta) {
        // Voided or expired while it waited: tell the customer when nobody else did.
        queued = this.failInTx(job.requestId, "timeout: the job waited past its deadline", now);
        return "skipped";
      }
      const event = JSON.parse(meta.eventJson) as Event;
      const tags = jobTagsOf(event, this.o.secretKey);
      if (!tags) {
        queued = this.failInTx(job.requestId, "the encrypted request can no longer be read", now);
        return "skipped";
      }
      markRunning(db, job.id, now);
      return { job: { ...job, attempts: job.attempts + 1 }, req, meta, event, tags };
    });
    if (queued) this.o.onQueued();
    return out;
  }

  /** A job claimed in its go-signal transaction, read back after the commit (null: that transaction did not stand). */
  private prepared(requestId: string): Claimed | "skipped" | null {
    const db = this.o.ledger.db;
    const job = getJob(db, requestId);
    if (!job || job.state !== "running" || this.runs.has(requestId)) return null;
    const req = this.o.ledger.getRequest(requestId);
    const meta = getRequestMeta(db, requestId);
    const event = meta ? (JSON.parse(meta.eventJson) as Event) : null;
    const tags = event ? jobTagsOf(event, this.o.secretKey) : null;
    if (req && meta && event && tags && req.state === "processing") return { job, req, meta, event, tags };
    const now = this.o.nowMs();
    if (this.o.ledger.tx(() => this.failInTx(requestId, tags ? "the job could not start" : "the encrypted request can no longer be read", now)))
      this.o.onQueued();
    return "skipped";
  }

  private launch(kb: KindBackend, c: Claimed): void {
    const now = this.o.nowMs();
    const deadlineMs = c.req.expiresAtMs!;
    const controller = new AbortController();
    // Stopped a little before the request's own deadline, so the runner (not the expiry
    // sweep) resolves it: voided, with the timeout named in the customer's error.
    const marginMs = Math.min(DEADLINE_MARGIN_MS, Math.floor((deadlineMs - now) / 10));
    const timer = setTimeout(() => controller.abort("timeout: the backend did not answer by the deadline"), Math.max(0, deadlineMs - now - marginMs));
    const job: BackendJob = {
      id: c.req.requestId,
      kind: c.req.kind,
      customer: c.req.pubkey,
      tier: c.req.tier,
      inputs: c.tags.iTags.map((t) => t.slice(1)),
      params: c.tags.params,
      output: c.tags.output,
      deadlineSec: Math.max(0, Math.floor((deadlineMs - now - marginMs) / 1000)),
    };
    this.o.log.debug({ request: job.id, kind: job.kind, attempt: c.job.attempts }, "job started");
    const done = untilAbortedPlusGrace(
      kb.backend.run(job, {
        deadlineMs: deadlineMs - marginMs,
        signal: controller.signal,
        maxResultBytes: this.o.maxResultBytes,
        onProgress: (status, text) => this.progress(c, status, text),
      }),
      controller.signal,
    )
      .catch((err: unknown): BackendResult => ({ ok: false, reason: `backend failed: ${String((err as Error)?.message ?? err).slice(0, 200)}` }))
      .then((r) => {
        clearTimeout(timer);
        this.finish(c, r, controller.signal);
      })
      .catch((err: unknown) => this.o.log.error({ request: job.id, err: String((err as Error)?.message ?? err) }, "could not record a job's outcome"))
      .finally(() => {
        this.runs.delete(job.id);
        this.kick();
      });
    this.runs.set(job.id, { kind: job.kind, controller, timer, done });
  }

  private finish(c: Claimed, r: BackendResult, signal: AbortSignal): void {
    const id = c.req.requestId;
    const now = this.o.nowMs();
    if (signal.aborted && signal.reason === CANCELLED) return; // resolved by cancel()
    if (signal.aborted && signal.reason === STOPPING) {
      // Not the job's fault: it waits for the next start with its attempt given back.
      this.o.ledger.tx(() => releaseJob(this.o.ledger.db, c.job.id));
      return;
    }
    if (r.ok) {
      const bytes = Buffer.byteLength(r.content, "utf8");
      if (bytes > this.o.maxResultBytes) r = { ok: false, reason: `result too large: ${bytes} bytes, the limit is ${this.o.maxResultBytes}` };
    }
    if (r.ok) {
      const posted = this.post(c, r.content, r.costMsats ?? null, now);
      if (posted) return;
      r = { ok: false, reason: "timeout: the result came after the deadline" };
    }
    const queued = this.o.ledger.tx(() => this.failInTx(id, r.ok ? "" : r.reason, now));
    this.o.log.info({ request: id, reason: r.ok ? "" : r.reason }, "job failed: voided");
    if (queued) this.o.onQueued();
    this.o.onResolved?.({ absorbedMsats: 0 });
  }

  /** Posts the reservation and queues the grant and the result in one transaction. */
  private post(c: Claimed, content: string, costMsats: number | null, now: number): boolean {
    const id = c.req.requestId;
    const db = this.o.ledger.db;
    const charged = c.req.paidMsats > 0 ? c.req.chargeMsats : 0;
    // SPEC §2: what the customer paid is spent first; the pool covers the rest of the cost.
    const actualMsats = costMsats === null ? null : Math.max(0, costMsats - charged);
    let result: SettleResult | null = null;
    const { value: ok, outboxIds } = collectEnqueued(() =>
      this.o.ledger.tx(() => {
        if (getJob(db, id)?.state !== "running") return false;
        result = this.o.ledger.settle(id, { actualMsats }, now, (db2, s) => {
          if (s.status !== "posted") return;
          if (s.grant?.eventJson)
            enqueue(db2, { requestId: id, purpose: "grant", event: JSON.parse(s.grant.eventJson) as Event, relays: this.o.relays, nowMs: now });
          const tpl = jobResultTemplate({ request: c.event, relayHint: c.meta.relayHint, iTags: c.tags.iTags, content, costMsats }, Math.floor(now / 1000));
          this.enqueueReply(db2, c.meta, c.req.pubkey, "result", tpl, now);
          endJob(db2, id, "done", null, now);
        });
        return (result as SettleResult).status === "posted";
      }),
    );
    if (!ok) return false;
    const r = result as unknown as Extract<SettleResult, { status: "posted" }>;
    this.o.log.info({ request: id, absorbedMsats: r.absorbedMsats, returnedMsats: r.returnedMsats, costMsats, seq: r.grant?.seq }, "job done: result queued");
    this.o.onQueued(outboxIds);
    this.o.onResolved?.({ absorbedMsats: r.absorbedMsats });
    return true;
  }

  /**
   * Voids the request (if still open) and ends its job, telling the customer with an
   * `error` unless the request was already closed by something the customer did.
   * Runs inside the caller's transaction. Returns whether a reply was queued.
   */
  private failInTx(requestId: string, reason: string, now: number): boolean {
    const db = this.o.ledger.db;
    const job = getJob(db, requestId);
    if (!job || (job.state !== "waiting" && job.state !== "running")) return false;
    const f = this.o.ledger.fail(requestId, `backend: ${reason}`, now);
    endJob(db, requestId, "failed", reason, now);
    // dvm-gate never sends money: a job paid by invoice that was not done needs a refund
    // by hand; one paid from the balance was refunded to it by fail() itself.
    warnIfPaid(this.o, f);
    if (f.status === "already_resolved" && f.request.state === "expired" && f.request.paidMsats > 0 && !paidFromBalance(f.request))
      this.o.log.warn(
        { request: requestId, customer: f.request.pubkey, paidMsats: f.request.paidMsats, paymentRef: f.request.paymentRef },
        "a paid job expired before it was done: refund the customer by hand",
      );
    const state = f.status === "not_found" ? null : f.request.state;
    if (f.status !== "voided" && state !== "expired") return false;
    const meta = getRequestMeta(db, requestId);
    const req = this.o.ledger.getRequest(requestId);
    if (!meta || !req) return false;
    const nowSec = Math.floor(now / 1000);
    const target = this.target(meta, req.pubkey, now);
    this.enqueueReply(db, meta, req.pubkey, "feedback-error", errorFeedback(target, reason, nowSec), now);
    return true;
  }

  /** nip90's upstream `processing`/`partial`, re-signed by the gate, once each per job. */
  private progress(c: Claimed, status: "processing" | "partial", text: string): void {
    const now = this.o.nowMs();
    const id = c.req.requestId;
    const queued = this.o.ledger.tx(() => {
      if (getJob(this.o.ledger.db, id)?.state !== "running") return false;
      const target = this.target(c.meta, c.req.pubkey, now);
      const tpl =
        status === "processing"
          ? processingFeedback(target, { text: text || "the upstream DVM is working on it" }, Math.floor(now / 1000))
          : partialFeedback(target, text, Math.floor(now / 1000));
      return this.enqueueReply(
        this.o.ledger.db,
        c.meta,
        c.req.pubkey,
        status === "processing" ? "feedback-upstream-processing" : "feedback-upstream-partial",
        tpl,
        now,
      );
    });
    if (queued) this.o.onQueued();
  }

  private target(meta: RequestMeta, customer: string, now: number): ReplyTarget {
    return {
      requestId: meta.requestId,
      customer,
      relayHint: meta.relayHint,
      encryption: meta.encryption,
      expiresAtSec: Math.floor(now / 1000) + REPLY_TTL_SEC,
    };
  }

  private enqueueReply(db: Db, meta: RequestMeta, customer: string, purpose: OutboxPurpose, tpl: EventTemplate, now: number): boolean {
    const target = this.target(meta, customer, now);
    const ev = signEvent(encryptTemplateFor(tpl, target, this.o.secretKey), this.o.secretKey);
    return enqueue(db, { requestId: meta.requestId, purpose, event: ev, relays: replyRelaysFor(this.o, meta.replyRelays), nowMs: now }).created;
  }
}

interface Claimed {
  job: JobRow;
  req: RequestRecord;
  meta: RequestMeta;
  event: Event;
  tags: JobTags;
}

/**
 * A backend that ignores its abort signal must not hold a slot for ever: once aborted,
 * it gets ABORT_GRACE_MS to answer, then the run counts as failed for the signal's reason.
 */
const ABORT_GRACE_MS = 5000;
function untilAbortedPlusGrace(run: Promise<BackendResult>, signal: AbortSignal): Promise<BackendResult> {
  let timer: NodeJS.Timeout | null = null;
  let onAbort: (() => void) | null = null;
  const late = new Promise<BackendResult>((resolve) => {
    onAbort = () => {
      timer = setTimeout(() => resolve({ ok: false, reason: typeof signal.reason === "string" ? signal.reason : "cancelled" }), ABORT_GRACE_MS);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  return Promise.race([run, late]).finally(() => {
    if (timer) clearTimeout(timer);
    if (onAbort) signal.removeEventListener("abort", onAbort);
  });
}
