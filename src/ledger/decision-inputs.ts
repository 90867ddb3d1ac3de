// What the SPEC §2 decision reads, in one place: `Ledger.decide` calls it inside its
// BEGIN IMMEDIATE transaction, `GET /estimate` inside a read transaction, so the dry run
// and the real decision can never read different things.
import type { Statement } from "better-sqlite3";
import type { DecisionInputs } from "../policy/decision.js";
import { DAY_MS, effectiveTier } from "../policy/tiers.js";
import type { Db } from "./db.js";
import { SELECT_IDENTITY_SQL, toTrustState, type IdentityRow } from "./identity-row.js";
import type { LedgerSettings } from "./ledger.js";

interface Reads {
  identity: Statement;
  used: Statement;
  pool: Statement;
  pendingCount: Statement;
  balance: Statement;
}

// Prepared once per connection: preparing costs more than the reads themselves.
const prepared = new WeakMap<Db, Reads>();

function reads(db: Db): Reads {
  let r = prepared.get(db);
  if (!r) {
    r = {
      identity: db.prepare(SELECT_IDENTITY_SQL),
      used: db.prepare("SELECT COALESCE(SUM(counted_msats), 0) AS used FROM reservations WHERE pubkey = ? AND created_at_ms > ?"),
      pool: db.prepare("SELECT balance_msats FROM pool WHERE id = 1"),
      pendingCount: db.prepare("SELECT COUNT(*) AS n FROM reservations WHERE pubkey = ? AND state = 'pending'"),
      balance: db.prepare("SELECT balance_msats FROM balances WHERE pubkey = ?"),
    };
    prepared.set(db, r);
  }
  return r;
}

/** The decision's inputs for one customer and price at `nowMs`. Call inside a transaction. */
export function readDecisionInputs(db: Db, settings: LedgerSettings, pubkey: string, priceMsats: number, nowMs: number): DecisionInputs {
  if (!db.inTransaction) throw new Error("invariant: decision inputs are read inside one transaction, from one snapshot");
  const r = reads(db);
  const trust = toTrustState(r.identity.get(pubkey) as IdentityRow | undefined, nowMs);
  const tier = effectiveTier(trust, nowMs, settings.trust);
  const pool = r.pool.get() as { balance_msats: number } | undefined;
  if (!pool) throw new Error("pool not seeded");
  return {
    priceMsats,
    banned: trust.banned,
    tier,
    budgetMsats: settings.budgetsMsats[tier],
    usedMsats: (r.used.get(pubkey, nowMs - DAY_MS) as { used: number }).used,
    poolMsats: pool.balance_msats,
    pendingCount: (r.pendingCount.get(pubkey) as { n: number }).n,
    maxPendingPerPubkey: settings.maxPendingPerPubkey,
    chargeUnitMsats: settings.chargeUnitMsats ?? 1,
    balanceMsats: (r.balance.get(pubkey) as { balance_msats: number } | undefined)?.balance_msats ?? 0,
  };
}
