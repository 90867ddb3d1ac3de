// Settlement (SPEC §2): what a worker's result, a worker's error feedback, a customer's
// deletion or a confirmed payment does to a request, each in one ledger transaction
// that also queues the events it causes (the grant, the "paid" feedback) in the outbox.
import type { Event } from "nostr-tools/pure";
import type { Logger } from "pino";
import type { Ledger, PaidResult, SettleResult, FailResult, RequestRecord } from "../ledger/ledger.js";
import type { Db } from "../ledger/db.js";
import { collectEnqueued, enqueue, getRequestMeta } from "../ledger/outbox-store.js";
import { markInvoicePaid } from "../ledger/invoice-store.js";
import { errorFeedback, processingFeedback, encryptTemplateFor, type ReplyTarget } from "../events/feedback.js";
import { signEvent } from "../events/verify.js";
import type { SettlementSignal } from "../events/job-events.js";
import { poolShareOfCostMsats } from "../policy/cost-share.js";

export interface SettlementDeps {
  ledger: Ledger;
  log: Logger;
  secretKey: Uint8Array;
  /** Relays every gate event goes to. */
  relays: string[];
  /** At most this many of a request's own `relays` besides ours (nostr.maxReplyRelays). */
  maxReplyRelays?: number;
  nowMs: () => number;
  /**
   * Called after a commit that queued something to publish; with the outbox ids it wrote
   * when they are known (collectEnqueued), so the publisher can send them without a scan.
   */
  onQueued: (outboxIds?: readonly number[]) => void;
  onGrant?: (absorbedMsats: number) => void;
  /** Inside the transaction that sends a go signal (the gate's own backends queue the job here). */
  onGoSignal?: (db: Db, req: RequestRecord, nowMs: number) => void;
}

/**
 * Where replies about a request go: our relays plus the ones its `relays` tag named.
 * A customer may not point the gate at loopback or private addresses (its own network)
 * unless the gate itself runs on such relays (the demo, tests, a private deployment).
 */
export function replyRelaysFor(deps: { relays: string[]; maxReplyRelays?: number }, requestRelays: string[]): string[] {
  const local = deps.relays.some(isPrivateRelay);
  const own = new Set(deps.relays);
  // The customer's relays are untrusted peers: the first few count, a long list buys no more connections.
  const theirs = [...new Set(requestRelays.filter((u) => !own.has(u) && (local || !isPrivateRelay(u))))].slice(0, deps.maxReplyRelays ?? 3);
  return [...own, ...theirs];
}

export function isPrivateRelay(url: string): boolean {
  let host: string;
  try {
    host = new URL(url).hostname.toLowerCase().replace(/^\[|\]$/g, "");
  } catch {
    return true;
  }
  if (host === "localhost" || host.endsWith(".localhost") || host.endsWith(".local") || host.endsWith(".internal")) return true;
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (v4) {
    const [a, b] = [Number(v4[1]), Number(v4[2])];
    return (
      a === 0 ||
      a === 10 ||
      a === 127 ||
      (a === 169 && b === 254) ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) ||
      (a === 100 && b >= 64 && b <= 127)
    );
  }
  if (host.includes(":")) return host === "::" || host === "::1" || /^f[cd]/.test(host) || /^fe[89ab]/.test(host) || host.startsWith("::ffff:");
  return false;
}

export type SignalOutcome =
  | { signal: "result"; result: SettleResult }
  | { signal: "worker-error"; result: FailResult }
  | { signal: "deletion"; results: { requestId: string; result: DeletionResult }[] };

/** What a customer's deletion did: voided before the go signal, nothing after it (SPEC §2). */
export type DeletionResult = FailResult | { status: "not_the_customer" } | { status: "after_go_signal"; request: RequestRecord };

