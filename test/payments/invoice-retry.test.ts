// A wallet that fails to issue invoices is asked again on the documented schedule
// (src/service/invoice-retry.ts, docs/PAYMENTS.md), not hammered: real protocol peers
// (a NIP-47 wallet service on a real relay, an LNbits-shaped HTTP server) that refuse
// make_invoice, answer 401 or issue an invoice for the wrong amount count the calls,
// and the gate's clock is the test's: it stands still while the test lets the service
// run an issuing pass, and moves one tick at a time, so every call is dated exactly.
// The service's own 5 s timer does nothing but start such a pass; it is set out of the
// way here so that only the test's passes (and the one each decision starts) run.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateSecretKey } from "nostr-tools/pure";
import { ledgerSettings } from "../../src/cli/context.js";
import { Ledger } from "../../src/ledger/ledger.js";
import { grantSigner } from "../../src/events/grant-event.js";
import { decodeBolt11 } from "../../src/payments/bolt11.js";
import { devPay } from "../../src/payments/dev.js";
import { LnbitsBackend } from "../../src/payments/lnbits.js";
import { NwcBackend } from "../../src/payments/nwc.js";
import type { PaymentBackend } from "../../src/payments/types.js";
import { GateService } from "../../src/service/gate-service.js";
import {
  BACKEND_TRIP_FAILURES,
  INVOICE_RETRY_BASE_MS,
  INVOICE_RETRY_JITTER,
  INVOICE_RETRY_MAX_MS,
  MAX_INVOICE_ATTEMPTS,
  backendFailuresAfter,
  invoiceRetryDelayMs,
} from "../../src/service/invoice-retry.js";
import { startEmbeddedRelay, type EmbeddedRelay } from "../../src/peers/embedded-relay.js";
import { makeTmpDir, type TmpDir } from "../helpers/tmp.js";
import { startFakeLnbits, type FakeLnbits } from "../helpers/lnbits-server.js";
import { startNwcWalletService, type NwcWalletService } from "../helpers/nwc-wallet-service.js";
import { Customer, FAST, SAT, e2eConfig, startGate, testLogger, waitFor } from "../e2e/harness.js";
import { verifyLedger } from "../../src/ledger/verify.js";

const TICK_MS = 1_000;
/** The documented floor of the wait after the n-th consecutive failure (1-based). */
const stepMs = (n: number) => Math.min(INVOICE_RETRY_MAX_MS, INVOICE_RETRY_BASE_MS * 2 ** (n - 1));

interface Wallet {
  calls: () => number;
  backend: () => PaymentBackend;
  fail: () => void;
  recover: () => void;
  close: () => Promise<void>;
}

type Failing = "nwc refuses make_invoice" | "nwc issues the wrong amount" | "lnbits answers 401" | "lnbits issues the wrong amount";

async function startWallet(kind: Failing, relayUrl: string): Promise<Wallet> {
  if (kind.startsWith("nwc")) {
    const svc: NwcWalletService = await startNwcWalletService({ relayUrl, encryption: ["nip44_v2"] });
    const backends: NwcBackend[] = [];
    return {
      calls: () => svc.requests.filter((r) => r.method === "make_invoice").length,
      backend: () => {
        const b = new NwcBackend({ uri: svc.uri, requestTimeoutMs: 5_000, connectTimeoutMs: 2_000 });
        backends.push(b);
        return b;
      },
      fail: () =>
        svc.setBehaviour(
          kind === "nwc refuses make_invoice"
            ? { errors: { make_invoice: { code: "QUOTA_EXCEEDED", message: "daily invoice quota reached" } } }
            : { amountOffsetMsats: 1 },
        ),
      recover: () => svc.setBehaviour({ errors: null, amountOffsetMsats: 0 }),
      close: async () => {
        for (const b of backends) await b.close();
        await svc.close();
      },
    };
  }
  const lnbits: FakeLnbits = await startFakeLnbits();
  const backends: LnbitsBackend[] = [];
  return {
    calls: () => lnbits.createCount(),
    backend: () => {
      const b = new LnbitsBackend({ url: lnbits.url, invoiceKey: lnbits.invoiceKey, timeoutMs: 5_000 });
      backends.push(b);
      return b;
    },
    fail: () => lnbits.setMode(kind === "lnbits answers 401" ? "unauthorized" : "wrong-amount"),
    recover: () => lnbits.setMode("ok"),
    close: async () => {
      for (const b of backends) await b.close();
      await lnbits.close();
    },
  };
}

