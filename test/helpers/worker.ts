// A test worker: a real key publishing real signed NIP-90 results and error feedback
// through a relay, as a DVM's worker process would. The gate believes it only because
// its pubkey is in `jobs.workerPubkeys`.
import { AbstractRelay } from "nostr-tools/abstract-relay";
import { finalizeEvent, generateSecretKey, getPublicKey, type Event } from "nostr-tools/pure";
import WebSocket from "ws";

export class TestWorker {
  readonly secretKey: Uint8Array;
  readonly pubkey: string;
  private relays: AbstractRelay[] = [];

  constructor(secretKey: Uint8Array = generateSecretKey()) {
    this.secretKey = secretKey;
    this.pubkey = getPublicKey(secretKey);
  }

  async connect(urls: string[]): Promise<this> {
    for (const url of urls) {
      const r = new AbstractRelay(url, { verifyEvent: () => true, websocketImplementation: WebSocket as never });
      await r.connect({ timeout: 5000 });
      this.relays.push(r);
    }
    return this;
  }

  /** A job result (kind = request kind + 1000); `amountMsats` states the actual cost. */
  async result(request: { id: string; kind: number; pubkey: string }, opts: { amountMsats?: number; content?: string } = {}): Promise<Event> {
    const tags = [
      ["e", request.id],
      ["p", request.pubkey],
    ];
    if (opts.amountMsats !== undefined) tags.push(["amount", String(opts.amountMsats)]);
    return this.publish(finalizeEvent({ kind: request.kind + 1000, created_at: nowSec(), tags, content: opts.content ?? "done" }, this.secretKey));
  }

  /** Kind 7000 `error` feedback for a request. */
  async error(request: { id: string; pubkey: string }, reason = "worker failed"): Promise<Event> {
    const tags = [
      ["status", "error", reason],
      ["e", request.id],
      ["p", request.pubkey],
    ];
    return this.publish(finalizeEvent({ kind: 7000, created_at: nowSec(), tags, content: "" }, this.secretKey));
  }

  async publish(ev: Event): Promise<Event> {
    await Promise.all(this.relays.map((r) => r.publish(ev)));
    return ev;
  }

  close(): void {
    for (const r of this.relays) r.close();
    this.relays = [];
  }
}

function nowSec(): number {
  return Math.floor(Date.now() / 1000);
}
