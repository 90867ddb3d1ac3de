// A toy NIP-90 worker for the demo and the tests: it waits for the gate's go signal
// (kind 7000 `processing` feedback signed by the gate), fetches the request it points
// at, and publishes a deterministic result (request kind + 1000) that settles the job.
// It is not a model: for text it answers the input reversed, saying it is a demo.
//
// Encrypted requests are answered only when the worker holds the key they were
// encrypted to (the demo's worker key is the gate's key): it then reads the encrypted
// go signal, the encrypted job, and encrypts the result back in the same scheme. A
// worker with another key cannot even see the status of such feedback, so it skips them.
import { AbstractRelay } from "nostr-tools/abstract-relay";
import { JobFeedback } from "nostr-tools/kinds";
import { finalizeEvent, getPublicKey, type Event } from "nostr-tools/pure";
import type { Filter } from "nostr-tools/filter";
import { websocketImplementation } from "../relay/ws.js";
import type { Logger } from "pino";
import { decryptFrom, encryptFor } from "../events/encryption.js";
import { toVerifiedEvent } from "../events/verify.js";
import type { Backend } from "../backends/types.js";
import { HEX64 } from "../util/hex.js";

export interface DemoWorkerOptions {
  relayUrls: string[];
  secretKey: Uint8Array;
  gatePubkey: string;
  kinds: number[];
  log: Logger;
}

/** Request ids remembered so each is answered once; the oldest are forgotten first. */
const MAX_REMEMBERED = 10_000;
/** Requests being fetched or answered at once; more go-signals than this are dropped (and logged). */
const MAX_IN_FLIGHT = 64;
const FETCH_TIMEOUT_MS = 5000;
/** Feedback older than this at start is history, not a go signal. */
const LOOKBACK_SEC = 60;
const MAX_OUTPUT_CHARS = 4000;

export const DEMO_PREFIX = "[dvm-gate demo worker, not a model] ";

/** The toy answer: every text input reversed, after a prefix that says what this is. */
export function demoOutput(inputs: string[]): string {
  const text = inputs.length > 0 ? inputs.join("\n") : "(no text input)";
  return DEMO_PREFIX + [...text].reverse().join("").slice(0, MAX_OUTPUT_CHARS);
}

/**
 * The demo's job as a built-in backend (SPEC §11): `npm start` runs kind 5050 through it
 * in the gate's own process, so a request becomes a result with nothing else running.
 */
export function demoBackend(): Backend {
  return {
    type: "demo",
    run: async (job) => ({ ok: true, content: demoOutput(job.inputs.filter((i) => i[1] === "text" || i[1] === undefined).map((i) => i[0] ?? "")) }),
  };
}

