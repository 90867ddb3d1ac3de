// The one interface every invoice backend (dev, nwc, lnbits) implements. Payment is
// believed only from `lookupInvoice`, the backend's own answer; `onPaymentHint`
// (NIP-47 notifications, webhooks, zap receipts) is only a trigger to look up sooner.
// No method is ever called inside a database transaction.

export interface InvoiceRequest {
  amountMsats: number;
  description: string;
  expirySec: number;
  /** The job request this invoice is for (lets a backend tag or dedupe). */
  requestId: string;
}

export interface IssuedInvoice {
  bolt11: string;
  paymentHash: string;
  expiresAtMs: number;
}

export type InvoiceState = { state: "pending" } | { state: "settled"; amountMsats: number; settledAtMs: number } | { state: "expired" };

export interface PaymentBackend {
  readonly name: "dev" | "nwc" | "lnbits";
  createInvoice(req: InvoiceRequest): Promise<IssuedInvoice>;
  lookupInvoice(paymentHash: string): Promise<InvoiceState>;
  /** Subscribe to hints that a payment may have arrived; returns an unsubscribe. */
  onPaymentHint(cb: (paymentHash: string) => void): () => void;
  close(): Promise<void>;
}

export class PaymentBackendError extends Error {
  override name = "PaymentBackendError";
}
