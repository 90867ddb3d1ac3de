// LNbits over its REST API: create with POST /api/v1/payments, believe payment only
// from GET /api/v1/payments/{hash} → paid. LNbits speaks whole sats, so a charge that is
// not a whole number of sats is refused rather than rounded. Hints come from polling the
// invoices this instance created (bounded), since LNbits webhooks need a public URL.
import type { Logger } from "pino";
import { isMsats } from "../util/money.js";
import { decodeBolt11 } from "./bolt11.js";
import { PaymentBackendError, type InvoiceRequest, type InvoiceState, type IssuedInvoice, type PaymentBackend } from "./types.js";
import { HEX64 } from "../util/hex.js";

export interface LnbitsOptions {
  url: string;
  invoiceKey: string;
  log?: Logger;
  /** Per HTTP request (default 15 s). */
  timeoutMs?: number;
  /** How often open invoices are looked up for hints (default 2 s). */
  pollMs?: number;
  /** Most invoices tracked for hints; the oldest are dropped past this. */
  maxTracked?: number;
  nowMs?: () => number;
}

interface Tracked {
  amountMsats: number;
  expiresAtMs: number;
}

const MAX_ERROR_DETAIL_CHARS = 200;

/** The URL and key checks of the constructor, without a backend (`start` runs them before it creates anything). */
export function checkLnbitsOptions(opts: { url: string; invoiceKey: string }): URL {
  let url: URL;
  try {
    url = new URL(opts.url);
  } catch {
    throw new PaymentBackendError("payments.lnbits.url: not a URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new PaymentBackendError("payments.lnbits.url: must be http:// or https://");
  if (!opts.invoiceKey) throw new PaymentBackendError("payments.lnbits.invoiceKey: empty");
  return url;
}

export class LnbitsBackend implements PaymentBackend {
  readonly name = "lnbits" as const;
  private readonly baseUrl: string;
  private readonly invoiceKey: string;
  private readonly timeoutMs: number;
  private readonly pollMs: number;
  private readonly maxTracked: number;
  private readonly nowMs: () => number;
  private readonly log: Logger | undefined;
  private readonly open = new Map<string, Tracked>();
  private readonly hintCallbacks = new Set<(paymentHash: string) => void>();
  private pollTimer: NodeJS.Timeout | null = null;
  private polling = false;
  private closed = false;

  constructor(opts: LnbitsOptions) {
    const url = checkLnbitsOptions(opts);
    this.baseUrl = url.toString().replace(/\/+$/, "");
    this.invoiceKey = opts.invoiceKey;
    this.timeoutMs = opts.timeoutMs ?? 15_000;
    this.pollMs = opts.pollMs ?? 2_000;
    this.maxTracked = opts.maxTracked ?? 1_000;
    this.nowMs = opts.nowMs ?? Date.now;
    this.log = opts.log;
  }

  async createInvoice(req: InvoiceRequest): Promise<IssuedInvoice> {
    this.assertOpen();
    if (!isMsats(req.amountMsats) || req.amountMsats === 0) throw new PaymentBackendError(`invoice amount must be whole millisats ≥ 1, got ${req.amountMsats}`);
    if (req.amountMsats % 1000 !== 0)
      throw new PaymentBackendError(`LNbits invoices are in whole sats: ${req.amountMsats} msats is not a whole number of sats (set prices in whole sats)`);
    const body = { out: false, amount: req.amountMsats / 1000, memo: req.description, expiry: req.expirySec };
    const res = (await this.call("POST", "/api/v1/payments", body)) as Record<string, unknown>;
    const bolt11 = typeof res.bolt11 === "string" ? res.bolt11 : typeof res.payment_request === "string" ? res.payment_request : null;
    if (!bolt11) throw new PaymentBackendError("LNbits answered without an invoice (no bolt11 or payment_request)");
    const decoded = decodeBolt11(bolt11);
    if (typeof res.payment_hash === "string" && res.payment_hash.toLowerCase() !== decoded.paymentHash)
      throw new PaymentBackendError("LNbits answered a payment_hash that is not its invoice's");
    if (decoded.amountMsats !== req.amountMsats)
      throw new PaymentBackendError(`LNbits issued an invoice for ${decoded.amountMsats ?? "any amount"} msats instead of ${req.amountMsats}`);
    this.track(decoded.paymentHash, { amountMsats: req.amountMsats, expiresAtMs: decoded.expiresAtMs });
    return { bolt11, paymentHash: decoded.paymentHash, expiresAtMs: decoded.expiresAtMs };
  }

  async lookupInvoice(paymentHash: string): Promise<InvoiceState> {
    this.assertOpen();
    const hash = paymentHash.toLowerCase();
    if (!HEX64.test(hash)) throw new PaymentBackendError("payment hash must be 64 hex characters");
    const res = (await this.call("GET", `/api/v1/payments/${hash}`)) as { paid?: unknown; details?: Record<string, unknown> };
    const known = this.open.get(hash);
    if (res.paid === true) {
      const reported = res.details?.amount;
      // LNbits reports incoming amounts in msats; fall back to what we asked for.
      const amountMsats = isMsats(reported) && reported > 0 ? reported : known?.amountMsats;
      if (amountMsats === undefined) throw new PaymentBackendError(`LNbits says ${hash} is paid but gives no amount`);
      this.open.delete(hash);
      return { state: "settled", amountMsats, settledAtMs: this.nowMs() };
    }
    if (res.paid !== false && res.paid !== undefined) throw new PaymentBackendError("LNbits answered a lookup without a boolean paid field");
    const status = res.details?.status;
    if (status === "expired" || status === "failed" || (known && this.nowMs() >= known.expiresAtMs)) {
      this.open.delete(hash);
      return { state: "expired" };
    }
    return { state: "pending" };
  }

  onPaymentHint(cb: (paymentHash: string) => void): () => void {
    this.assertOpen();
    this.hintCallbacks.add(cb);
    if (!this.pollTimer) {
      this.pollTimer = setInterval(() => void this.poll(), this.pollMs);
      this.pollTimer.unref();
    }
    return () => {
      this.hintCallbacks.delete(cb);
      if (this.hintCallbacks.size === 0 && this.pollTimer) {
        clearInterval(this.pollTimer);
        this.pollTimer = null;
      }
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.hintCallbacks.clear();
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = null;
  }

  private assertOpen(): void {
    if (this.closed) throw new PaymentBackendError("LNbits backend is closed");
  }

  private track(hash: string, t: Tracked): void {
    this.open.set(hash, t);
    while (this.open.size > this.maxTracked) {
      const oldest = this.open.keys().next().value;
      if (oldest === undefined) break;
      this.open.delete(oldest);
    }
  }

  /** One pass over the open invoices at a time: a slow LNbits never piles up requests. */
  private async poll(): Promise<void> {
    if (this.polling || this.closed) return;
    this.polling = true;
    try {
      for (const hash of [...this.open.keys()]) {
        if (this.closed || this.hintCallbacks.size === 0) break;
        let state: InvoiceState;
        try {
          state = await this.lookupInvoice(hash);
        } catch (err) {
          this.log?.warn({ err: (err as Error).message }, "lnbits: lookup for hints failed");
          break; // LNbits is down or refusing: try the lot again next tick
        }
        if (state.state !== "settled") continue;
        for (const cb of [...this.hintCallbacks]) {
          try {
            cb(hash);
          } catch {
            /* a subscriber's bug must not stop hints for the others */
          }
        }
      }
    } finally {
      this.polling = false;
    }
  }

  private async call(method: "GET" | "POST", path: string, body?: unknown): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(this.baseUrl + path, {
        method,
        headers: { "X-Api-Key": this.invoiceKey, ...(body ? { "Content-Type": "application/json" } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      const e = err as Error;
      if (e.name === "TimeoutError" || e.name === "AbortError")
        throw new PaymentBackendError(`LNbits did not answer ${method} ${path} within ${this.timeoutMs} ms`);
      throw new PaymentBackendError(`LNbits unreachable at ${this.baseUrl}: ${describeFetchError(e)}`);
    }
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw new PaymentBackendError(`LNbits answer to ${method} ${path} could not be read: ${(err as Error).message}`);
    }
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      /* an error page: reported below by status */
    }
    if (!res.ok) {
      const detail = typeof (json as { detail?: unknown } | null)?.detail === "string" ? (json as { detail: string }).detail : text;
      const hint = res.status === 401 || res.status === 403 ? " (check payments.lnbits.invoiceKey)" : "";
      throw new PaymentBackendError(`LNbits answered ${res.status} to ${method} ${path}: ${detail.slice(0, MAX_ERROR_DETAIL_CHARS)}${hint}`);
    }
    if (typeof json !== "object" || json === null) throw new PaymentBackendError(`LNbits answered ${method} ${path} with something that is not a JSON object`);
    return json;
  }
}

function describeFetchError(e: Error): string {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? e.message;
}