/** A gate on `tmp`'s database with the given backend and the test's clock. */
async function openGate(tmp: TmpDir, relayUrl: string, secretKey: Uint8Array, backend: PaymentBackend, clock: { t: number }, invoiceExpirySec = 3600) {
  const cfg = e2eConfig(tmp, [relayUrl], { payments: { backend: "dev", dev: { enabled: true }, invoiceExpirySec } });
  const nowMs = () => clock.t;
  const ledger = Ledger.open(cfg.database.path, ledgerSettings(cfg), { nowMs: nowMs(), synchronous: "NORMAL", grantSigner: grantSigner(secretKey) });
  const service = new GateService({ cfg, ledger, backend, log: testLogger(), secretKey, opts: { ...FAST, paymentPollMs: 3_600_000, nowMs } });
  await service.start();
  return {
    ledger,
    service,
    stop: async () => {
      await service.stop();
      ledger.close();
    },
  };
}

/**
 * Moves the clock a tick at a time; after each tick one issuing pass runs to its end
 * (its wallet calls answered), and the calls it made are dated with the tick.
 */
async function tickUntil(
  gate: { service: GateService },
  clock: { t: number },
  calls: () => number,
  times: number[],
  done: () => boolean,
  maxMs: number,
): Promise<void> {
  const until = clock.t + maxMs;
  while (!done()) {
    if (clock.t >= until) throw new Error(`not done within ${maxMs} ms of service time; calls at ${JSON.stringify(times)}`);
    clock.t += TICK_MS;
    await gate.service.invoicing.issuePending();
    for (let n = calls() - times.length; n > 0; n--) times.push(clock.t);
  }
}

/** Each gap between calls is at least the documented step, and at most it plus jitter and a tick. */
function expectSchedule(times: number[], t0: number): void {
  expect(times[0]).toBe(t0);
  for (let i = 1; i < times.length; i++) {
    const gap = times[i]! - times[i - 1]!;
    expect(gap, `gap before call ${i + 1} of ${JSON.stringify(times.map((t) => t - t0))}`).toBeGreaterThanOrEqual(stepMs(i));
    expect(gap).toBeLessThanOrEqual(stepMs(i) * (1 + INVOICE_RETRY_JITTER) + TICK_MS);
  }
}

describe("invoice retry schedule", () => {
  it("is 5 s doubling to 5 min, jitter adding at most a fifth and never subtracting", () => {
    const floors = [5, 10, 20, 40, 80, 160, 300, 300, 300].map((s) => s * 1000);
    floors.forEach((floor, i) => {
      expect(invoiceRetryDelayMs(i + 1, () => 0)).toBe(floor);
      expect(invoiceRetryDelayMs(i + 1, () => 0.999999)).toBeLessThan(floor * 1.2);
      expect(invoiceRetryDelayMs(i + 1, () => 0.999999)).toBeGreaterThan(floor * 1.19);
    });
  });

  it("counts a batch of parallel failures as reaching the trip point, and each failed probe as one step", () => {
    let f = 0;
    for (let i = 0; i < 50; i++) f = backendFailuresAfter(f, false);
    expect(f).toBe(BACKEND_TRIP_FAILURES);
    expect(backendFailuresAfter(f, true)).toBe(BACKEND_TRIP_FAILURES + 1);
  });
});

