// What the operator page reads, in one read transaction: the pool balance history for
// the chart (worked back from reservations, returns and credits), decisions by outcome and by hour, invoices by
// state and what paid jobs earned. SELECTs only; every list is bounded.
import type { Db } from "./db.js";
import type { Decision, Totals } from "./ledger.js";

export const DAY_MS = 86_400_000;
export const HOUR_MS = 3_600_000;
/** Newest rows of each history kept for the pool chart. */
export const HISTORY_MAX_ROWS = 500;
export const STORED_DECISIONS: readonly Decision[] = ["free", "partial", "gate", "blocked"];

export interface CountAndMsats {
  count: number;
  msats: number;
}

/** Invoices the gate issued, by what became of them. */
export interface InvoiceFigures {
  issued: CountAndMsats;
  paid: CountAndMsats;
  /** Past their expiry unpaid (marked expired, or open but past due and not yet swept). */
  expired: CountAndMsats;
  /** Open and still payable. */
  unpaid: CountAndMsats;
}

export interface MoneyReport {
  invoices24h: InvoiceFigures;
  invoicesAll: InvoiceFigures;
  /** Paid msats of jobs that were done (the customer paid and got the work), by when they finished. */
  earned24h: CountAndMsats;
  earnedAll: CountAndMsats;
}

export interface PoolMark {
  atMs: number;
  /** A credit (operator or paid job) or a reservation that went back to the pool. */
  what: "credit" | "void" | "expiry";
  amountMsats: number;
  detail: string;
}

/** One change of the pool balance: a reservation taken, money returned, or a credit. */
export interface BalanceChange {
  atMs: number;
  deltaMsats: number;
  what: "reserve" | "void" | "expiry" | "return" | "credit";
  detail: string;
}

/** The balance right after a change (or the seed, or now). */
export interface BalanceStep {
  atMs: number;
  poolMsats: number;
  change: BalanceChange | null;
}

export interface HourBucket {
  startMs: number;
  counts: Record<Decision, number>;
}

export interface PageReport {
  totals: Totals;
  seed: { initialMsats: number; seededAtMs: number } | null;
  lastGrantSeq: number;
  /**
   * The balance after each of the newest changes, oldest first, worked back from the
   * balance now; it starts at the seed when the whole history fits.
   */
  balance: BalanceStep[];
  /** Credits and returns among those changes. */
  marks: PoolMark[];
  decisions24h: Record<string, number>;
  decisionsAll: Record<string, number>;
  /** 24 buckets, one per clock hour, the last one the hour now is in. */
  decisionsByHour: HourBucket[];
  money: MoneyReport;
}

const zero = (): CountAndMsats => ({ count: 0, msats: 0 });

export class ReportStore {
  private readonly read: (nowMs: number) => PageReport;