export async function startDemoWorker(opts: DemoWorkerOptions): Promise<{ close(): Promise<void> }> {
  const log = opts.log.child({ component: "demo-worker" });
  const workerPubkey = getPublicKey(opts.secretKey);
  const kinds = new Set(opts.kinds);
  const answered = new Set<string>();
  let inFlight = 0;
  let closed = false;

  if (opts.relayUrls.length === 0) throw new Error("demo worker: no relay to listen on");
  const relays = opts.relayUrls.map((url) => new AbstractRelay(url, { verifyEvent: () => true, websocketImplementation, enableReconnect: true }));
  const connected = await Promise.allSettled(relays.map((r) => r.connect({ timeout: 5000 })));
  const failed = connected.findIndex((c) => c.status === "rejected");
  if (failed >= 0) {
    for (const r of relays) r.close();
    throw new Error(`demo worker: cannot connect to ${opts.relayUrls[failed]}`);
  }

  const remember = (id: string) => {
    answered.add(id);
    if (answered.size > MAX_REMEMBERED) answered.delete(answered.values().next().value!);
  };

  /** The first event any relay has for the filter that `match` accepts, or null. */
  const fetchOne = (filter: Filter, match: (ev: Event) => boolean): Promise<Event | null> =>
    new Promise((resolve) => {
      let settled = false;
      let eoses = 0;
      const subs: { close: () => void }[] = [];
      const finish = (ev: Event | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        for (const s of subs) s.close();
        resolve(ev);
      };
      // Our own bound (not nostr-tools' eoseTimeout, whose timer outlives a closed
      // subscription and kept `start` alive for seconds after Ctrl-C).
      const timer = setTimeout(() => finish(null), FETCH_TIMEOUT_MS);
      for (const relay of relays)
        subs.push(
          relay.subscribe([filter], {
            onevent: (raw) => {
              const ev = toVerifiedEvent(raw);
              if (ev && match(ev)) finish(ev);
            },
            oneose: () => {
              if (++eoses === relays.length) finish(null);
            },
          }),
        );
    });

  const answer = async (requestId: string, customer: string) => {
    const request = await fetchOne({ ids: [requestId], limit: 1 }, (ev) => ev.id === requestId);
    if (!request) return log.warn({ requestId }, "go signal for a request no relay has; skipped");
    if (request.pubkey !== customer) return log.warn({ requestId }, "go signal names another customer than the request's author; skipped");
    if (!kinds.has(request.kind)) return log.info({ requestId, kind: request.kind }, "request kind not served by the demo worker; skipped");
    // The start-up look-back replays go signals a previous run already answered (a
    // restart within LOOKBACK_SEC): the relay, not this run's memory, says which.
    const done = await fetchOne(
      { kinds: [request.kind + 1000], authors: [workerPubkey], "#e": [requestId], limit: 1 },
      (ev) => ev.pubkey === workerPubkey && ev.tags.some((t) => t[0] === "e" && t[1] === requestId),
    );
    if (done) return log.info({ requestId, resultId: done.id }, "request already answered by this worker; skipped");

    let jobTags = request.tags;
    let scheme: "nip04" | "nip44" | null = null;
    if (request.tags.some((t) => t[0] === "encrypted")) {
      const plain = decryptFrom(request.content, opts.secretKey, request.pubkey);
      const inner = plain ? parseTags(plain.plaintext) : null;
      if (!plain || !inner) return log.info({ requestId }, "encrypted request not addressed to the worker's key; skipped");
      jobTags = inner;
      scheme = plain.scheme;
    }
    const iTags = jobTags.filter((t) => t[0] === "i");
    const output = demoOutput(iTags.filter((t) => t[2] === "text" || t[2] === undefined).map((t) => t[1] ?? ""));
    const tags: string[][] = [
      ["request", JSON.stringify(request)],
      ["e", requestId, relays[0]?.url ?? ""],
      ["p", request.pubkey],
    ];
    if (scheme) tags.push(["encrypted"]);
    else tags.push(...iTags);
    const content = scheme ? encryptFor(scheme, output, opts.secretKey, request.pubkey) : output;
    const result = finalizeEvent({ kind: request.kind + 1000, created_at: Math.floor(Date.now() / 1000), tags, content }, opts.secretKey);
    const outcomes = await Promise.allSettled(relays.map((r) => r.publish(result)));
    const accepted = outcomes.filter((o) => o.status === "fulfilled").length;
    if (accepted === 0) log.warn({ requestId, resultId: result.id }, "no relay accepted the demo result");
    else log.info({ requestId, resultId: result.id, relays: accepted }, "demo result published");
  };

  const onFeedback = (raw: Event) => {
    if (closed) return;
    const ev = toVerifiedEvent(raw);
    if (!ev || ev.pubkey !== opts.gatePubkey || ev.kind !== JobFeedback) return;
    const requestId = ev.tags.find((t) => t[0] === "e")?.[1];
    const customer = ev.tags.find((t) => t[0] === "p")?.[1];
    if (!requestId || !HEX64.test(requestId) || !customer || !HEX64.test(customer)) return;
    if (statusOf(ev, customer) !== "processing") return;
    if (answered.has(requestId)) return;
    if (inFlight >= MAX_IN_FLIGHT) return log.warn({ requestId }, "demo worker busy; go signal dropped");
    remember(requestId);
    inFlight++;
    answer(requestId, customer)
      .catch((err: unknown) => log.error({ requestId, err: String((err as Error)?.message ?? err) }, "demo worker failed"))
      .finally(() => inFlight--);
  };

  // Feedback to an encrypted request hides its status in the content (encrypted from the
  // gate to the customer); a worker holding the gate's key shares that conversation key.
  const statusOf = (ev: Event, customer: string): string | undefined => {
    if (!ev.tags.some((t) => t[0] === "encrypted")) return ev.tags.find((t) => t[0] === "status")?.[1];
    const plain = decryptFrom(ev.content, opts.secretKey, customer);
    return (plain ? parseTags(plain.plaintext) : null)?.find((t) => t[0] === "status")?.[1];
  };

  const sinceSec = Math.floor(Date.now() / 1000) - LOOKBACK_SEC;
  const subs = relays.map((relay) => relay.subscribe([{ kinds: [JobFeedback], authors: [opts.gatePubkey], since: sinceSec }], { onevent: onFeedback }));
  log.info({ worker: workerPubkey, gate: opts.gatePubkey, kinds: [...kinds], relays: opts.relayUrls }, "demo worker listening");

  return {
    async close() {
      closed = true;
      for (const s of subs) s.close();
      for (const r of relays) r.close();
    },
  };
}

function parseTags(text: string): string[][] | null {
  try {
    const v = JSON.parse(text) as unknown;
    return Array.isArray(v) && v.every((t) => Array.isArray(t) && t.every((x) => typeof x === "string")) ? (v as string[][]) : null;
  } catch {
    return null;
  }
}
