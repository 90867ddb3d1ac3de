// NIP-47 Nostr Wallet Connect: make_invoice and lookup_invoice as encrypted kind 23194
// requests, answered by kind 23195; payment_received notifications (23197 NIP-44,
// 23196 NIP-04) are only hints. nostr-tools gives the URI parser, the pool and the
// ciphers; its NWC helper builds only NIP-04 pay_invoice, so the protocol is ours.
//
// One long-lived subscription carries every answer and notification for our key;
// requests wait for their answer (matched by the `e` tag) with a bounded timeout.
import type { Logger } from "pino";
import { nip04, nip44, nip47 } from "nostr-tools";
import type { AbstractSimplePool, SubCloser } from "nostr-tools/abstract-pool";
import { SafePool } from "../relay/safe-pool.js";
import * as kinds from "nostr-tools/kinds";
import { finalizeEvent, getPublicKey, verifyEvent, type Event } from "nostr-tools/pure";
import { isMsats } from "../util/money.js";
import { decodeBolt11 } from "./bolt11.js";
import { PaymentBackendError, type InvoiceRequest, type InvoiceState, type IssuedInvoice, type PaymentBackend } from "./types.js";
import { HEX64 } from "../util/hex.js";

export const NWC_INFO_KIND = kinds.NWCWalletInfo;
export const NWC_REQUEST_KIND = kinds.NWCWalletRequest;
export const NWC_RESPONSE_KIND = kinds.NWCWalletResponse;
export const NWC_NOTIFICATION_NIP04_KIND = 23196;
export const NWC_NOTIFICATION_NIP44_KIND = 23197;

export type NwcEncryption = "nip44_v2" | "nip04";

export interface NwcConnection {
  walletPubkey: string;
  relays: string[];
  secretKey: Uint8Array;
}

/** Parses a `nostr+walletconnect://` URI; errors never echo the URI (it holds a secret). */
export function parseNwcUri(uri: string): NwcConnection {
  let parsed;
  try {
    parsed = nip47.parseConnectionString(uri.trim());
  } catch {
    throw new PaymentBackendError("payments.nwc.uri: not a nostr+walletconnect://<wallet pubkey>?relay=…&secret=… URI (value not shown)");
  }
  const walletPubkey = parsed.pubkey.replace(/^\/+/, "").toLowerCase();
  if (!HEX64.test(walletPubkey)) throw new PaymentBackendError("payments.nwc.uri: the wallet pubkey must be 64 hex characters (value not shown)");
  if (!HEX64.test(parsed.secret.toLowerCase())) throw new PaymentBackendError("payments.nwc.uri: secret must be 64 hex characters (value not shown)");
  const relays = parsed.relays.filter((r) => /^wss?:\/\/\S+$/.test(r));
  if (relays.length === 0 || relays.length !== parsed.relays.length)
    throw new PaymentBackendError("payments.nwc.uri: every relay must be a ws:// or wss:// URL");
  return { walletPubkey, relays, secretKey: Uint8Array.from(Buffer.from(parsed.secret, "hex")) };
}

export interface NwcOptions {
  uri: string;
  log?: Logger;
  /** How long a request waits for the wallet's answer (default 15 s). */
  requestTimeoutMs?: number;
  /** How long to wait for the relays and the wallet's info event (default 5 s). */
  connectTimeoutMs?: number;
  /** Most requests awaiting an answer at once. */
  maxInFlight?: number;
}

interface WalletInfo {
  methods: Set<string>;
  encryption: NwcEncryption;
}

interface Pending {
  method: string;
  resolve: (result: Record<string, unknown>) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** Notification ids remembered to drop the same one arriving from several relays. */
const MAX_SEEN_NOTIFICATIONS = 1_000;

export class NwcBackend implements PaymentBackend {
  readonly name = "nwc" as const;
  private readonly conn: NwcConnection;
  private readonly ourPubkey: string;
  private readonly pool: AbstractSimplePool;
  private readonly requestTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly maxInFlight: number;
  private readonly log: Logger | undefined;
  private ready: Promise<WalletInfo> | null = null;
  private sub: SubCloser | null = null;
  private readonly pending = new Map<string, Pending>();
  private readonly hintCallbacks = new Set<(paymentHash: string) => void>();
  private readonly seenNotifications = new Set<string>();
  private closed = false;

