// Prepaid balances (SPEC §12): one account per customer beside the pool. Owns the
// balances, deposits, balance_holds, balance_resolutions, withdrawals and
// deposit_invoices tables. Every method runs inside the caller's BEGIN IMMEDIATE
// transaction (the Ledger's), and every debit is one conditional UPDATE
// (`balance_msats >= amount`), never a read-modify-write: two processes cannot both
// spend the same msats.
import type { Statement } from "better-sqlite3";
import type { Db } from "./db.js";

export type DepositSource = "operator" | "zap" | "invoice";

export interface BalanceView {
  pubkey: string;
  /** What the customer can spend now. */
  balanceMsats: number;
  /** Debited by open jobs: spent when they are done, back in the balance if they fail or expire. */
  heldMsats: number;
  depositedMsats: number;
  spentMsats: number;
  /** Paid back to the customer by the operator. */
  withdrawnMsats: number;
}

export interface BalanceTotals {
  accounts: number;
  balanceMsats: number;
  heldMsats: number;
  depositedMsats: number;
  spentMsats: number;
  withdrawnMsats: number;
  /** Zapped above the cap, credited to nobody: owed back by hand. */
  excessMsats: number;
}

export type DepositResult =
  | { status: "credited"; creditedMsats: number; excessMsats: number; balance: BalanceView }
  /** This payment hash was credited before: nothing changed. */
  | { status: "exists"; balance: BalanceView }
  /** The deposit would take the balance over the cap (only with overCap "refuse"). */
  | { status: "over_cap"; roomMsats: number; balance: BalanceView };

export interface DepositInvoiceRow {
  payment_hash: string;
  pubkey: string;
  bolt11: string;
  amount_msats: number;
  backend: string;
  state: "open" | "paid" | "expired";
  expires_at_ms: number;
  created_at_ms: number;
  paid_at_ms: number | null;
}

interface BalanceRow {
  pubkey: string;
  deposited_msats: number;
  balance_msats: number;
  held_msats: number;
  spent_msats: number;
  withdrawn_msats: number;
}

interface HoldRow {
  id: number;
  request_id: string;
  pubkey: string;
  amount_msats: number;
  state: "held" | "spent" | "refunded";
}

export class BalanceStore {
  private readonly db: Db;
  private readonly st: Record<string, Statement>;

  constructor(db: Db) {
    this.db = db;
    const q = (sql: string) => db.prepare(sql);
    this.st = {
      get: q("SELECT * FROM balances WHERE pubkey = ?"),
      ensure: q("INSERT INTO balances (pubkey, updated_at_ms) VALUES (?, ?) ON CONFLICT(pubkey) DO NOTHING"),
      depositExists: q("SELECT 1 FROM deposits WHERE ref = ?"),
      insertDeposit: q("INSERT INTO deposits (pubkey, amount_msats, excess_msats, source, ref, note, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)"),
      credit: q(
        "UPDATE balances SET deposited_msats = deposited_msats + @a, balance_msats = balance_msats + @a, updated_at_ms = @nowMs WHERE pubkey = @pubkey",
      ),
      hold: q(
        `UPDATE balances SET balance_msats = balance_msats - @a, held_msats = held_msats + @a, updated_at_ms = @nowMs
         WHERE pubkey = @pubkey AND balance_msats >= @a`,
      ),
      insertHold: q("INSERT INTO balance_holds (request_id, pubkey, amount_msats, state, created_at_ms) VALUES (?, ?, ?, 'held', ?)"),
      holdOf: q("SELECT id, request_id, pubkey, amount_msats, state FROM balance_holds WHERE request_id = ?"),
      setHoldState: q("UPDATE balance_holds SET state = ? WHERE id = ? AND state = 'held'"),
      insertResolution: q("INSERT INTO balance_resolutions (hold_id, outcome, reason, at_ms) VALUES (?, ?, ?, ?)"),
      spend: q(
        `UPDATE balances SET held_msats = held_msats - @a, spent_msats = spent_msats + @a, updated_at_ms = @nowMs
         WHERE pubkey = @pubkey AND held_msats >= @a`,
      ),
      refund: q(
        `UPDATE balances SET held_msats = held_msats - @a, balance_msats = balance_msats + @a, updated_at_ms = @nowMs
         WHERE pubkey = @pubkey AND held_msats >= @a`,
      ),
      withdraw: q(
        `UPDATE balances SET balance_msats = balance_msats - @a, withdrawn_msats = withdrawn_msats + @a, updated_at_ms = @nowMs
         WHERE pubkey = @pubkey AND balance_msats >= @a`,
      ),
      insertWithdrawal: q("INSERT INTO withdrawals (pubkey, amount_msats, note, created_at_ms) VALUES (?, ?, ?, ?)"),
      totals: q(
        `SELECT COUNT(*) AS accounts, COALESCE(SUM(balance_msats), 0) AS balance, COALESCE(SUM(held_msats), 0) AS held,
           COALESCE(SUM(deposited_msats), 0) AS deposited, COALESCE(SUM(spent_msats), 0) AS spent,
           COALESCE(SUM(withdrawn_msats), 0) AS withdrawn, (SELECT COALESCE(SUM(excess_msats), 0) FROM deposits) AS excess FROM balances`,
      ),
      insertDepositInvoice: q(
        `INSERT INTO deposit_invoices (payment_hash, pubkey, bolt11, amount_msats, backend, state, expires_at_ms, created_at_ms)
         VALUES (?, ?, ?, ?, ?, 'open', ?, ?)`,
      ),
      openDepositInvoices: q("SELECT * FROM deposit_invoices WHERE state = 'open' ORDER BY expires_at_ms LIMIT ?"),
      depositInvoice: q("SELECT * FROM deposit_invoices WHERE payment_hash = ?"),
      closeDepositInvoice: q("UPDATE deposit_invoices SET state = ?, paid_at_ms = ? WHERE payment_hash = ? AND state = 'open'"),
      recentDeposits: q("SELECT id, amount_msats, excess_msats, source, ref, note, created_at_ms FROM deposits WHERE pubkey = ? ORDER BY id DESC LIMIT ?"),
    };
  }

