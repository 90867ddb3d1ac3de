// SPEC §12, checked by `dvm-gate verify` from the history rows: every msat deposited is
// in a balance, held by a pending job, or spent (or paid back by the operator), to the
// msat, per customer; holds agree with their jobs; no balance below 0.
import type { Db } from "./db.js";

export function checkBalances(db: Db, report: (detail: string) => void): void {
  const rows = db
    .prepare(
      `SELECT b.pubkey, b.deposited_msats, b.balance_msats, b.held_msats, b.spent_msats, b.withdrawn_msats,
         (SELECT COALESCE(SUM(amount_msats), 0) FROM deposits d WHERE d.pubkey = b.pubkey) AS deposited,
         (SELECT COALESCE(SUM(amount_msats), 0) FROM balance_holds h WHERE h.pubkey = b.pubkey AND h.state = 'held') AS held,
         (SELECT COALESCE(SUM(amount_msats), 0) FROM balance_holds h WHERE h.pubkey = b.pubkey AND h.state = 'spent') AS spent,
         (SELECT COALESCE(SUM(amount_msats), 0) FROM withdrawals w WHERE w.pubkey = b.pubkey) AS withdrawn
       FROM balances b ORDER BY b.pubkey`,
    )
    .iterate() as IterableIterator<{
    pubkey: string;
    deposited_msats: number;
    balance_msats: number;
    held_msats: number;
    spent_msats: number;
    withdrawn_msats: number;
    deposited: number;
    held: number;
    spent: number;
    withdrawn: number;
  }>;
  let reported = 0;
  const say = (d: string) => {
    if (reported++ < 5) report(d);
  };
  for (const r of rows) {
    const who = `customer ${r.pubkey.slice(0, 16)}…`;
    if (r.balance_msats < 0 || r.held_msats < 0) say(`${who}: balance ${r.balance_msats}, held ${r.held_msats} msats`);
    if (r.deposited !== r.deposited_msats) say(`${who}: deposits sum to ${r.deposited} msats, the account says ${r.deposited_msats}`);
    if (r.held !== r.held_msats) say(`${who}: held debits sum to ${r.held} msats, the account says ${r.held_msats}`);
    if (r.spent !== r.spent_msats) say(`${who}: spent debits sum to ${r.spent} msats, the account says ${r.spent_msats}`);
    if (r.withdrawn !== r.withdrawn_msats) say(`${who}: refunds sum to ${r.withdrawn} msats, the account says ${r.withdrawn_msats}`);
    const derived = r.deposited - r.held - r.spent - r.withdrawn;
    if (derived !== r.balance_msats) say(`${who}: history gives a balance of ${derived} msats, the account says ${r.balance_msats}`);
  }
  const strays = db
    .prepare("SELECT COUNT(*) AS n FROM deposits d LEFT JOIN balances b ON b.pubkey = d.pubkey WHERE b.pubkey IS NULL AND d.amount_msats > 0")
    .get() as { n: number };
  if (strays.n > 0) say(`${strays.n} deposits credited to no account`);

  // Each hold agrees with its job: held while the job is open, spent once done, refunded
  // once failed or expired; its resolution exists exactly when it is resolved; a job paid
  // from the balance has paid exactly its hold.
  const bad = db
    .prepare(
      `SELECT h.id, h.state, q.state AS request_state FROM balance_holds h
         JOIN requests q ON q.request_id = h.request_id
         LEFT JOIN balance_resolutions s ON s.hold_id = h.id
       WHERE (h.state = 'held' AND (s.outcome IS NOT NULL OR q.state <> 'processing'))
          OR (h.state <> 'held' AND (s.outcome IS NULL OR s.outcome <> h.state))
          OR (h.state = 'spent' AND q.state <> 'done')
          OR (h.state = 'refunded' AND q.state NOT IN ('failed','expired'))
          OR h.pubkey <> q.pubkey OR h.amount_msats <> q.paid_msats OR h.amount_msats <> q.charge_msats LIMIT 1`,
    )
    .get() as { id: number; state: string; request_state: string } | undefined;
  if (bad) say(`balance hold ${bad.id} is ${bad.state} but its job is ${bad.request_state}, or their amounts disagree`);
  const unheld = db
    .prepare(
      `SELECT COUNT(*) AS n FROM requests q LEFT JOIN balance_holds h ON h.request_id = q.request_id
       WHERE q.payment_ref = 'balance:' || q.request_id AND h.id IS NULL`,
    )
    .get() as { n: number };
  if (unheld.n > 0) say(`${unheld.n} jobs say they were paid from a balance that holds nothing for them`);
  const orphans = db
    .prepare("SELECT COUNT(*) AS n FROM balance_holds h LEFT JOIN requests q ON q.request_id = h.request_id WHERE q.request_id IS NULL")
    .get() as { n: number };
  if (orphans.n > 0) say(`${orphans.n} balance holds without a job`);
}