  constructor(db: Db) {
    const q = (sql: string) => db.prepare(sql);
    const st = {
      pool: q("SELECT initial_msats, credited_msats, balance_msats, pending_msats, absorbed_msats, seeded_at_ms FROM pool WHERE id = 1"),
      lastGrant: q("SELECT COALESCE(MAX(seq), 0) AS n FROM grants"),
      // The balance moves only here: a reservation takes its amount, a resolution gives
      // back what was not absorbed, a credit adds. Each by its own key, newest first.
      reserves: q(`SELECT created_at_ms AS at_ms, amount_msats, tier FROM reservations ORDER BY id DESC LIMIT ${HISTORY_MAX_ROWS}`),
      returns: q(
        `SELECT at_ms, returned_msats, outcome, reason FROM resolutions WHERE returned_msats > 0 ORDER BY reservation_id DESC LIMIT ${HISTORY_MAX_ROWS}`,
      ),
      credits: q(`SELECT created_at_ms AS at_ms, amount_msats, source FROM credits ORDER BY id DESC LIMIT ${HISTORY_MAX_ROWS}`),
      // One pass over requests for every all-time and 24 h figure, grouped by a few
      // flags (≤ 32 groups) rather than one SUM per figure: SQLite decodes each row once.
      requestFigures: q(
        `SELECT decision, created_at_ms > @fromMs AS recent, (state = 'done' AND paid_msats > 0) AS earned,
             updated_at_ms > @fromMs AS finished_recently, COUNT(*) AS n, SUM(paid_msats) AS paid_msats
           FROM requests GROUP BY 1, 2, 3, 4`,
      ),
      byHour: q(
        `SELECT (created_at_ms - @firstHourMs) / ${HOUR_MS} AS bucket, decision, COUNT(*) AS n FROM requests
           WHERE created_at_ms >= @firstHourMs AND created_at_ms <= @nowMs GROUP BY bucket, decision`,
      ),
      // Paid, expired (marked, or past due and not yet swept) or still open; all time and 24 h.
      invoiceFigures: q(
        `SELECT CASE WHEN state = 'paid' THEN 'paid' WHEN state = 'expired' OR expires_at_ms <= @nowMs THEN 'expired' ELSE 'unpaid' END AS what,
             created_at_ms > @fromMs AS recent, COUNT(*) AS n, SUM(amount_msats) AS msats
           FROM invoices GROUP BY 1, 2`,
      ),
    };

    const add = (f: CountAndMsats, n: number, msats: number) => {
      f.count += n;
      f.msats += msats;
    };
    const invoiceFigures = (nowMs: number, fromMs: number): { day: InvoiceFigures; all: InvoiceFigures } => {
      const fresh = (): InvoiceFigures => ({ issued: zero(), paid: zero(), expired: zero(), unpaid: zero() });
      const out = { day: fresh(), all: fresh() };
      for (const r of st.invoiceFigures.all({ nowMs, fromMs }) as { what: "paid" | "expired" | "unpaid"; recent: number; n: number; msats: number }[]) {
        for (const f of r.recent ? [out.day, out.all] : [out.all]) {
          add(f[r.what], r.n, r.msats);
          add(f.issued, r.n, r.msats);
        }
      }
      return out;
    };
    const requestFigures = (fromMs: number) => {
      const out = { day: {} as Record<string, number>, all: {} as Record<string, number>, earnedDay: zero(), earnedAll: zero() };
      type R = { decision: string; recent: number; earned: number; finished_recently: number; n: number; paid_msats: number | null };
      for (const r of st.requestFigures.all({ fromMs }) as R[]) {
        out.all[r.decision] = (out.all[r.decision] ?? 0) + r.n;
        if (r.recent) out.day[r.decision] = (out.day[r.decision] ?? 0) + r.n;
        if (r.earned) {
          add(out.earnedAll, r.n, r.paid_msats ?? 0);
          if (r.finished_recently) add(out.earnedDay, r.n, r.paid_msats ?? 0);
        }
      }
      return out;
    };

    this.read = db.transaction((nowMs: number): PageReport => {
      const p = st.pool.get() as
        | { initial_msats: number; credited_msats: number; balance_msats: number; pending_msats: number; absorbed_msats: number; seeded_at_ms: number }
        | undefined;
      const totals: Totals = p
        ? {
            initialMsats: p.initial_msats,
            creditedMsats: p.credited_msats,
            absorbedMsats: p.absorbed_msats,
            pendingMsats: p.pending_msats,
            poolMsats: p.balance_msats,
          }
        : { initialMsats: 0, creditedMsats: 0, absorbedMsats: 0, pendingMsats: 0, poolMsats: 0 };
      const reserves = st.reserves.all() as { at_ms: number; amount_msats: number; tier: string }[];
      const returns = st.returns.all() as { at_ms: number; returned_msats: number; outcome: string; reason: string | null }[];
      const credits = st.credits.all() as { at_ms: number; amount_msats: number; source: string }[];
      // A source cut at the row limit only covers the time after its oldest row: keep
      // the changes after the latest such cut, so no source has a hole in what is kept.
      const cuts = [reserves, returns, credits].filter((rows) => rows.length === HISTORY_MAX_ROWS).map((rows) => rows.at(-1)!.at_ms);
      const cutMs = cuts.length > 0 ? Math.max(...cuts) : -Infinity;
      const changes: BalanceChange[] = [
        ...reserves.map((r): BalanceChange => ({ atMs: r.at_ms, deltaMsats: -r.amount_msats, what: "reserve", detail: r.tier })),
        ...returns.map((r): BalanceChange => ({
          atMs: r.at_ms,
          deltaMsats: r.returned_msats,
          what: r.outcome === "voided" ? "void" : r.outcome === "expired" ? "expiry" : "return",
          detail: r.reason ?? r.outcome,
        })),
        ...credits.map((c): BalanceChange => ({ atMs: c.at_ms, deltaMsats: c.amount_msats, what: "credit", detail: c.source })),
      ]
        .filter((c) => c.atMs > cutMs || cuts.length === 0)
        .sort((a, b) => a.atMs - b.atMs)
        .slice(-HISTORY_MAX_ROWS);
      // Worked back from the balance now, the newest change first.
      const balance: BalanceStep[] = [{ atMs: nowMs, poolMsats: totals.poolMsats, change: null }];
      let after = totals.poolMsats;
      for (let i = changes.length - 1; i >= 0; i--) {
        const c = changes[i]!;
        balance.unshift({ atMs: Math.min(c.atMs, nowMs), poolMsats: after, change: c });
        after -= c.deltaMsats;
      }
      const whole = cuts.length === 0 && changes.length < HISTORY_MAX_ROWS;
      if (p && whole) balance.unshift({ atMs: Math.min(p.seeded_at_ms, balance[0]!.atMs), poolMsats: after, change: null });
      const marks: PoolMark[] = changes
        .filter((c) => c.what !== "reserve")
        .map((c) => ({
          atMs: c.atMs,
          what: c.what === "credit" ? "credit" : c.what === "expiry" ? "expiry" : "void",
          amountMsats: c.deltaMsats,
          detail: c.detail,
        }));

      const fromMs = nowMs - DAY_MS;
      const req = requestFigures(fromMs);
      const inv = invoiceFigures(nowMs, fromMs);
      // Whole clock hours, the last one the hour now is in: labels read 09:00, 10:00 ….
      const firstHourMs = Math.floor(nowMs / HOUR_MS) * HOUR_MS - 23 * HOUR_MS;
      const decisionsByHour: HourBucket[] = Array.from({ length: 24 }, (_, i) => ({
        startMs: firstHourMs + i * HOUR_MS,
        counts: { free: 0, partial: 0, gate: 0, blocked: 0 },
      }));
      for (const r of st.byHour.all({ firstHourMs, nowMs }) as { bucket: number; decision: Decision; n: number }[]) {
        const b = decisionsByHour[Math.min(23, Math.max(0, Math.trunc(r.bucket)))]!;
        if (r.decision in b.counts) b.counts[r.decision] += r.n;
      }

      return {
        totals,
        seed: p ? { initialMsats: p.initial_msats, seededAtMs: p.seeded_at_ms } : null,
        lastGrantSeq: (st.lastGrant.get() as { n: number }).n,
        balance,
        marks,
        decisions24h: req.day,
        decisionsAll: req.all,
        decisionsByHour,
        money: { invoices24h: inv.day, invoicesAll: inv.all, earned24h: req.earnedDay, earnedAll: req.earnedAll },
      };
    });
  }

  /** Everything the page shows from the ledger, as one consistent snapshot. */
  pageReport(nowMs: number): PageReport {
    return this.read(nowMs);
  }
}