  constructor(opts: NwcOptions) {
    this.conn = parseNwcUri(opts.uri);
    this.ourPubkey = getPublicKey(this.conn.secretKey);
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 15_000;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 5_000;
    this.maxInFlight = opts.maxInFlight ?? 64;
    this.log = opts.log;
    // SafePool: no wallet relay's frames can turn into an unhandled rejection (see relay/safe-relay.ts).
    this.pool = new SafePool({ verifyEvent, maxWaitForConnection: this.connectTimeoutMs, enableReconnect: true });
  }

  async createInvoice(req: InvoiceRequest): Promise<IssuedInvoice> {
    if (!isMsats(req.amountMsats) || req.amountMsats === 0) throw new PaymentBackendError(`invoice amount must be whole millisats ≥ 1, got ${req.amountMsats}`);
    const result = await this.request("make_invoice", { amount: req.amountMsats, description: req.description, expiry: req.expirySec });
    if (typeof result.invoice !== "string") throw new PaymentBackendError("NWC wallet answered make_invoice without an invoice");
    const decoded = decodeBolt11(result.invoice);
    if (typeof result.payment_hash === "string" && result.payment_hash.toLowerCase() !== decoded.paymentHash)
      throw new PaymentBackendError("NWC wallet answered a payment_hash that is not its invoice's");
    if (decoded.amountMsats !== req.amountMsats)
      throw new PaymentBackendError(`NWC wallet issued an invoice for ${decoded.amountMsats ?? "any amount"} msats instead of ${req.amountMsats}`);
    return { bolt11: result.invoice, paymentHash: decoded.paymentHash, expiresAtMs: decoded.expiresAtMs };
  }

  async lookupInvoice(paymentHash: string): Promise<InvoiceState> {
    const hash = paymentHash.toLowerCase();
    if (!HEX64.test(hash)) throw new PaymentBackendError("payment hash must be 64 hex characters");
    const result = await this.request("lookup_invoice", { payment_hash: hash });
    if (typeof result.payment_hash === "string" && result.payment_hash.toLowerCase() !== hash)
      throw new PaymentBackendError("NWC wallet answered lookup_invoice about another payment hash");
    // Only "settled" is payment: "accepted" (held HTLC) can still fail, and wallets
    // without a state field are treated as not yet paid rather than guessed at.
    if (result.state === "settled") {
      if (!isMsats(result.amount) || result.amount === 0) throw new PaymentBackendError("NWC wallet says settled but gives no amount in msats");
      const settledAtMs = typeof result.settled_at === "number" && Number.isSafeInteger(result.settled_at) ? result.settled_at * 1000 : Date.now();
      return { state: "settled", amountMsats: result.amount, settledAtMs };
    }
    if (result.state === "expired" || result.state === "failed") return { state: "expired" };
    return { state: "pending" };
  }

