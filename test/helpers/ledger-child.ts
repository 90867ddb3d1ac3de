// A separate OS process working on a shared ledger file, for the multi-process and
// crash tests. Compiled to dist/test/helpers/ledger-child.js and started as
//   node dist/test/helpers/ledger-child.js '<json ChildArgs>'
// It prints one JSON line {"ready":true} once the ledger is open, then:
// - mode "race": waits for "go" on stdin (so all children start together), runs `ops`
//   decisions with their settlements, prints one JSON line of counts and exits;
// - mode "hammer": decides, pays, settles and fails in a loop until it is killed (with
//   `deposits`, it also credits zap-like deposits whose payment hashes repeat);
// - mode "spend-race": like "race" but every job has the same price and only the
//   decision is made, to race for one customer's prepaid balance.
// Every error is counted by its code, never thrown: the parent asserts there were none.
import { randomBytes } from "node:crypto";
import { writeSync } from "node:fs";
import { Ledger, type LedgerSettings } from "../../src/ledger/ledger.js";
import { grantSigner } from "../../src/events/grant-event.js";
import { depositFor } from "./deposit-refs.js";

export interface ChildArgs {
  mode: "race" | "hammer" | "spend-race";
  dbPath: string;
  synchronous: "FULL" | "NORMAL";
  settings: LedgerSettings;
  pubkeys: string[];
  /** race: how many decisions to make. */
  ops?: number;
  /** Signs grant events inside the posting transaction, like the service does. */
  grantSecretKeyHex?: string;
  /** spend-race: the one price of every job. */
  priceMsats?: number;
  /** hammer: also credit deposits, refs drawn from `dep-0` … `dep-<deposits-1>`. */
  deposits?: number;
}

export interface ChildReport {
  pid: number;
  decisions: number;
  outcomes: Record<string, number>;
  settled: number;
  failed: number;
  paid: number;
  errors: Record<string, number>;
}

function line(value: unknown): void {
  // writeSync: the hammer loop never yields, and the line must be out before it starts.
  writeSync(1, JSON.stringify(value) + "\n");
}

const args = JSON.parse(process.argv[2] ?? "{}") as ChildArgs;
const report: ChildReport = { pid: process.pid, decisions: 0, outcomes: {}, settled: 0, failed: 0, paid: 0, errors: {} };
const bump = (m: Record<string, number>, k: string) => (m[k] = (m[k] ?? 0) + 1);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;

function guarded(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    const e = err as { code?: string; name?: string; message?: string };
    bump(report.errors, e.code ?? e.name ?? "unknown");
    if (Object.keys(report.errors).length === 1 && Object.values(report.errors)[0] === 1) process.stderr.write(`child ${process.pid}: ${e.message}\n`);
  }
}

/** One customer request, and what a service would do next with the decision. */
function oneJob(ledger: Ledger): void {
  const requestId = randomBytes(32).toString("hex");
  const pubkey = pick(args.pubkeys);
  const priceMsats = pick([5, 10, 20, 40]) * 1000 + Math.floor(Math.random() * 1000);
  guarded(() => {
    const { request } = ledger.decide({ requestId, pubkey, kind: 5050, priceMsats }, Date.now());
    report.decisions++;
    bump(report.outcomes, request.reason && request.decision !== "blocked" ? `${request.decision}:${request.reason}` : request.decision);
    if (request.balanceLeftMsats !== undefined) bump(report.outcomes, "from-balance");
    if (request.decision === "blocked") return;
    const r = Math.random();
    // Paid from a prepaid balance: processing already, like a free job.
    if (request.decision !== "free" && request.balanceLeftMsats === undefined) {
      if (r >= 0.6) {
        // Some are never paid (their offers expire), some fail before payment.
        if (r < 0.8) {
          ledger.fail(requestId, "customer cancelled", Date.now());
          report.failed++;
        }
        return;
      }
      const paid = ledger.markPaid(requestId, { paidMsats: request.chargeMsats, paymentRef: `pay-${requestId}` }, Date.now());
      if (paid.status !== "paid") throw new Error(`invariant: markPaid said ${paid.status}`);
      report.paid++;
    }
    const s = Math.random();
    if (s < 0.65) {
      const actualMsats = Math.random() < 0.3 ? Math.floor(Math.random() * request.absorbMsats) : null;
      const res = ledger.settle(requestId, { actualMsats }, Date.now());
      if (res.status !== "posted") throw new Error(`invariant: settle said ${res.status}`);
      report.settled++;
    } else if (s < 0.85) {
      const res = ledger.fail(requestId, "worker error", Date.now());
      if (res.status !== "voided") throw new Error(`invariant: fail said ${res.status}`);
      report.failed++;
    }
    // else: left pending, for the expiry sweep to return.
  });
}

/** One job of a fixed price for the first customer: decided, nothing else. */
function spendJob(ledger: Ledger): void {
  guarded(() => {
    const { request } = ledger.decide(
      { requestId: randomBytes(32).toString("hex"), pubkey: args.pubkeys[0]!, kind: 5050, priceMsats: args.priceMsats! },
      Date.now(),
    );
    report.decisions++;
    bump(report.outcomes, request.balanceLeftMsats !== undefined ? "from-balance" : `${request.decision}${request.reason ? `:${request.reason}` : ""}`);
  });
}

function main(): void {
  const signer = args.grantSecretKeyHex ? grantSigner(Uint8Array.from(Buffer.from(args.grantSecretKeyHex, "hex"))) : null;
  // The first Schnorr signature builds lookup tables (hundreds of ms): do it before
  // "ready", so that kills land on ordinary ledger work rather than always on that.
  signer?.({
    seq: 1,
    prevEventId: null,
    decidedAtMs: Date.now(),
    requestId: "0".repeat(64),
    pubkey: "0".repeat(64),
    kind: 5050,
    label: "free",
    tier: "new",
    absorbedMsats: 1,
    chargedMsats: 0,
    totals: { initialMsats: 1, creditedMsats: 0, absorbedMsats: 1, pendingMsats: 0, poolMsats: 0 },
    createdAtMs: Date.now(),
  });
  const ledger = Ledger.open(args.dbPath, args.settings, { nowMs: Date.now(), synchronous: args.synchronous, ...(signer ? { grantSigner: signer } : {}) });
  line({ ready: true, pid: process.pid });

  if (args.mode === "hammer") {
    for (let i = 0; ; i++) {
      oneJob(ledger);
      if (i % 50 === 0) guarded(() => ledger.expire(Date.now()));
      if (i % 97 === 0) guarded(() => ledger.credit(1000, "operator", `hammer-${process.pid}`, Date.now()));
      if (args.deposits && i % 3 === 0) {
        const ref = `dep-${Math.floor(Math.random() * args.deposits)}`;
        const d = depositFor(ref, args.pubkeys);
        guarded(() => ledger.deposit({ pubkey: d.pubkey, amountMsats: d.amountMsats, source: "zap", ref, overCap: "credit-to-cap" }, Date.now()));
      }
    }
  }

  let started = false;
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk: string) => {
    if (started || !chunk.includes("go")) return;
    started = true;
    for (let i = 0; i < (args.ops ?? 100); i++) {
      if (args.mode === "spend-race") spendJob(ledger);
      else oneJob(ledger);
    }
    ledger.close();
    line({ report });
    process.exit(0);
  });
}

main();