export function applySignal(deps: SettlementDeps, s: SettlementSignal): SignalOutcome {
  switch (s.type) {
    case "result":
      return { signal: "result", result: settleJob(deps, s.requestId, s.actualMsats, s.requestKind) };
    case "worker-error": {
      const result = deps.ledger.fail(s.requestId, `worker error: ${s.reason}`, deps.nowMs());
      if (result.status === "voided") {
        deps.log.info({ request: s.requestId, worker: s.worker, returnedMsats: result.returnedMsats }, "worker error: voided");
        warnIfPaid(deps, result);
      }
      return { signal: "worker-error", result };
    }
    case "deletion": {
      const results = s.requestIds.map((requestId) => {
        const result = cancelByCustomer(deps, requestId, s.author);
        if (result.status === "after_go_signal")
          deps.log.info({ request: requestId }, "customer deletion after the go signal: the reservation stays until the result, an error or the deadline");
        if (result.status === "voided") {
          deps.log.info({ request: requestId, returnedMsats: result.returnedMsats }, "customer deletion: voided");
          warnIfPaid(deps, result);
        }
        return { requestId, result };
      });
      return { signal: "deletion", results };
    }
  }
}

/**
 * A customer's deletion, read and applied in one transaction. Only the customer who asked
 * may cancel, and only an open job (fail refuses resolved ones). Once the go signal is
 * out (`processing`: a free decision's reply, or a payment received) the worker may
 * already be spending on it: voiding then would hand the budget back for work still
 * being done, so the reservation waits for the worker's result, its error or the deadline.
 */
function cancelByCustomer(deps: SettlementDeps, requestId: string, author: string): DeletionResult {
  return deps.ledger.tx((): DeletionResult => {
    const req = deps.ledger.getRequest(requestId);
    if (!req) return { status: "not_found" };
    if (req.pubkey !== author) return { status: "not_the_customer" };
    if (req.state === "processing") return { status: "after_go_signal", request: req };
    return deps.ledger.fail(requestId, "deleted by the customer", deps.nowMs());
  });
}

/**
 * Posts a request's reservation (worker result or operator `settle`). The grant event,
 * signed by the ledger inside this transaction, is queued for the gate's relays in it too.
 */
export function settleJob(deps: SettlementDeps, requestId: string, costMsats: number | null, resultForKind?: number): SettleResult {
  const req = deps.ledger.getRequest(requestId);
  // A result of another kind is not the result of this job.
  if (resultForKind !== undefined && req && req.kind !== resultForKind) return { status: "not_processing", request: req };
  // The stated cost is the job's, not the pool's: what the customer paid (fixed once the
  // job is processing) is spent first.
  const charged = req && req.paidMsats > 0 ? req.chargeMsats : 0;
  const actualMsats = costMsats === null ? null : poolShareOfCostMsats(costMsats, charged);
  const now = deps.nowMs();
  const { value: result, outboxIds } = collectEnqueued(() =>
    deps.ledger.settle(requestId, { actualMsats }, now, (db, r) => {
      if (r.status !== "posted" || !r.grant?.eventJson) return;
      enqueue(db, { requestId, purpose: "grant", event: JSON.parse(r.grant.eventJson) as Event, relays: deps.relays, nowMs: now });
    }),
  );
  if (result.status === "posted") {
    deps.log.info(
      {
        request: requestId,
        absorbedMsats: result.absorbedMsats,
        returnedMsats: result.returnedMsats,
        creditedMsats: result.creditedMsats,
        seq: result.grant?.seq,
      },
      "job settled",
    );
    if (result.grant) {
      deps.onGrant?.(result.absorbedMsats);
      deps.onQueued(outboxIds);
    }
  } else if (result.status === "not_processing" && result.request.state === "awaiting-payment") {
    deps.log.warn({ request: requestId }, "a result arrived for a job that is not paid yet; not settled");
  }
  return result;
}

/**
 * A payment the backend confirmed: marks the request paid (a partial offer's
 * reservation is extended), closes the invoice and queues the `processing` feedback,
 * all in one transaction. `atMs` is when the payment settled.
 */
