// `nip90` backend (SPEC §11): an existing, unmodified NIP-90 DVM on its own relays. The
// gate publishes the job as its own request (signed by the gate, `p` = the upstream,
// the decrypted `i`/`param`/`output` tags, `relays` = those relays), follows the
// upstream's feedback and result for it, and hands the result's content back; the job
// runner turns it into the gate's own result for the customer. An encrypted customer
// request is sent on in the clear, to these relays only (docs/BACKENDS.md says so).
import { AbstractRelay } from "nostr-tools/abstract-relay";
import type { Event } from "nostr-tools/pure";
import { websocketImplementation } from "../relay/ws.js";
import { readFeedback } from "../events/feedback.js";
import { signEvent, toVerifiedEvent } from "../events/verify.js";
import { abortReason, shortReason, type Backend, type BackendJob, type BackendResult, type RunOptions } from "./types.js";

export const UPSTREAM_ASKS_PAYMENT = "the upstream DVM asks the gate to pay: serve the gate's pubkey free there";
const CONNECT_TIMEOUT_MS = 5000;

export interface Nip90Settings {
  relays: string[];
  /** The upstream DVM's pubkey (hex). */
  pubkey: string;
  /** The gate's key: the upstream sees the gate as its customer. */
  secretKey: Uint8Array;
  nowMs?: () => number;
}

export class Nip90Backend implements Backend {
  readonly type = "nip90";
  private readonly relays: AbstractRelay[];
  private readonly nowMs: () => number;

  constructor(private readonly s: Nip90Settings) {
    this.relays = s.relays.map((url) => new AbstractRelay(url, { verifyEvent: () => true, websocketImplementation }));
    this.nowMs = s.nowMs ?? (() => Date.now());
  }

  async run(job: BackendJob, opts: RunOptions): Promise<BackendResult> {
    const connected = await this.connected();
    if (opts.signal.aborted) return { ok: false, reason: abortReason(opts.signal) };
    if (connected.length === 0) return { ok: false, reason: `nip90: cannot reach any upstream relay (${this.s.relays.join(", ")})` };
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
      const subs: { close: () => void }[] = [];
      const finish = (r: BackendResult, deleteUpstream: boolean) => {
        if (done) return;
        done = true;
        opts.signal.removeEventListener("abort", onAbort);
        for (const s of subs) s.close();
        if (deleteUpstream) void this.deleteRequest(request, connected);
        resolve(r);
      };
      const onAbort = () => finish({ ok: false, reason: abortReason(opts.signal) }, true);
      opts.signal.addEventListener("abort", onAbort, { once: true });
      const onEvent = (raw: Event) => {
        const ev = toVerifiedEvent(raw);
        if (!ev || ev.pubkey !== this.s.pubkey || !ev.tags.some((t) => t[0] === "e" && t[1] === request.id)) return;
        if (ev.kind === job.kind + 1000) return finish({ ok: true, content: ev.content }, false);
        if (ev.kind !== 7000) return;
        const fb = readFeedback(ev);
        if (typeof fb === "string") return;
        if (fb.status === "error") finish({ ok: false, reason: shortReason("upstream error", fb.text || "error") }, false);
        else if (fb.status === "payment-required") finish({ ok: false, reason: UPSTREAM_ASKS_PAYMENT }, true);
        else if (fb.status === "processing" || fb.status === "partial") opts.onProgress?.(fb.status, fb.text);
      };
      // Subscribed before publishing, so an upstream that answers at once is not missed.
      for (const r of connected)
        subs.push(r.subscribe([{ kinds: [job.kind + 1000, 7000], authors: [this.s.pubkey], "#e": [request.id] }], { onevent: onEvent }));
      void Promise.allSettled(connected.map((r) => r.publish(request))).then((outcomes) => {
        if (!outcomes.some((o) => o.status === "fulfilled")) {
          const why = outcomes.map((o) => (o.status === "rejected" ? String((o.reason as Error)?.message ?? o.reason) : "")).join("; ");
          finish({ ok: false, reason: shortReason("nip90: no upstream relay took the request", why) }, false);
        }
      });
    });
  }

  async close(): Promise<void> {
    for (const r of this.relays) r.close();
  }

  private async connected(): Promise<AbstractRelay[]> {
    const tries = await Promise.allSettled(this.relays.map(async (r) => (r.connected ? r : (await r.connect({ timeout: CONNECT_TIMEOUT_MS }), r))));
    return tries.flatMap((t) => (t.status === "fulfilled" ? [t.value] : []));
  }

  /** NIP-09: the gate withdraws its upstream request (the customer cancelled, or the deadline passed). */
  private async deleteRequest(request: Event, relays: AbstractRelay[]): Promise<void> {
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
    await Promise.allSettled(relays.map((r) => r.publish(del)));
  }
}
