// End-to-end set-up: real relays on 127.0.0.1 (the embedded relay library), a gate
// service on a temp SQLite file with the dev wallet, customers with real keys that
// publish signed requests and read the gate's replies back from the relays.
import { pino, type Logger } from "pino";
import { AbstractRelay } from "nostr-tools/abstract-relay";
import { finalizeEvent, generateSecretKey, getPublicKey, type Event } from "nostr-tools/pure";
import WebSocket from "ws";
import type { Filter } from "nostr-tools/filter";
import type { EmbeddedRelay } from "../../src/peers/embedded-relay.js";
import { ledgerSettings } from "../../src/cli/context.js";
import { parseConfig, type RuntimeConfig } from "../../src/config/load.js";
import { Ledger } from "../../src/ledger/ledger.js";
import { verifyLedger } from "../../src/ledger/verify.js";
import { grantSigner } from "../../src/events/grant-event.js";
import { GateService, type GateServiceTuning } from "../../src/service/gate-service.js";
import { DevWalletBackend } from "../../src/payments/dev.js";
import { readFeedback, type Feedback } from "../../src/events/feedback.js";
import { makeTmpDir, type TmpDir } from "../helpers/tmp.js";
import { createBackends } from "../../src/backends/index.js";

export const SAT = 1000;

export function testLogger(): Logger {
  return pino({ level: process.env.E2E_LOG ?? "silent" });
}

export function e2eConfig(dir: TmpDir, relays: string[], over: Record<string, unknown> = {}, workerPubkeys: string[] = []): RuntimeConfig {
  const raw = {
    nostr: { relays },
    database: { path: dir.file("gate.sqlite"), synchronous: "NORMAL" },
    jobs: { kinds: { "5050": { priceSats: 10 }, "5051": { priceSats: 70 } }, workerPubkeys, timeoutSec: 600, maxRequestAgeSec: 900 },
    freeTier: { budgetsSats: { new: 0, established: 50, trusted: 200, elite: 1000 }, poolInitialSats: 10_000, poolCreditPct: 10, maxPendingPerPubkey: 3 },
    payments: { backend: "dev", dev: { enabled: true }, invoiceExpirySec: 120 },
    http: { enabled: false },
    log: { level: "silent" },
    ...over,
  };
  return parseConfig(raw, { env: {}, baseDir: dir.path, sourcePath: dir.file("config.json") });
}

/**
 * For tests about something else that send one customer more gated requests than the
 * invoice limits of SPEC §6 allow (they have tests of their own, floods.test.ts).
 */
export const UNLIMITED_INVOICES = {
  payments: { backend: "dev", dev: { enabled: true }, invoiceExpirySec: 120, maxOpenInvoicesPerPubkey: 1000, newTierInvoicesPerMinute: 1_000_000 },
};

export interface Gate {
  tmp: TmpDir;
  cfg: RuntimeConfig;
  ledger: Ledger;
  backend: DevWalletBackend;
  service: GateService;
  secretKey: Uint8Array;
  pubkey: string;
  /** Moves the service's clock forward. */
  advance: (ms: number) => void;
  nowMs: () => number;
  verify: () => string[];
  stop: () => Promise<void>;
}

export const FAST: GateServiceTuning = {
  expirySweepMs: 200,
  paymentPollMs: 200,
  publishPollMs: 100,
  poolStatusMinIntervalMs: 200,
  reconnectBaseMs: 100,
  reconnectMaxMs: 1000,
};