describe("invoice creation against a failing wallet", () => {
  let relay: EmbeddedRelay;
  beforeAll(async () => {
    relay = await startEmbeddedRelay();
  });
  afterAll(async () => {
    await relay.close();
  });

  const failing: Failing[] = ["nwc refuses make_invoice", "nwc issues the wrong amount", "lnbits answers 401", "lnbits issues the wrong amount"];
  it.each(failing)("%s: one call per retry interval per job, backing off; the job is answered once it recovers", { timeout: 60_000 }, async (kind) => {
    const tmp = makeTmpDir("dvm-gate-invoice-retry-");
    const wallet = await startWallet(kind, relay.url);
    const clock = { t: Date.now() };
    const gate = await openGate(tmp, relay.url, generateSecretKey(), wallet.backend(), clock);
    const cust = await new Customer().connect([relay.url]);
    try {
      wallet.fail();
      const t0 = clock.t;
      const req = cust.request(gate.service.gatePubkey);
      await cust.publish(req);
      await waitFor(() => gate.ledger.getRequest(req.id), 8000, "decision");
      await gate.service.invoicing.issuePending();
      const times: number[] = Array.from({ length: wallet.calls() }, () => t0);
      expect(times.length).toBe(1);

      // Three refusals (at 0, ≥5 s, ≥15 s), then the wallet is fixed: the fourth call (≥35 s) gets the invoice.
      await tickUntil(gate, clock, wallet.calls, times, () => times.length >= 3, 60_000);
      wallet.recover();
      await tickUntil(gate, clock, wallet.calls, times, () => times.length >= 4, 60_000);
      expectSchedule(times, t0);

      const fb = await cust.waitFeedback(req.id, "payment-required");
      expect(decodeBolt11(fb.bolt11!).amountMsats).toBe(10 * SAT);
      expect(gate.ledger.getRequest(req.id)?.state).toBe("awaiting-payment");
      // Answered: half a minute more of passes, each run to its end, asks nothing more.
      for (let i = 0; i < 30; i++) {
        clock.t += TICK_MS;
        await gate.service.invoicing.issuePending();
      }
      expect(wallet.calls()).toBe(4);
      expect(verifyLedger(gate.ledger.db)).toEqual([]);
    } finally {
      cust.close();
      await gate.stop();
      await wallet.close();
      tmp.remove();
    }
  });

  it("gives up after the documented number of calls: error feedback, reservation voided, no more calls", { timeout: 60_000 }, async () => {
    const tmp = makeTmpDir("dvm-gate-invoice-retry-");
    const wallet = await startWallet("lnbits answers 401", relay.url);
    const clock = { t: Date.now() };
    const gate = await openGate(tmp, relay.url, generateSecretKey(), wallet.backend(), clock);
    const cust = await new Customer().connect([relay.url]);
    try {
      wallet.fail();
      gate.ledger.setTier(cust.pubkey, "established", clock.t);
      const pendingBefore = gate.ledger.totals().pendingMsats;
      const t0 = clock.t;
      const req = cust.request(gate.service.gatePubkey, { kind: 5051 }); // 70 sats, budget 50: partial
      await cust.publish(req);
      await waitFor(() => gate.ledger.getRequest(req.id), 8000, "decision");
      expect(gate.ledger.getRequest(req.id)).toMatchObject({ decision: "partial", absorbMsats: 50 * SAT });
      expect(gate.ledger.totals().pendingMsats).toBe(pendingBefore + 50 * SAT);
      await gate.service.invoicing.issuePending();
      const times: number[] = Array.from({ length: wallet.calls() }, () => t0);

      await tickUntil(gate, clock, wallet.calls, times, () => gate.ledger.getRequest(req.id)?.state === "failed", 600_000);
      expect(times.length).toBe(MAX_INVOICE_ATTEMPTS);
      expectSchedule(times, t0);
      const fb = await cust.waitFeedback(req.id, "error");
      expect(fb.text).toMatch(/invoice/);
      expect(gate.ledger.totals().pendingMsats).toBe(pendingBefore);

      // A minute more of passes, each run to its end: not one more call.
      for (let i = 0; i < 60; i++) {
        clock.t += TICK_MS;
        await gate.service.invoicing.issuePending();
      }
      expect(wallet.calls()).toBe(MAX_INVOICE_ATTEMPTS);
      expect(verifyLedger(gate.ledger.db)).toEqual([]);
    } finally {
      cust.close();
      await gate.stop();
      await wallet.close();
      tmp.remove();
    }
  });

  it("gives up early when the next attempt could not come before the offer ends", { timeout: 60_000 }, async () => {
    const tmp = makeTmpDir("dvm-gate-invoice-retry-");
    const wallet = await startWallet("nwc refuses make_invoice", relay.url);
    const clock = { t: Date.now() };
    const gate = await openGate(tmp, relay.url, generateSecretKey(), wallet.backend(), clock, 60);
    const cust = await new Customer().connect([relay.url]);
    try {
      wallet.fail();
      const t0 = clock.t;
      const req = cust.request(gate.service.gatePubkey);
      await cust.publish(req);
      await waitFor(() => gate.ledger.getRequest(req.id), 8000, "decision");
      await gate.service.invoicing.issuePending();
      const times: number[] = Array.from({ length: wallet.calls() }, () => t0);
      // A 60 s offer: calls at 0, ≥5, ≥15 and ≥35 s; the next (≥75 s) would be too late.
      await tickUntil(gate, clock, wallet.calls, times, () => gate.ledger.getRequest(req.id)?.state === "failed", 60_000);
      expectSchedule(times, t0);
      expect(times.length).toBe(4);
      await cust.waitFeedback(req.id, "error");
    } finally {
      cust.close();
      await gate.stop();
      await wallet.close();
      tmp.remove();
    }
  });

  it("a restart keeps the backoff: the restarted gate waits out the stored next attempt", { timeout: 60_000 }, async () => {
    const tmp = makeTmpDir("dvm-gate-invoice-retry-");
    const wallet = await startWallet("nwc refuses make_invoice", relay.url);
    const clock = { t: Date.now() };
    const secretKey = generateSecretKey();
    let gate = await openGate(tmp, relay.url, secretKey, wallet.backend(), clock);
    const cust = await new Customer().connect([relay.url]);
    try {
      wallet.fail();
      const t0 = clock.t;
      const req = cust.request(gate.service.gatePubkey);
      await cust.publish(req);
      await waitFor(() => gate.ledger.getRequest(req.id), 8000, "decision");
      await gate.service.invoicing.issuePending();
      const times: number[] = Array.from({ length: wallet.calls() }, () => t0);
      await tickUntil(gate, clock, wallet.calls, times, () => times.length >= 2, 60_000);

      // Restarted a tick after the second failure: the next call is still ≥10 s after it.
      await gate.stop();
      clock.t += TICK_MS;
      gate = await openGate(tmp, relay.url, secretKey, wallet.backend(), clock);
      await gate.service.invoicing.issuePending();
      for (let n = wallet.calls() - times.length; n > 0; n--) times.push(clock.t);
      await tickUntil(gate, clock, wallet.calls, times, () => times.length >= 3, 60_000);
      wallet.recover();
      await tickUntil(gate, clock, wallet.calls, times, () => times.length >= 4, 60_000);
      expectSchedule(times, t0);
      await cust.waitFeedback(req.id, "payment-required");
    } finally {
      cust.close();
      await gate.stop();
      await wallet.close();
      tmp.remove();
    }
  });

  it("a wallet down for every job is probed by one call per interval, and all jobs are answered when it is back", { timeout: 60_000 }, async () => {
    const JOBS = 5;
    const tmp = makeTmpDir("dvm-gate-invoice-retry-");
    const wallet = await startWallet("lnbits answers 401", relay.url);
    const clock = { t: Date.now() };
    const gate = await openGate(tmp, relay.url, generateSecretKey(), wallet.backend(), clock);
    const custs = await Promise.all(Array.from({ length: JOBS }, () => new Customer().connect([relay.url])));
    try {
      wallet.fail();
      const t0 = clock.t;
      const reqs = custs.map((c) => c.request(gate.service.gatePubkey));
      await Promise.all(custs.map((c, i) => c.publish(reqs[i]!)));
      await waitFor(() => reqs.every((r) => gate.ledger.getRequest(r.id)), 8000, "decisions");
      await gate.service.invoicing.issuePending();
      // Each job asked at most once so far; once BACKEND_TRIP_FAILURES calls in a row
      // failed, the rest wait for the breaker (requests may arrive in separate passes).
      const first = wallet.calls();
      expect(first).toBeGreaterThanOrEqual(BACKEND_TRIP_FAILURES);
      expect(first).toBeLessThanOrEqual(JOBS);
      const times: number[] = [];
      const later = () => wallet.calls() - first;
      // After that the backend as a whole is backed off: probes at ≥5, ≥10, ≥20 s apart, whatever the jobs.
      await tickUntil(gate, clock, later, times, () => times.length >= 3, 120_000);
      for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(stepMs(i + 1));
      expect(times[0]! - t0).toBeGreaterThanOrEqual(stepMs(1));
      expect(times.length).toBeLessThan(JOBS * 3);

      wallet.recover();
      await tickUntil(gate, clock, later, times, () => reqs.every((r) => hasInvoice(gate.ledger, r.id)), 120_000);
      for (const [i, c] of custs.entries()) await c.waitFeedback(reqs[i]!.id, "payment-required");
      // The failed calls, then one that worked per job.
      expect(wallet.calls()).toBe(first + 3 + JOBS);
    } finally {
      for (const c of custs) c.close();
      await gate.stop();
      await wallet.close();
      tmp.remove();
    }
  });
});

