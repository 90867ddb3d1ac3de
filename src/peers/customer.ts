// A NIP-90 customer: publishes a job request (built by signJobRequest in
// events/job-request.ts), and collects the gate's feedback (kind 7000) and the worker's result (request
// kind + 1000) for that request, decrypting replies to encrypted requests. Used by
// `dvm-gate request`, the tests and the end-to-end benchmark.
import { AbstractRelay } from "nostr-tools/abstract-relay";
import { JobFeedback } from "nostr-tools/kinds";
import type { Event } from "nostr-tools/pure";
import { websocketImplementation } from "../relay/ws.js";
import { decryptFrom } from "../events/encryption.js";
import { toVerifiedEvent } from "../events/verify.js";
import { parseWireMsats } from "../util/money.js";

export const FEEDBACK_KIND = JobFeedback;

export interface JobReply {
  type: "feedback" | "result";
  id: string;
  pubkey: string;
  kind: number;
  createdAt: number;
  /** NIP-90 status of feedback; "result" for results. */
  status: string;
  statusInfo: string | null;
  amountMsats: number | null;
  bolt11: string | null;
  freeTier: { label: string; absorbedMsats: number; chargeMsats: number } | null;
  /** `["balance", "<msats left>"]`: paid from the prepaid balance (SPEC §12). */
  balanceMsats: number | null;
  /** Plaintext content (decrypted when the reply was encrypted). */
  content: string;
  encrypted: boolean;
  /** The reply was encrypted but could not be decrypted with the customer's key. */
  undecryptable?: boolean;
  event: Event;
}

/**
 * Reads a feedback or result event for `requestId`; null when it is about another
 * request or is not a reply at all. Encrypted replies: the content is decrypted and,
 * when it holds a JSON tag list (how NIP-90 encrypts request params), those tags count too.
 */
export function parseReply(ev: Event, request: { id: string; kind: number }, secretKey: Uint8Array): JobReply | null {
  const type = ev.kind === FEEDBACK_KIND ? "feedback" : ev.kind === request.kind + 1000 ? "result" : null;
  if (!type) return null;
  if (!ev.tags.some((t) => t[0] === "e" && t[1] === request.id)) return null;
  const encrypted = ev.tags.some((t) => t[0] === "encrypted");
  let content = ev.content;
  let tags = ev.tags;
  let undecryptable = false;
  if (encrypted && ev.content !== "") {
    const plain = decryptFrom(ev.content, secretKey, ev.pubkey);
    if (plain) {
      content = plain.plaintext;
      const inner = tryTagList(plain.plaintext);
      if (inner) tags = [...ev.tags, ...inner];
    } else {
      undecryptable = true;
    }
  }
  const tag = (name: string) => tags.find((t) => t[0] === name);
  const st = tag("status");
  const amount = tag("amount");
  const ft = tag("free-tier");
  // NDK spells it payment_required; the NIP (and the gate) payment-required.
  const status = type === "result" ? "result" : (st?.[1] ?? "unknown").replace("payment_required", "payment-required");
  return {
    type,
    id: ev.id,
    pubkey: ev.pubkey,
    kind: ev.kind,
    createdAt: ev.created_at,
    status,
    statusInfo: type === "feedback" ? (st?.[2] ?? null) : null,
    amountMsats: parseWireMsats(amount?.[1]),
    bolt11: amount?.[2] || null,
    freeTier: ft && ft[1] ? { label: ft[1], absorbedMsats: parseWireMsats(ft[2]) ?? 0, chargeMsats: parseWireMsats(ft[3]) ?? 0 } : null,
    balanceMsats: parseWireMsats(tag("balance")?.[1]),
    content,
    encrypted,
    ...(undecryptable ? { undecryptable } : {}),
    event: ev,
  };
}

function tryTagList(text: string): string[][] | null {
  if (!text.startsWith("[")) return null;
  try {
    const v = JSON.parse(text) as unknown;
    return Array.isArray(v) && v.every((t) => Array.isArray(t) && t.every((x) => typeof x === "string")) ? (v as string[][]) : null;
  } catch {
    return null;
  }
}

/** The default stop: a result, or a status after which nothing more will come. */
export function defaultStop(r: JobReply): boolean {
  return r.type === "result" || r.status === "error" || r.status === "success";
}

export interface PublishOutcome {
  url: string;
  ok: boolean;
  message: string;
}

export interface CustomerSession {
  /** One entry per relay, once the publish attempt on it settled. */
  published: PublishOutcome[];
  replies: JobReply[];
  /** True when `stopWhen` matched; false when the wait ran out. */
  stopped: boolean;
}

export interface RunRequestOptions {
  relayUrls: string[];
  request: Event;
  secretKey: Uint8Array;
  waitMs: number;
  stopWhen?: (r: JobReply) => boolean;
  onReply?: (r: JobReply) => void;
  /** Called once the request was published (to at least one relay) or refused by all. */
  onPublished?: (outcomes: PublishOutcome[]) => void;
  connectTimeoutMs?: number;
}

export class RelayConnectError extends Error {
  override name = "RelayConnectError";
}

/** Most replies kept per request: a gate or relay flooding us cannot grow memory. */
const MAX_REPLIES = 1000;

/**
 * Subscribes for replies first (so a fast gate cannot answer before we listen), then
 * publishes the request to every relay and collects replies until `stopWhen` matches or
 * `waitMs` passes. Resolves early, with `stopped: false`, when no relay accepted it.
 */
export async function runRequest(opts: RunRequestOptions): Promise<CustomerSession> {
  const stopWhen = opts.stopWhen ?? defaultStop;
  const request = opts.request;
  const relays: AbstractRelay[] = [];
  const session: CustomerSession = { published: [], replies: [], stopped: false };
  const seen = new Set<string>();
  let finish: () => void = () => {};
  const done = new Promise<void>((resolve) => (finish = resolve));
  try {
    await Promise.all(
      opts.relayUrls.map(async (url) => {
        const relay = new AbstractRelay(url, { verifyEvent: () => true, websocketImplementation });
        relays.push(relay);
        try {
          await relay.connect({ timeout: opts.connectTimeoutMs ?? 5000 });
        } catch (err) {
          throw new RelayConnectError(`cannot connect to ${url}: ${String((err as Error)?.message ?? err)}`);
        }
      }),
    );
    const onEvent = (raw: Event) => {
      if (seen.has(raw.id) || session.replies.length >= MAX_REPLIES) return;
      const ev = toVerifiedEvent(raw);
      if (!ev) return;
      seen.add(ev.id);
      const reply = parseReply(ev, request, opts.secretKey);
      if (!reply) return;
      session.replies.push(reply);
      opts.onReply?.(reply);
      if (stopWhen(reply)) {
        session.stopped = true;
        finish();
      }
    };
    for (const relay of relays) relay.subscribe([{ kinds: [FEEDBACK_KIND, request.kind + 1000], "#e": [request.id] }], { onevent: onEvent });

    session.published = await Promise.all(
      relays.map((relay) =>
        relay.publish(request).then(
          (message) => ({ url: relay.url, ok: true, message }),
          (err: unknown) => ({ url: relay.url, ok: false, message: String((err as Error)?.message ?? err) }),
        ),
      ),
    );
    opts.onPublished?.(session.published);
    if (!session.published.some((p) => p.ok)) return session;
    const timer = setTimeout(finish, opts.waitMs);
    await done;
    clearTimeout(timer);
    return session;
  } finally {
    for (const r of relays) r.close();
  }
}
