// `dvm-gate verify`: re-derives every guarantee of SPEC §3 from the history rows
// rather than trusting the pool's running counters, and names the first break of each.
import type { Db } from "./db.js";
import { WINDOW_MS } from "./ledger.js";
import { checkBalances } from "./verify-balances.js";

export interface Violation {
  guarantee: string;
  detail: string;
}

export const GUARANTEES = {
  conservation: "1 conservation: initial + credited = pool + pending + absorbed",
  nonNegative: "2 non-negative balances",
  budget: "3 per-customer 24 h budget",
  resolveOnce: "4 a reservation resolves at most once, history append-only",
  idempotency: "5 request id is the idempotency key",
  integrity: "6 database integrity (shared by several processes)",
  grantChain: "grant chain: seq 1, 2, 3 … without gaps, prev = previous event id",
  balances: "7 balances: every msat deposited is in a balance, held by a pending job, or spent (or refunded by the operator)",
} as const;

export function verifyLedger(db: Db): Violation[] {
  const out: Violation[] = [];
  const v = (guarantee: string, detail: string) => out.push({ guarantee, detail });
  const one = <T>(sql: string, ...args: unknown[]) => db.prepare(sql).get(...args) as T;

  // Read everything from one snapshot, so a concurrent writer cannot tear the picture.
  db.exec("BEGIN");
  try {
    const integrity = db.pragma("quick_check", { simple: true });
    if (integrity !== "ok") v(GUARANTEES.integrity, `quick_check: ${String(integrity)}`);

    const pool = one<{ initial_msats: number; credited_msats: number; balance_msats: number; pending_msats: number; absorbed_msats: number } | undefined>(
      "SELECT * FROM pool WHERE id = 1",
    );
    if (!pool) {
      v(GUARANTEES.conservation, "the pool was never seeded");
      return out;
    }
    const credited = one<{ s: number }>("SELECT COALESCE(SUM(amount_msats), 0) AS s FROM credits").s;
    const pending = one<{ s: number }>("SELECT COALESCE(SUM(amount_msats), 0) AS s FROM reservations WHERE state = 'pending'").s;
    const absorbed = one<{ s: number }>("SELECT COALESCE(SUM(absorbed_msats), 0) AS s FROM resolutions WHERE outcome = 'posted'").s;
    if (pool.initial_msats + pool.credited_msats !== pool.balance_msats + pool.pending_msats + pool.absorbed_msats)
      v(
        GUARANTEES.conservation,
        `counters: ${pool.initial_msats} + ${pool.credited_msats} ≠ ${pool.balance_msats} + ${pool.pending_msats} + ${pool.absorbed_msats}`,
      );
    if (credited !== pool.credited_msats) v(GUARANTEES.conservation, `credits sum to ${credited} msats, pool says ${pool.credited_msats}`);
    if (pending !== pool.pending_msats) v(GUARANTEES.conservation, `pending reservations sum to ${pending} msats, pool says ${pool.pending_msats}`);
    if (absorbed !== pool.absorbed_msats) v(GUARANTEES.conservation, `posted resolutions sum to ${absorbed} msats, pool says ${pool.absorbed_msats}`);
    const derivedPool = pool.initial_msats + credited - pending - absorbed;
    if (derivedPool !== pool.balance_msats) v(GUARANTEES.conservation, `history gives a pool of ${derivedPool} msats, pool says ${pool.balance_msats}`);

    for (const [name, value] of Object.entries(pool)) if (typeof value === "number" && value < 0) v(GUARANTEES.nonNegative, `pool.${name} = ${value}`);
    const negRes = one<{ n: number }>("SELECT COUNT(*) AS n FROM reservations WHERE amount_msats <= 0 OR counted_msats < 0").n;
    if (negRes > 0) v(GUARANTEES.nonNegative, `${negRes} reservations with a non-positive amount`);

    // 4: every resolved reservation has exactly one matching resolution; pending ones none.
    const badResolution = one<{ id: number; state: string; outcome: string | null } | undefined>(
      `SELECT r.id, r.state, s.outcome FROM reservations r LEFT JOIN resolutions s ON s.reservation_id = r.id
       WHERE (r.state = 'pending' AND s.outcome IS NOT NULL) OR (r.state <> 'pending' AND (s.outcome IS NULL OR s.outcome <> r.state))
          OR (s.outcome IS NOT NULL AND s.absorbed_msats + s.returned_msats <> r.amount_msats)
          OR (r.state = 'pending' AND r.counted_msats <> r.amount_msats)
          OR (r.state = 'posted' AND r.counted_msats <> s.absorbed_msats)
          OR (r.state IN ('voided','expired') AND (r.counted_msats <> 0 OR s.absorbed_msats <> 0)) LIMIT 1`,
    );
    if (badResolution)
      v(
        GUARANTEES.resolveOnce,
        `reservation ${badResolution.id} is ${badResolution.state} but its resolution is ${badResolution.outcome ?? "missing"} or does not add up`,
      );
    const triggers = new Set((db.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'").all() as { name: string }[]).map((r) => r.name));
    for (const t of ["credits", "resolutions", "grants", "identity_log", "deposits", "balance_resolutions", "withdrawals"])
      if (!triggers.has(`${t}_no_update`) || !triggers.has(`${t}_no_delete`)) v(GUARANTEES.resolveOnce, `${t} is no longer protected as append-only`);
    for (const t of ["reservations_resolve_once", "reservations_no_delete", "balance_holds_resolve_once", "balance_holds_no_delete"])
      if (!triggers.has(t)) v(GUARANTEES.resolveOnce, `trigger ${t} is missing`);

    // 5: one decision per request id, one reservation per request, and they agree.
    const mismatch = one<{ request_id: string } | undefined>(
      `SELECT q.request_id FROM requests q LEFT JOIN reservations r ON r.request_id = q.request_id
       WHERE (q.absorb_msats > 0 AND (r.id IS NULL OR r.amount_msats <> q.absorb_msats OR r.pubkey <> q.pubkey))
          OR (q.absorb_msats = 0 AND r.id IS NOT NULL)
          OR (r.state = 'pending' AND q.state NOT IN ('awaiting-payment','processing'))
          OR (r.state IS NOT NULL AND r.state <> 'pending' AND q.state IN ('awaiting-payment','processing')) LIMIT 1`,
    );
    if (mismatch) v(GUARANTEES.idempotency, `request ${mismatch.request_id} and its reservation disagree`);
    const orphan = one<{ n: number }>(
      "SELECT COUNT(*) AS n FROM reservations r LEFT JOIN requests q ON q.request_id = r.request_id WHERE q.request_id IS NULL",
    ).n;
    if (orphan > 0) v(GUARANTEES.idempotency, `${orphan} reservations without a request`);

    // 3: for each reservation, what counts in the 24 h window ending at its decision
    // must fit the budget of the tier it was decided under.
    checkBudgets(db, (d) => v(GUARANTEES.budget, d));

    checkGrantChain(db, (d) => v(GUARANTEES.grantChain, d));
    checkBalances(db, (d) => v(GUARANTEES.balances, d));
  } finally {
    db.exec("COMMIT");
  }
  return out;
}

function checkBudgets(db: Db, report: (detail: string) => void): void {
  const rows = db
    .prepare("SELECT id, pubkey, created_at_ms, counted_msats, budget_msats FROM reservations ORDER BY pubkey, created_at_ms, id")
    .iterate() as IterableIterator<{ id: number; pubkey: string; created_at_ms: number; counted_msats: number; budget_msats: number }>;
  let pubkey = "";
  let window: { at: number; counted: number }[] = [];
  let head = 0;
  let sum = 0;
  let reported = 0;
  for (const r of rows) {
    if (r.pubkey !== pubkey) {
      pubkey = r.pubkey;
      window = [];
      head = 0;
      sum = 0;
    }
    window.push({ at: r.created_at_ms, counted: r.counted_msats });
    sum += r.counted_msats;
    while (head < window.length && window[head]!.at <= r.created_at_ms - WINDOW_MS) sum -= window[head++]!.counted;
    if (sum > r.budget_msats && reported++ < 5)
      report(`customer ${r.pubkey.slice(0, 16)}… had ${sum} msats counted in the 24 h up to reservation ${r.id}, budget ${r.budget_msats}`);
  }
}

function checkGrantChain(db: Db, report: (detail: string) => void): void {
  const rows = db
    .prepare(
      `SELECT g.seq, g.prev_event_id, g.event_id, g.absorbed_msats, s.absorbed_msats AS resolved
       FROM grants g LEFT JOIN resolutions s ON s.reservation_id = g.reservation_id ORDER BY g.seq`,
    )
    .iterate() as IterableIterator<{ seq: number; prev_event_id: string | null; event_id: string | null; absorbed_msats: number; resolved: number | null }>;
  let expected = 1;
  let prev: string | null = null;
  let signed = 0;
  let unsigned = 0;
  for (const g of rows) {
    if (g.seq !== expected) return report(`expected seq ${expected}, found ${g.seq}`);
    if (g.event_id === null) unsigned++;
    else signed++;
    // A chain is signed throughout (the service) or not at all (a ledger used without a
    // key, as in tests): a mix means a grant nobody can audit, and the next signed grant
    // cannot name its predecessor.
    if (signed > 0 && unsigned > 0) return report(`seq ${g.seq}: the chain mixes signed and unsigned grants`);
    if (g.seq > 1 && g.prev_event_id !== prev) return report(`seq ${g.seq} points at ${g.prev_event_id}, previous grant is ${prev}`);
    if (g.resolved !== g.absorbed_msats) return report(`seq ${g.seq} says ${g.absorbed_msats} msats absorbed, its resolution ${g.resolved}`);
    prev = g.event_id;
    expected++;
  }
  const missing = db
    .prepare(
      `SELECT COUNT(*) AS n FROM resolutions s LEFT JOIN grants g ON g.reservation_id = s.reservation_id
       WHERE s.outcome = 'posted' AND s.absorbed_msats > 0 AND g.seq IS NULL`,
    )
    .get() as { n: number };
  if (missing.n > 0) report(`${missing.n} posted reservations have no grant`);
}