  private inTx(): void {
    if (!this.db.inTransaction) throw new Error("invariant: balance changes run inside the ledger's transaction");
  }

  get(pubkey: string): BalanceView {
    const r = this.st.get!.get(pubkey) as BalanceRow | undefined;
    return {
      pubkey,
      balanceMsats: r?.balance_msats ?? 0,
      heldMsats: r?.held_msats ?? 0,
      depositedMsats: r?.deposited_msats ?? 0,
      spentMsats: r?.spent_msats ?? 0,
      withdrawnMsats: r?.withdrawn_msats ?? 0,
    };
  }

  /** What the customer could spend now (0 without an account). */
  available(pubkey: string): number {
    return (this.st.get!.get(pubkey) as BalanceRow | undefined)?.balance_msats ?? 0;
  }

  /** How much more the cap lets this customer's balance (available + held) take. */
  room(pubkey: string, maxBalanceMsats: number): number {
    const b = this.get(pubkey);
    return Math.max(0, maxBalanceMsats - b.balanceMsats - b.heldMsats);
  }

  /**
   * Credits a deposit. `ref` (a payment hash; null for the operator) is credited at most
   * once. Over the cap, "refuse" changes nothing; "credit-to-cap" (a zap or a paid
   * invoice: the money already arrived) credits what fits and records the rest as excess.
   */
  deposit(d: {
    pubkey: string;
    amountMsats: number;
    source: DepositSource;
    ref: string | null;
    note: string | null;
    maxBalanceMsats: number;
    overCap: "refuse" | "credit-to-cap";
    nowMs: number;
  }): DepositResult {
    this.inTx();
    if (!Number.isSafeInteger(d.amountMsats) || d.amountMsats <= 0) throw new Error("invariant: a deposit is a positive whole number of msats");
    if (d.ref !== null && this.st.depositExists!.get(d.ref)) return { status: "exists", balance: this.get(d.pubkey) };
    const room = this.room(d.pubkey, d.maxBalanceMsats);
    if (d.amountMsats > room && d.overCap === "refuse") return { status: "over_cap", roomMsats: room, balance: this.get(d.pubkey) };
    const creditedMsats = Math.min(room, d.amountMsats);
    const excessMsats = d.amountMsats - creditedMsats;
    this.st.ensure!.run(d.pubkey, d.nowMs);
    this.st.insertDeposit!.run(d.pubkey, creditedMsats, excessMsats, d.source, d.ref, d.note, d.nowMs);
    if (creditedMsats > 0) this.st.credit!.run({ a: creditedMsats, pubkey: d.pubkey, nowMs: d.nowMs });
    return { status: "credited", creditedMsats, excessMsats, balance: this.get(d.pubkey) };
  }