function hasInvoice(ledger: Ledger, requestId: string): boolean {
  return ledger.db.prepare("SELECT 1 FROM invoices WHERE request_id = ?").get(requestId) !== undefined;
}

describe("lookup answers kept for the expiry sweep", () => {
  it("are dropped once an invoice is paid", { timeout: 30_000 }, async () => {
    const relay = await startEmbeddedRelay();
    const gate = await startGate({ relays: [relay.url] });
    const cust = await new Customer().connect([relay.url]);
    try {
      const req = cust.request(gate.pubkey);
      await cust.publish(req);
      const fb = await cust.waitFeedback(req.id, "payment-required");
      // The service's 200 ms poll looks the open invoice up and keeps its "pending".
      await waitFor(() => gate.service.invoicing.trackedLookups === 1, 8000, "one lookup kept");
      expect(devPay(gate.ledger.db, fb.bolt11!, Date.now()).status).toBe("paid");
      await cust.waitFeedback(req.id, "processing");
      expect(gate.ledger.getRequest(req.id)?.state).toBe("processing");
      await waitFor(() => gate.service.invoicing.trackedLookups === 0, 8000, "paid invoice's lookup dropped");
    } finally {
      cust.close();
      await gate.stop();
      await relay.close();
      gate.tmp.remove();
    }
  });
});