export function applyPayment(deps: SettlementDeps, p: { requestId: string; paymentHash: string; amountMsats: number; atMs: number }): PaidResult {
  const now = deps.nowMs();
  const result = deps.ledger.markPaid(p.requestId, { paidMsats: p.amountMsats, paymentRef: p.paymentHash, paidAtMs: p.atMs }, now, (db, req) => {
    markInvoicePaid(db, p.paymentHash, now);
    const meta = getRequestMeta(db, p.requestId);
    const target: ReplyTarget = {
      requestId: p.requestId,
      customer: req.pubkey,
      relayHint: meta?.relayHint ?? "",
      encryption: meta?.encryption ?? "none",
      expiresAtSec: Math.ceil((req.expiresAtMs ?? now + 600_000) / 1000),
    };
    const nowSec = Math.floor(now / 1000);
    const tpl = processingFeedback(target, { text: "payment received; the job is being processed" }, Math.min(nowSec, target.expiresAtSec - 1));
    const ev = signEvent(encryptTemplateFor(tpl, target, deps.secretKey), deps.secretKey);
    enqueue(db, { requestId: p.requestId, purpose: "feedback-paid", event: ev, relays: replyRelaysFor(deps, meta?.replyRelays ?? []), nowMs: now });
    deps.onGoSignal?.(db, req, now);
  });
  if (result.status === "paid") {
    deps.log.info({ request: p.requestId, paidMsats: p.amountMsats }, "payment received");
    deps.onQueued();
  } else if (result.status !== "already_paid") {
    // The money arrived but the offer is gone (expired, cancelled) or short: the
    // operator has to refund by hand; stop watching the invoice either way.
    deps.ledger.tx(() => markInvoicePaid(deps.ledger.db, p.paymentHash, now, { onlyIfUnpaid: true }));
    deps.log.warn({ request: p.requestId, paymentHash: p.paymentHash, status: result.status }, "payment for a request that cannot take it: refund by hand");
  }
  return result;
}

/**
 * The operator fails a job (`dvm-gate fail`): the reservation is voided and the customer
 * is told with `error` feedback, queued in the same transaction. (A worker's own error
 * feedback and a customer's deletion need no word from us: the customer already knows.)
 */
export function failJob(deps: SettlementDeps, requestId: string, reason: string): FailResult {
  const now = deps.nowMs();
  const result = deps.ledger.fail(requestId, `operator: ${reason}`, now, (db, r) => {
    if (r.status !== "voided") return;
    const meta = getRequestMeta(db, requestId);
    const target: ReplyTarget = {
      requestId,
      customer: r.request.pubkey,
      relayHint: meta?.relayHint ?? "",
      encryption: meta?.encryption ?? "none",
      // The reply is about a finished matter: let relays drop it after a day.
      expiresAtSec: Math.ceil(now / 1000) + 86_400,
    };
    const tpl = errorFeedback(target, `job failed: ${reason}`, Math.floor(now / 1000));
    const ev = signEvent(encryptTemplateFor(tpl, target, deps.secretKey), deps.secretKey);
    enqueue(db, { requestId, purpose: "feedback-error", event: ev, relays: replyRelaysFor(deps, meta?.replyRelays ?? []), nowMs: now });
  });
  if (result.status === "voided") {
    deps.log.info({ request: requestId, returnedMsats: result.returnedMsats }, "failed by the operator: voided, customer told");
    warnIfPaid(deps, result);
    deps.onQueued();
  }
  return result;
}

/**
 * dvm-gate never sends money: a paid job that will not be done needs a refund by hand
 * (unless it was paid from the prepaid balance, which the ledger refunded itself).
 */
export function warnIfPaid(deps: Pick<SettlementDeps, "log">, result: FailResult): void {
  if (result.status === "voided" && result.refundedToBalanceMsats > 0)
    deps.log.info({ request: result.request.requestId, refundedToBalanceMsats: result.refundedToBalanceMsats }, "balance debit refunded to the balance");
  else if (result.status === "voided" && result.request.paidMsats > 0)
    deps.log.warn(
      { request: result.request.requestId, customer: result.request.pubkey, paidMsats: result.request.paidMsats, paymentRef: result.request.paymentRef },
      "a paid job was voided: refund the customer by hand",
    );
}