  /**
   * Debits `amountMsats` for one job, held until the job resolves. Returns what is left
   * to spend, or null (nothing written) when the balance does not cover it.
   */
  hold(requestId: string, pubkey: string, amountMsats: number, nowMs: number): number | null {
    this.inTx();
    if (!Number.isSafeInteger(amountMsats) || amountMsats <= 0) throw new Error("invariant: a hold is a positive whole number of msats");
    const upd = this.st.hold!.run({ a: amountMsats, pubkey, nowMs });
    if (upd.changes !== 1) return null;
    this.st.insertHold!.run(requestId, pubkey, amountMsats, nowMs);
    return this.available(pubkey);
  }

  /**
   * Resolves the job's hold, if it has one still held: "spent" when the job was done,
   * "refunded" (back to the balance, never to the pool) when it failed or expired.
   * Returns the msats moved (0 without a held hold).
   */
  resolveHold(requestId: string, outcome: "spent" | "refunded", reason: string | null, nowMs: number): number {
    this.inTx();
    const h = this.st.holdOf!.get(requestId) as HoldRow | undefined;
    if (!h || h.state !== "held") return 0;
    if (this.st.setHoldState!.run(outcome, h.id).changes !== 1) throw new Error(`invariant: hold ${h.id} was not held`);
    this.st.insertResolution!.run(h.id, outcome, reason, nowMs);
    const upd = (outcome === "spent" ? this.st.spend! : this.st.refund!).run({ a: h.amount_msats, pubkey: h.pubkey, nowMs });
    if (upd.changes !== 1) throw new Error(`invariant: held total of ${h.pubkey} below its hold ${h.id}`);
    return h.amount_msats;
  }

  /** The operator paid a customer back by hand: refused (null) if the balance does not cover it. */
  withdraw(pubkey: string, amountMsats: number, note: string | null, nowMs: number): BalanceView | null {
    this.inTx();
    if (!Number.isSafeInteger(amountMsats) || amountMsats <= 0) throw new Error("invariant: a withdrawal is a positive whole number of msats");
    if (this.st.withdraw!.run({ a: amountMsats, pubkey, nowMs }).changes !== 1) return null;
    this.st.insertWithdrawal!.run(pubkey, amountMsats, note, nowMs);
    return this.get(pubkey);
  }

  totals(): BalanceTotals {
    const r = this.st.totals!.get() as {
      accounts: number;
      balance: number;
      held: number;
      deposited: number;
      spent: number;
      withdrawn: number;
      excess: number;
    };
    return {
      accounts: r.accounts,
      balanceMsats: r.balance,
      heldMsats: r.held,
      depositedMsats: r.deposited,
      spentMsats: r.spent,
      withdrawnMsats: r.withdrawn,
      excessMsats: r.excess,
    };
  }

  recentDeposits(
    pubkey: string,
    limit = 20,
  ): { id: number; amountMsats: number; excessMsats: number; source: DepositSource; ref: string | null; note: string | null; createdAtMs: number }[] {
    const rows = this.st.recentDeposits!.all(pubkey, Math.min(Math.max(1, limit), 1000)) as {
      id: number;
      amount_msats: number;
      excess_msats: number;
      source: DepositSource;
      ref: string | null;
      note: string | null;
      created_at_ms: number;
    }[];
    return rows.map((r) => ({
      id: r.id,
      amountMsats: r.amount_msats,
      excessMsats: r.excess_msats,
      source: r.source,
      ref: r.ref,
      note: r.note,
      createdAtMs: r.created_at_ms,
    }));
  }

  // ---- invoices for POST /deposit ------------------------------------------------

  insertDepositInvoice(i: {
    paymentHash: string;
    pubkey: string;
    bolt11: string;
    amountMsats: number;
    backend: string;
    expiresAtMs: number;
    nowMs: number;
  }): void {
    this.inTx();
    this.st.insertDepositInvoice!.run(i.paymentHash, i.pubkey, i.bolt11, i.amountMsats, i.backend, i.expiresAtMs, i.nowMs);
  }

  openDepositInvoices(limit = 500): DepositInvoiceRow[] {
    return this.st.openDepositInvoices!.all(limit) as DepositInvoiceRow[];
  }

  depositInvoice(paymentHash: string): DepositInvoiceRow | null {
    return (this.st.depositInvoice!.get(paymentHash) as DepositInvoiceRow | undefined) ?? null;
  }

  /** Closes an open deposit invoice; false if it was not open (another process got there first). */
  closeDepositInvoice(paymentHash: string, state: "paid" | "expired", nowMs: number): boolean {
    this.inTx();
    return this.st.closeDepositInvoice!.run(state, state === "paid" ? nowMs : null, paymentHash).changes === 1;
  }
}