  onPaymentHint(cb: (paymentHash: string) => void): () => void {
    this.hintCallbacks.add(cb);
    // Notifications arrive on the shared subscription: open it now, not at the first invoice.
    this.connect().catch((err) => this.log?.warn({ err: (err as Error).message }, "nwc: not connected yet, will retry at the next request"));
    return () => this.hintCallbacks.delete(cb);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.hintCallbacks.clear();
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new PaymentBackendError("NWC backend closed"));
      this.pending.delete(id);
    }
    this.sub?.close();
    this.sub = null;
    this.pool.destroy();
  }

  /** Info event, then the subscription; a failure is forgotten so the next call retries. */
  private connect(): Promise<WalletInfo> {
    if (this.closed) return Promise.reject(new PaymentBackendError("NWC backend closed"));
    if (!this.ready) {
      this.ready = this.doConnect().catch((err) => {
        this.ready = null;
        throw err;
      });
    }
    return this.ready;
  }

  private async doConnect(): Promise<WalletInfo> {
    const { walletPubkey, relays } = this.conn;
    const infoEvent = await this.pool.get(relays, { kinds: [NWC_INFO_KIND], authors: [walletPubkey] }, { maxWait: this.connectTimeoutMs });
    if (!infoEvent)
      throw new PaymentBackendError(
        `NWC wallet ${walletPubkey.slice(0, 12)}… has no info event (kind ${NWC_INFO_KIND}) on ${relays.join(", ")}: is the wallet service running?`,
      );
    const info = parseInfo(infoEvent);
    if (this.closed) throw new PaymentBackendError("NWC backend closed");
    if (!this.sub) {
      await new Promise<void>((resolve) => {
        const bound = setTimeout(resolve, this.connectTimeoutMs);
        this.sub = this.pool.subscribeMany(
          relays,
          {
            kinds: [NWC_RESPONSE_KIND, NWC_NOTIFICATION_NIP04_KIND, NWC_NOTIFICATION_NIP44_KIND],
            authors: [walletPubkey],
            "#p": [this.ourPubkey],
            since: Math.floor(Date.now() / 1000) - 60,
          },
          {
            onevent: (e) => this.onEvent(e),
            oneose: () => {
              clearTimeout(bound);
              resolve();
            },
          },
        );
      });
    }
    this.log?.info({ wallet: walletPubkey, encryption: info.encryption, methods: [...info.methods] }, "nwc: wallet connected");
    return info;
  }

  private async request(method: string, params: Record<string, unknown>): Promise<Record<string, unknown>> {
    const info = await this.connect();
    if (!info.methods.has(method))
      throw new PaymentBackendError(`NWC wallet does not offer ${method} (it offers: ${[...info.methods].join(" ") || "nothing"})`);
    if (this.pending.size >= this.maxInFlight) throw new PaymentBackendError(`NWC: ${this.maxInFlight} requests already waiting for the wallet`);
    const { walletPubkey, relays, secretKey } = this.conn;
    const plaintext = JSON.stringify({ method, params });
    const nowSec = Math.floor(Date.now() / 1000);
    const event = finalizeEvent(
      {
        kind: NWC_REQUEST_KIND,
        created_at: nowSec,
        content: encrypt(info.encryption, secretKey, walletPubkey, plaintext),
        tags: [
          ["p", walletPubkey],
          ["encryption", info.encryption],
          // A wallet must not act on a request we have stopped waiting for.
          ["expiration", String(nowSec + Math.ceil(this.requestTimeoutMs / 1000))],
        ],
      },
      secretKey,
    );
    const answer = new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(event.id);
        reject(new PaymentBackendError(`NWC wallet did not answer ${method} within ${this.requestTimeoutMs} ms`));
      }, this.requestTimeoutMs);
      this.pending.set(event.id, { method, resolve, reject, timer });
    });
    try {
      await Promise.any(this.pool.publish(relays, event));
    } catch (err) {
      const p = this.pending.get(event.id);
      if (p) {
        clearTimeout(p.timer);
        this.pending.delete(event.id);
      }
      answer.catch(() => {});
      const reasons = err instanceof AggregateError ? err.errors.map((e) => String((e as Error)?.message ?? e)).join("; ") : String(err);
      throw new PaymentBackendError(`NWC: no relay accepted the ${method} request: ${reasons}`);
    }
    return answer;
  }

  private onEvent(e: Event): void {
    if (e.pubkey !== this.conn.walletPubkey) return;
    if (e.kind === NWC_RESPONSE_KIND) this.onResponse(e);
    else if (e.kind === NWC_NOTIFICATION_NIP44_KIND || e.kind === NWC_NOTIFICATION_NIP04_KIND) this.onNotification(e);
  }

  private onResponse(e: Event): void {
    const requestId = e.tags.find((t) => t[0] === "e")?.[1];
    const p = requestId ? this.pending.get(requestId) : undefined;
    if (!p || !requestId) return; // an answer to someone else, or one we stopped waiting for
    this.pending.delete(requestId);
    clearTimeout(p.timer);
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(decrypt(schemeOf(e.content), this.conn.secretKey, this.conn.walletPubkey, e.content)) as Record<string, unknown>;
      if (typeof body !== "object" || body === null) throw new Error("not an object");
    } catch {
      p.reject(new PaymentBackendError(`NWC wallet's answer to ${p.method} could not be decrypted or parsed`));
      return;
    }
    const error = body.error as { code?: unknown; message?: unknown } | null | undefined;
    if (error) {
      p.reject(new PaymentBackendError(`NWC wallet refused ${p.method}: ${String(error.code ?? "ERROR")}: ${String(error.message ?? "").slice(0, 300)}`));
      return;
    }
    if (body.result_type !== undefined && body.result_type !== p.method) {
      p.reject(new PaymentBackendError(`NWC wallet answered ${p.method} with a ${String(body.result_type).slice(0, 40)} result`));
      return;
    }
    const result = body.result;
    if (typeof result !== "object" || result === null) {
      p.reject(new PaymentBackendError(`NWC wallet answered ${p.method} without a result`));
      return;
    }
    p.resolve(result as Record<string, unknown>);
  }

  private onNotification(e: Event): void {
    if (this.seenNotifications.has(e.id)) return;
    this.seenNotifications.add(e.id);
    if (this.seenNotifications.size > MAX_SEEN_NOTIFICATIONS) {
      const oldest = this.seenNotifications.values().next().value;
      if (oldest !== undefined) this.seenNotifications.delete(oldest);
    }
    let body: { notification_type?: unknown; notification?: { payment_hash?: unknown } };
    try {
      const scheme: NwcEncryption = e.kind === NWC_NOTIFICATION_NIP44_KIND ? "nip44_v2" : "nip04";
      body = JSON.parse(decrypt(scheme, this.conn.secretKey, this.conn.walletPubkey, e.content));
    } catch {
      this.log?.warn({ id: e.id }, "nwc: undecryptable notification ignored");
      return;
    }
    const hash = body?.notification?.payment_hash;
    if (body?.notification_type !== "payment_received" || typeof hash !== "string" || !HEX64.test(hash.toLowerCase())) return;
    for (const cb of [...this.hintCallbacks]) {
      try {
        cb(hash.toLowerCase());
      } catch {
        /* a subscriber's bug must not stop hints for the others */
      }
    }
  }
}