export async function startGate(opts: {
  relays: string[];
  over?: Record<string, unknown>;
  workers?: string[];
  tuning?: GateServiceTuning;
  tmp?: TmpDir;
  secretKey?: Uint8Array;
  /** Start with the service's clock this far ahead of real time (a restart after a deadline). */
  offsetMs?: number;
  /** Runs on the opened ledger before the service starts (e.g. a tier its backlog needs). */
  beforeStart?: (ledger: Ledger, nowMs: number) => void;
  /** The service's logger (silent unless E2E_LOG is set). */
  log?: Logger;
}): Promise<Gate> {
  const tmp = opts.tmp ?? makeTmpDir("dvm-gate-e2e-");
  const cfg = e2eConfig(tmp, opts.relays, opts.over, opts.workers);
  let offsetMs = opts.offsetMs ?? 0;
  const nowMs = () => Date.now() + offsetMs;
  const secretKey = opts.secretKey ?? generateSecretKey();
  const ledger = Ledger.open(cfg.database.path, ledgerSettings(cfg), { nowMs: nowMs(), synchronous: "NORMAL", grantSigner: grantSigner(secretKey) });
  opts.beforeStart?.(ledger, nowMs());
  const backend = new DevWalletBackend(ledger.db, { nowMs, pollMs: 50 });
  // Kinds with jobs.kinds.K.backend run through the gate's own job runner (SPEC §11).
  const log = opts.log ?? testLogger();
  const built = createBackends(cfg, { secretKey, chargeUnitMsats: 1, nowMs, log });
  const service = new GateService({
    cfg,
    ledger,
    backend,
    log,
    secretKey,
    opts: { ...FAST, ...opts.tuning, nowMs },
    backends: built.backends,
    priceOf: built.priceOf,
  });
  await service.start();
  return {
    tmp,
    cfg,
    ledger,
    backend,
    service,
    secretKey,
    pubkey: getPublicKey(secretKey),
    advance: (ms) => {
      offsetMs += ms;
    },
    nowMs,
    verify: () => verifyLedger(ledger.db).map((v) => JSON.stringify(v)),
    stop: async () => {
      await service.stop();
      await built.close();
      await backend.close();
      ledger.close();
    },
  };
}

/** A customer: a real key, connected to relays, collecting what the gate says to it. */
export class Customer {
  readonly secretKey: Uint8Array;
  readonly pubkey: string;
  readonly received: Event[] = [];
  private relays: AbstractRelay[] = [];

  constructor(secretKey: Uint8Array = generateSecretKey()) {
    this.secretKey = secretKey;
    this.pubkey = getPublicKey(secretKey);
  }

  async connect(urls: string[]): Promise<this> {
    for (const url of urls) {
      const r = new AbstractRelay(url, { verifyEvent: () => true, websocketImplementation: WebSocket as never });
      await r.connect({ timeout: 5000 });
      r.subscribe([{ kinds: [7000], "#p": [this.pubkey] }], { onevent: (ev) => this.received.push(ev) });
      this.relays.push(r);
    }
    return this;
  }

  request(gatePubkey: string, opts: { kind?: number; input?: string; tags?: string[][]; createdAt?: number } = {}): Event {
    const tags = [["i", opts.input ?? "hello", "text"], ["p", gatePubkey], ...(opts.tags ?? [])];
    return finalizeEvent({ kind: opts.kind ?? 5050, created_at: opts.createdAt ?? Math.floor(Date.now() / 1000), tags, content: "" }, this.secretKey);
  }

  async publish(ev: Event, relayIndexes?: number[]): Promise<void> {
    const rs = relayIndexes ? relayIndexes.map((i) => this.relays[i]!) : this.relays;
    await Promise.all(rs.map((r) => r.publish(ev)));
  }

  /** Feedback for one request, parsed (decrypted with this customer's key when needed). */
  feedback(requestId: string): Feedback[] {
    const out: Feedback[] = [];
    for (const ev of this.received) {
      const fb = readFeedback(ev, { secretKey: this.secretKey });
      if (typeof fb !== "string" && fb.requestId === requestId) out.push(fb);
    }
    return out;
  }

  async waitFeedback(requestId: string, status: string, timeoutMs = 8000): Promise<Feedback> {
    const fb = await waitFor(() => this.feedback(requestId).find((f) => f.status === status), timeoutMs, `${status} feedback for ${requestId.slice(0, 8)}`);
    return fb;
  }

  close(): void {
    for (const r of this.relays) r.close();
    this.relays = [];
  }
}

/** Reads events from a relay (one REQ until EOSE). */
export async function fetchEvents(url: string, filter: Filter, timeoutMs = 5000): Promise<Event[]> {
  const r = new AbstractRelay(url, { verifyEvent: () => true, websocketImplementation: WebSocket as never });
  await r.connect({ timeout: 5000 });
  try {
    return await new Promise<Event[]>((resolve) => {
      const got: Event[] = [];
      const sub = r.subscribe([filter], {
        onevent: (ev) => got.push(ev),
        oneose: () => {
          sub.close();
          resolve(got);
        },
        eoseTimeout: timeoutMs,
      });
    });
  } finally {
    r.close();
  }
}

export async function waitForAsync<T>(probe: () => Promise<T | undefined | null | false>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function waitFor<T>(probe: () => T | undefined | null | false, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
