// Real grant histories for the audit tests: a real Ledger signing its grants with the
// gate's key (grantSigner), several customers and tiers, free and partial jobs, an
// operator credit, and the gate's real pool status event.
import { AbstractRelay } from "nostr-tools/abstract-relay";
import { finalizeEvent, generateSecretKey, getPublicKey, type Event } from "nostr-tools/pure";
import { WebSocket } from "ws";
import { parseConfig } from "../../src/config/load.js";
import { ledgerSettings } from "../../src/cli/context.js";
import { Ledger } from "../../src/ledger/ledger.js";
import { grantSigner } from "../../src/events/grant-event.js";
import { poolStatusTemplate } from "../../src/events/announce.js";
import type { Tier } from "../../src/policy/tiers.js";
import { randomBytes } from "node:crypto";

export const SAT = 1000;
export const HOUR_MS = 3_600_000;
export const T0_MS = 1_750_000_000_000;

export interface History {
  gateSk: Uint8Array;
  gatePubkey: string;
  grants: Event[];
  poolStatus: Event;
  ledger: Ledger;
  customers: string[];
}

const hex64 = () => randomBytes(32).toString("hex");

/**
 * Settles `jobs` through a real ledger. Budgets in the ledger are `ledgerBudgetsSats`
 * (the defaults unless given); the pool status event states `statusBudgetsSats` (the
 * same unless given: an honest gate publishes the budgets it enforces).
 */
export function makeHistory(
  dbPath: string,
  opts: {
    ledgerBudgetsSats?: Record<Tier, number>;
    statusBudgetsSats?: Record<Tier, number>;
    /** jobs.timeoutSec, for jobs that settle long after their decision. */
    timeoutSec?: number;
    /** `settleAtMs`: when the worker's result posts the job (default 500 ms after `atMs`). */
    jobs?: { tier: Tier; who: number; priceSats: number; atMs: number; paySats?: number; settleAtMs?: number }[];
  } = {},
): History {
  const gateSk = generateSecretKey();
  const gatePubkey = getPublicKey(gateSk);
  const cfg = parseConfig(
    {
      ...(opts.ledgerBudgetsSats ? { freeTier: { budgetsSats: opts.ledgerBudgetsSats } } : {}),
      ...(opts.timeoutSec ? { jobs: { timeoutSec: opts.timeoutSec } } : {}),
    },
    { env: {} },
  );
  const ledger = Ledger.open(dbPath, ledgerSettings(cfg), { nowMs: T0_MS, grantSigner: grantSigner(gateSk) });
  const keys = Array.from({ length: 4 }, () => getPublicKey(generateSecretKey()));
  const jobs = opts.jobs ?? [
    { tier: "elite", who: 0, priceSats: 10, atMs: T0_MS + 1000 },
    { tier: "trusted", who: 1, priceSats: 10, atMs: T0_MS + 2000 },
    { tier: "elite", who: 0, priceSats: 20, atMs: T0_MS + HOUR_MS },
    // Over the established budget of 50 sats: the pool covers 50, the customer pays 10.
    { tier: "established", who: 2, priceSats: 60, atMs: T0_MS + 2 * HOUR_MS, paySats: 10 },
    { tier: "trusted", who: 1, priceSats: 15, atMs: T0_MS + 3 * HOUR_MS },
    { tier: "elite", who: 3, priceSats: 10, atMs: T0_MS + 30 * HOUR_MS },
  ];
  // Decisions and settlements run in time order: a job may post after a later one was decided.
  const settles: { requestId: string; atMs: number; i: number }[] = [];
  const settleUpTo = (atMs: number) => {
    settles.sort((x, y) => x.atMs - y.atMs);
    while (settles.length > 0 && settles[0]!.atMs < atMs) {
      const { requestId, atMs: when, i } = settles.shift()!;
      const s = ledger.settle(requestId, {}, when);
      if (s.status !== "posted" || !s.grant) throw new Error(`test history: job ${i} not posted (${s.status})`);
      lastMs = Math.max(lastMs, when);
    }
  };
  let lastMs = 0;
  for (const [i, j] of jobs.entries()) {
    settleUpTo(j.atMs - 1);
    const pubkey = keys[j.who]!;
    ledger.setTier(pubkey, j.tier, j.atMs - 1);
    if (i === 2) ledger.credit(5 * SAT, "operator", "test", j.atMs - 1);
    const requestId = hex64();
    const d = ledger.decide({ requestId, pubkey, kind: 5050, priceMsats: j.priceSats * SAT }, j.atMs);
    if (d.request.decision === "partial") {
      const paid = ledger.markPaid(requestId, { paidMsats: (j.paySats ?? 0) * SAT, paymentRef: `ref-${i}` }, j.atMs + 10);
      if (paid.status !== "paid") throw new Error(`test history: markPaid ${paid.status}`);
    } else if (d.request.decision !== "free") throw new Error(`test history: job ${i} was ${d.request.decision}`);
    settles.push({ requestId, atMs: j.settleAtMs ?? j.atMs + 500, i });
    lastMs = Math.max(lastMs, j.atMs);
  }
  settleUpTo(Infinity);
  const grants = ledger.grants({ limit: 10_000 }).map((g) => JSON.parse(g.eventJson!) as Event);
  const last = lastMs + 1000;
  const statusBudgets = opts.statusBudgetsSats ?? opts.ledgerBudgetsSats ?? { new: 0, established: 50, trusted: 200, elite: 1000 };
  const budgetsMsats = Object.fromEntries(Object.entries(statusBudgets).map(([k, v]) => [k, v * SAT])) as Record<Tier, number>;
  const poolStatus = finalizeEvent(poolStatusTemplate(ledger.totals(), budgetsMsats, Math.floor(last / 1000)), gateSk);
  return { gateSk, gatePubkey, grants, poolStatus, ledger, customers: keys };
}

/** The same grant with changed tags, properly re-signed by `sk`. */
export function resign(ev: Event, sk: Uint8Array, change: (tags: string[][]) => string[][]): Event {
  return finalizeEvent({ kind: ev.kind, created_at: ev.created_at, tags: change(ev.tags.map((t) => [...t])), content: ev.content }, sk);
}

export function setTag(tags: string[][], name: string, values: string[]): string[][] {
  return tags.map((t) => (t[0] === name ? [name, ...values] : t));
}

/** Publishes through a real relay connection; throws with the relay's reason when refused. */
export async function publishAll(url: string, events: Event[]): Promise<void> {
  const relay = new AbstractRelay(url, { verifyEvent: () => true, websocketImplementation: WebSocket as never });
  await relay.connect({ timeout: 5000 });
  try {
    for (const e of events) await relay.publish(e);
  } finally {
    relay.close();
  }
}