function parseInfo(e: Event): WalletInfo {
  const methods = new Set(e.content.split(/\s+/).filter(Boolean));
  const tag = e.tags.find((t) => t[0] === "encryption");
  // No tag: a wallet from before NIP-44 support, which speaks NIP-04 only.
  const offered = tag ? (tag[1] ?? "").split(/\s+/).filter(Boolean) : ["nip04"];
  const encryption: NwcEncryption | null = offered.includes("nip44_v2") ? "nip44_v2" : offered.includes("nip04") ? "nip04" : null;
  if (!encryption) throw new PaymentBackendError(`NWC wallet offers no encryption we speak (it offers: ${offered.join(" ") || "none"})`);
  return { methods, encryption };
}

/** NIP-04 payloads carry "?iv="; NIP-44 payloads are plain base64. */
function schemeOf(content: string): NwcEncryption {
  return content.includes("?iv=") ? "nip04" : "nip44_v2";
}

export function encrypt(scheme: NwcEncryption, sk: Uint8Array, peer: string, plaintext: string): string {
  return scheme === "nip44_v2" ? nip44.encrypt(plaintext, nip44.getConversationKey(sk, peer)) : nip04.encrypt(sk, peer, plaintext);
}

export function decrypt(scheme: NwcEncryption, sk: Uint8Array, peer: string, payload: string): string {
  return scheme === "nip44_v2" ? nip44.decrypt(payload, nip44.getConversationKey(sk, peer)) : nip04.decrypt(sk, peer, payload);
}
