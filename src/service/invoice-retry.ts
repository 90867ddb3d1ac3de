// When the gate may next ask its wallet for an invoice after a failure (issue 13: a
// wallet that refused got ~50 calls a second for one job). Pure: the schedule, the
// bound and the backend-wide breaker rule; the state lives in the ledger (outbox row
// `invoice_attempts` / `next_invoice_at_ms`, table `invoice_backend_state`), so a
// restart keeps the backoff instead of resetting it into a burst.

/** First retry after this long; each further one waits twice as long… */
export const INVOICE_RETRY_BASE_MS = 5_000;
/** …up to this. */
export const INVOICE_RETRY_MAX_MS = 5 * 60_000;
/** Jitter adds up to this fraction of the step, never subtracts: the step is a floor. */
export const INVOICE_RETRY_JITTER = 0.2;
/**
 * Calls per job before the gate gives up and answers the customer with an `error`
 * (reservation voided): at 0, 5, 15, 35, 75, 155 and 315 s (plus jitter), so a wallet
 * that restarts within about 5 min still invoices, inside the default 600 s offer. The
 * gate also gives up early when the next attempt could not come before the offer ends.
 */
export const MAX_INVOICE_ATTEMPTS = 7;
/** Consecutive failed calls (any jobs) after which the backend as a whole is backed off. */
export const BACKEND_TRIP_FAILURES = 3;

/**
 * The wait after the `failures`-th consecutive failure (1-based): 5 s, 10 s, 20 s, …
 * capped at 5 min, plus 0–20 % jitter so that many jobs failing together spread out.
 */
export function invoiceRetryDelayMs(failures: number, random: () => number = Math.random): number {
  const step = Math.min(INVOICE_RETRY_MAX_MS, INVOICE_RETRY_BASE_MS * 2 ** Math.min(Math.max(failures, 1) - 1, 30));
  return step + Math.floor(random() * step * INVOICE_RETRY_JITTER);
}

/**
 * The backend's consecutive-failure count after one more failure. Calls made while the
 * breaker was closed run in parallel (a pass's batch), so a backend that is down fails
 * them all at once: together they only reach the trip point. Each failed probe (a call
 * made while the breaker was open) is one more step of backoff.
 */
export function backendFailuresAfter(failures: number, probe: boolean): number {
  return probe ? Math.max(failures, BACKEND_TRIP_FAILURES) + 1 : Math.min(failures + 1, BACKEND_TRIP_FAILURES);
}

/** The backend-wide wait once the breaker is open: the job schedule, counted from the trip. */
export function backendRetryDelayMs(failures: number, random: () => number = Math.random): number {
  return invoiceRetryDelayMs(failures - BACKEND_TRIP_FAILURES + 1, random);
}
