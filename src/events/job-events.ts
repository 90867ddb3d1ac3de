// Events that resolve a reservation (SPEC §2 settlement): a worker's job result posts
// it, a worker's `error` feedback or the customer's kind 5 deletion voids it. This file
// only says what an event claims and that its author signed it; whether the claim
// applies (the request exists, the deleter is its customer, the result kind matches the
// request kind) is for the caller, which has the ledger.
import { EventDeletion, JobFeedback } from "nostr-tools/kinds";
import type { Event } from "nostr-tools/pure";
import { toVerifiedEvent } from "./verify.js";
import { readFeedback } from "./feedback.js";
import { parseWireMsats } from "../util/money.js";
import { HEX64 } from "../util/hex.js";

export const DELETION_KIND = EventDeletion;
/** A deletion naming more events than this is read for its first ones only. */
export const MAX_DELETED_IDS = 500;

export type SettlementSignal =
  | { type: "result"; requestId: string; requestKind: number; worker: string; actualMsats: number | null; event: Event }
  | { type: "worker-error"; requestId: string; worker: string; reason: string; event: Event }
  | { type: "deletion"; requestIds: string[]; author: string; event: Event };

/**
 * What a result, feedback or deletion event means for settlement, or why it means
 * nothing. `gateSecretKey` lets the gate read the status of encrypted feedback that it
 * signed itself (when the gate's key is also a worker); other workers' encrypted
 * feedback is unreadable to the gate and ignored.
 */
export function readSettlementSignal(
  ev: unknown,
  workers: ReadonlySet<string>,
  opts: { gateSecretKey?: Uint8Array } = {},
): SettlementSignal | { ignore: string } {
  const event = toVerifiedEvent(ev);
  if (event === null) return { ignore: "invalid: bad id or signature" };
  if (event.kind === DELETION_KIND) return readDeletion(event);
  if (event.kind >= 6000 && event.kind <= 6999) {
    if (!workers.has(event.pubkey)) return { ignore: "result from a pubkey that is not a worker" };
    return readResult(event);
  }
  if (event.kind === JobFeedback) {
    if (!workers.has(event.pubkey)) return { ignore: "feedback from a pubkey that is not a worker" };
    return readWorkerError(event, opts.gateSecretKey);
  }
  return { ignore: `kind ${event.kind} is not a settlement signal` };
}

function readResult(event: Event): SettlementSignal | { ignore: string } {
  const requestId = event.tags.find((t) => t[0] === "e")?.[1];
  if (requestId === undefined || !HEX64.test(requestId)) return { ignore: "result without a valid e tag" };
  // A worker's amount is its stated cost; one we cannot read is treated as not stated,
  // which settles at the reserved amount (never more).
  const amount = event.tags.find((t) => t[0] === "amount")?.[1];
  const actualMsats = parseWireMsats(amount);
  return { type: "result", requestId, requestKind: event.kind - 1000, worker: event.pubkey, actualMsats, event };
}

function readWorkerError(event: Event, gateSecretKey: Uint8Array | undefined): SettlementSignal | { ignore: string } {
  const fb = readFeedback(event, gateSecretKey ? { secretKey: gateSecretKey } : {});
  if (typeof fb === "string") return { ignore: fb };
  if (fb.status !== "error") return { ignore: `feedback status ${fb.status} does not settle a job` };
  return { type: "worker-error", requestId: fb.requestId, worker: event.pubkey, reason: fb.text || "error", event };
}

function readDeletion(event: Event): SettlementSignal | { ignore: string } {
  const ids: string[] = [];
  for (const t of event.tags) {
    if (ids.length >= MAX_DELETED_IDS) break;
    const id = t[1];
    if (t[0] === "e" && id !== undefined && HEX64.test(id) && !ids.includes(id)) ids.push(id);
  }
  if (ids.length === 0) return { ignore: "deletion names no event" };
  return { type: "deletion", requestIds: ids, author: event.pubkey, event };
}
