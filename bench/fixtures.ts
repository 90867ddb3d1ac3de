// A ledger file with a long history (N identities, M posted grants), written with raw
// bulk INSERTs so it takes seconds, not the hours the service would need to earn it.
// Rows obey the real schema and its guarantees (pool conservation, one posted
// resolution per reservation, an unbroken grant chain), so the service opens it as
// its own. Nothing is cached between runs: every bench run builds it afresh.
import Database from "better-sqlite3";
import { MIGRATIONS } from "../src/ledger/schema.js";
import { DAY_MS } from "../src/policy/tiers.js";
import { grantTemplate } from "../src/events/grant-event.js";
import type { Tier } from "../src/policy/tiers.js";
import { HexIds } from "./limits.js";
import { mulberry32 } from "../test/helpers/prng.js";
export { mulberry32 };

export interface HistoryOptions {
  identities: number;
  grants: number;
  /** The fixture's "now": history lies before it, the last 24 h included. */
  nowMs: number;
  poolInitialMsats: number;
  /** Share of grants created in the 24 h before `nowMs` (the budget window). */
  lastDayShare?: number;
  historyDays?: number;
  seed?: number;
}

export interface History {
  /** Every identity's pubkey. */
  pubkeys: string[];
  /** A pubkey drawn the way the grants were: customers with more history ask more often. */
  activePubkey: (u: number) => string;
  absorbedMsats: number;
  grantsInLastDay: number;
  /** Most grants any one pubkey has in the last 24 h. */
  maxGrantsInLastDayPerPubkey: number;
  buildMs: number;
}

const BATCH = 100_000;
const KINDS = [5000, 5050, 5100, 5250, 5300];
const PRICES_MSATS = [1_000, 5_000, 10_000, 21_000];
const TIMEOUT_MS = 600_000;
const JOB_MS = 4_000;

/**
 * A power law over a permutation of the identities: rank ⌊N·u²⌋ gives the busiest
 * customer about 1 in 1,000 grants, and most identities few or none.
 */
function skewedIndex(n: number, rank: number): number {
  // 999_983 is prime and does not divide n (asserted), so this permutes 0..n-1:
  // busy customers end up spread over the key space instead of clustered.
  return (rank * 999_983) % n;
}
const skewedRank = (n: number, u: number) => Math.min(n - 1, Math.floor(n * u * u));

/** Busier customers have earned more trust; the quieter half is still new (budget 0, no grants). */
function tierForRank(rank: number, n: number): Tier {
  const share = rank / n;
  return share < 0.001 ? "elite" : share < 0.02 ? "trusted" : share < 0.3 ? "established" : "new";
}
const SCORE_RANGE: Record<Tier, [number, number]> = { new: [0, 9], established: [10, 49], trusted: [50, 199], elite: [200, 300] };
const BUDGETS_MSATS: Record<Tier, number> = { new: 0, established: 50_000, trusted: 200_000, elite: 1_000_000 };

/** What one customer had counted in the trailing 24 h, oldest first. */
interface Window {
  atMs: number[];
  msats: number[];
  head: number;
  sum: number;
}

export function buildHistory(path: string, o: HistoryOptions): History {
  const startMs = Date.now();
  const n = o.identities;
  if (n % 999_983 === 0) throw new Error("identities must not be a multiple of 999983");
  const rnd = mulberry32(o.seed ?? 1);
  const ids = new HexIds();
  const lastDayShare = o.lastDayShare ?? 0.05;
  const historyMs = (o.historyDays ?? 90) * DAY_MS;

  const db = new Database(path);
  // Fill speed only: no journal, no fsync, one big page cache. The service reopens the
  // file with WAL and its own synchronous setting before anything is measured.
  db.unsafeMode(true);
  db.pragma("journal_mode = OFF");
  db.pragma("synchronous = OFF");
  db.pragma("locking_mode = EXCLUSIVE");
  db.pragma("cache_size = -2000000");
  db.pragma("temp_store = MEMORY");
  // Rows are consistent by construction (checked once by hand with foreign_key_check
  // and verifyLedger); checking every foreign key here would double the fill time.
  db.pragma("foreign_keys = OFF");
  for (const sql of MIGRATIONS) db.exec(sql);
  db.pragma(`user_version = ${MIGRATIONS.length}`);
  // Secondary indexes are built once after the fill (a sort) instead of row by row
  // (a random B-tree insert each); recreated from their own SQL, so the schema is identical.
  const deferred = db
    .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ('reservations', 'grants', 'requests')")
    .all() as { name: string; sql: string }[];
  for (const ix of deferred) db.exec(`DROP INDEX ${ix.name}`);

  const pubkeys = Array.from({ length: n }, () => ids.next()).sort();
  const rankOf = new Int32Array(n);
  for (let rank = 0; rank < n; rank++) rankOf[skewedIndex(n, rank)] = rank;
  insertIdentities(db, pubkeys, (i) => tierForRank(rankOf[i]!, n), o.nowMs, historyMs, rnd);

  // Grant times, oldest first, so seq, reservation id and time rise together.
  const times = new Float64Array(o.grants);
  for (let i = 0; i < o.grants; i++)
    times[i] =
      rnd() < lastDayShare ? o.nowMs - 600_000 - Math.floor(rnd() * (DAY_MS - 1_200_000)) : o.nowMs - DAY_MS - Math.floor(rnd() * (historyMs - DAY_MS));
  times.sort();

  const windows = new Map<number, Window>();
  /** Room left in the customer's budget at `atMs`, the window moved forward to it. */
  const room = (rank: number, atMs: number): number => {
    const w = windows.get(rank);
    const budget = BUDGETS_MSATS[tierForRank(rank, n)];
    if (!w) return budget;
    while (w.head < w.atMs.length && w.atMs[w.head]! <= atMs - DAY_MS) w.sum -= w.msats[w.head++]!;
    if (w.head > 64) (w.atMs.splice(0, w.head), w.msats.splice(0, w.head), (w.head = 0));
    return budget - w.sum;
  };
  const count = (rank: number, atMs: number, msats: number) => {
    let w = windows.get(rank);
    if (!w) windows.set(rank, (w = { atMs: [], msats: [], head: 0, sum: 0 }));
    w.atMs.push(atMs);
    w.msats.push(msats);
    w.sum += msats;
  };
  /** A customer with budget left, drawn by activity; the decision is partial when the budget is nearly used. */
  const pickCustomer = (atMs: number): { rank: number; absorbCap: number } => {
    for (let tries = 0; tries < 100_000; tries++) {
      const rank = skewedRank(n, rnd());
      const left = room(rank, atMs);
      if (left > 0) return { rank, absorbCap: left };
    }
    throw new Error("fixture: every customer's budget is used; fewer grants or more identities");
  };

  const insRequest = db.prepare(
    `INSERT INTO requests (request_id, pubkey, kind, price_msats, decision, tier, absorb_msats, charge_msats, state, paid_msats, payment_ref,
       created_at_ms, expires_at_ms, updated_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'done', ?, ?, ?, ?, ?)`,
  );
  const insReservation = db.prepare(
    `INSERT INTO reservations (id, request_id, pubkey, tier, budget_msats, amount_msats, counted_msats, state, created_at_ms, expires_at_ms)
     VALUES (?, ?, ?, ?, ?, ?, ?, 'posted', ?, ?)`,
  );
  const insResolution = db.prepare(
    "INSERT INTO resolutions (reservation_id, outcome, absorbed_msats, returned_msats, reason, at_ms) VALUES (?, 'posted', ?, 0, NULL, ?)",
  );
  const insGrant = db.prepare(
    `INSERT INTO grants (seq, reservation_id, request_id, pubkey, kind, label, tier, absorbed_msats, charged_msats,
       total_initial_msats, total_credited_msats, total_absorbed_msats, total_pending_msats, total_pool_msats,
       prev_event_id, event_id, event_json, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, 0, ?, ?, ?, ?, ?)`,
  );
  const operatorPubkey = ids.next();
  const lastDayCount = new Map<string, number>();
  let absorbedTotal = 0;
  let prevEventId: string | null = null;
  let grantsInLastDay = 0;

  const fill = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const createdAtMs = times[i]!;
      const kind = KINDS[Math.floor(rnd() * KINDS.length)]!;
      const priceMsats = PRICES_MSATS[Math.floor(rnd() * PRICES_MSATS.length)]!;
      const { rank, absorbCap } = pickCustomer(createdAtMs);
      const pubkey = pubkeys[skewedIndex(n, rank)]!;
      const tier = tierForRank(rank, n);
      const requestId = ids.next();
      const absorbMsats = Math.min(priceMsats, absorbCap);
      const partial = absorbMsats < priceMsats;
      const chargeMsats = priceMsats - absorbMsats;
      count(rank, createdAtMs, absorbMsats);
      const postedAtMs = createdAtMs + JOB_MS;
      const seq = i + 1;
      absorbedTotal += absorbMsats;
      if (createdAtMs > o.nowMs - DAY_MS) {
        grantsInLastDay++;
        lastDayCount.set(pubkey, (lastDayCount.get(pubkey) ?? 0) + 1);
      }

      insRequest.run(
        requestId,
        pubkey,
        kind,
        priceMsats,
        partial ? "partial" : "free",
        tier,
        absorbMsats,
        chargeMsats,
        chargeMsats,
        partial ? `bench-hash-${seq}` : null,
        createdAtMs,
        createdAtMs + TIMEOUT_MS,
        postedAtMs,
      );
      insReservation.run(seq, requestId, pubkey, tier, BUDGETS_MSATS[tier], absorbMsats, absorbMsats, createdAtMs, createdAtMs + TIMEOUT_MS);
      insResolution.run(seq, absorbMsats, postedAtMs);

      const poolMsats = o.poolInitialMsats - absorbedTotal;
      const eventId = ids.next();
      const t = grantTemplate({
        seq,
        prevEventId,
        decidedAtMs: createdAtMs,
        requestId,
        pubkey,
        kind,
        label: partial ? "partial" : "free",
        tier,
        absorbedMsats: absorbMsats,
        chargedMsats: chargeMsats,
        createdAtMs: postedAtMs,
        totals: { initialMsats: o.poolInitialMsats, creditedMsats: 0, absorbedMsats: absorbedTotal, pendingMsats: 0, poolMsats },
      });
      // Shaped and sized like a signed grant; the signature is filler (nothing on the decide path reads it).
      const eventJson = JSON.stringify({ ...t, id: eventId, pubkey: operatorPubkey, sig: ids.next() + ids.next() });
      insGrant.run(
        seq,
        seq,
        requestId,
        pubkey,
        kind,
        partial ? "partial" : "free",
        tier,
        absorbMsats,
        chargeMsats,
        o.poolInitialMsats,
        absorbedTotal,
        poolMsats,
        prevEventId,
        eventId,
        eventJson,
        postedAtMs,
      );
      prevEventId = eventId;
    }
  });
  for (let from = 0; from < o.grants; from += BATCH) fill(from, Math.min(o.grants, from + BATCH));

  db.prepare(
    "INSERT INTO pool (id, initial_msats, credited_msats, balance_msats, pending_msats, absorbed_msats, seeded_at_ms) VALUES (1, ?, 0, ?, 0, ?, ?)",
  ).run(o.poolInitialMsats, o.poolInitialMsats - absorbedTotal, absorbedTotal, o.nowMs - historyMs - DAY_MS);
  for (const ix of deferred) db.exec(ix.sql);
  db.close();

  let maxGrantsInLastDayPerPubkey = 0;
  for (const n of lastDayCount.values()) maxGrantsInLastDayPerPubkey = Math.max(maxGrantsInLastDayPerPubkey, n);
  return {
    pubkeys,
    activePubkey: (u) => pubkeys[skewedIndex(n, skewedRank(n, u))]!,
    absorbedMsats: absorbedTotal,
    grantsInLastDay,
    maxGrantsInLastDayPerPubkey,
    buildMs: Date.now() - startMs,
  };
}

function insertIdentities(db: Database.Database, pubkeys: string[], tierOf: (i: number) => Tier, nowMs: number, historyMs: number, rnd: () => number): void {
  const ins = db.prepare(
    `INSERT INTO identities (pubkey, score, score_at_ms, last_active_ms, pinned_tier, banned, wot_floor, updated_at_ms)
     VALUES (?, ?, ?, ?, ?, 0, ?, ?)`,
  );
  const fill = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const [lo, hi] = SCORE_RANGE[tierOf(i)];
      const score = lo + Math.floor(rnd() * (hi - lo + 1));
      const activeMs = nowMs - Math.floor(rnd() * historyMs);
      const r = rnd();
      const pinned: Tier | null = r < 0.002 ? "elite" : null;
      const wotFloor: Tier | null = r > 0.99 ? "established" : null;
      ins.run(pubkeys[i]!, score, activeMs, score > 0 ? activeMs : null, pinned, wotFloor, activeMs);
    }
  });
  for (let from = 0; from < pubkeys.length; from += BATCH) fill(from, Math.min(pubkeys.length, from + BATCH));
}
