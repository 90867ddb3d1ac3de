// The operator page's figures straight from a real ledger file, without a browser:
// invoices by what became of them (24 h and all time), earnings, decisions by hour,
// and a pool balance history worked back from now that must land exactly on the seed.
import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { ledgerSettings } from "../../src/cli/context.js";
import { parseConfig } from "../../src/config/load.js";
import { insertInvoice, markInvoiceExpired, markInvoicePaid } from "../../src/ledger/invoice-store.js";
import { Ledger } from "../../src/ledger/ledger.js";
import { DAY_MS, HOUR_MS, ReportStore } from "../../src/ledger/report-store.js";
import { makeTmpDir } from "../helpers/tmp.js";

const SAT = 1000;
const tmp = makeTmpDir("dvm-gate-report-");
afterAll(() => tmp.remove());
const hex = () => randomBytes(32).toString("hex");

describe("ReportStore", () => {
  it("counts invoices, earnings and decisions, and its balance history adds up from the seed to now", () => {
    const cfg = parseConfig(
      { database: { path: tmp.file("r.sqlite") }, freeTier: { poolInitialSats: 1000 }, payments: { invoiceExpirySec: 600 } },
      { env: {} },
    );
    const now = Date.UTC(2026, 0, 10, 12, 30);
    const ledger = Ledger.open(cfg.database.path, ledgerSettings(cfg), { nowMs: now - 3 * DAY_MS });
    const store = new ReportStore(ledger.db);
    const elite = hex();
    ledger.setTier(elite, "elite", now - 3 * DAY_MS);

    // Two days ago: a free job done, a paid job done (its invoice paid).
    const old = now - 2 * DAY_MS;
    const free1 = hex();
    ledger.decide({ requestId: free1, pubkey: elite, kind: 5050, priceMsats: 10 * SAT }, old);
    ledger.settle(free1, {}, old + 1000);
    const payer = hex();
    const paidOld = hex();
    ledger.decide({ requestId: paidOld, pubkey: payer, kind: 5050, priceMsats: 10 * SAT }, old);
    insertInvoice(ledger.db, {
      paymentHash: hex(),
      requestId: paidOld,
      bolt11: "lnbcrt1",
      amountMsats: 10 * SAT,
      backend: "dev",
      expiresAtMs: old + 600_000,
      createdAtMs: old,
    });
    ledger.db.prepare("UPDATE invoices SET state = 'paid', paid_at_ms = ? WHERE request_id = ?").run(old + 5000, paidOld);
    ledger.markPaid(paidOld, { paidMsats: 10 * SAT, paymentRef: "ref-old", paidAtMs: old + 5000 }, old + 5000);
    ledger.settle(paidOld, {}, old + 9000);

    // In the last 24 h: a free job voided, a paid job done, an expired and an open invoice.
    const recent = now - 3 * HOUR_MS;
    const free2 = hex();
    ledger.decide({ requestId: free2, pubkey: elite, kind: 5050, priceMsats: 10 * SAT }, recent);
    ledger.fail(free2, "worker failed", recent + 1000);
    const paidNew = hex();
    ledger.decide({ requestId: paidNew, pubkey: payer, kind: 5050, priceMsats: 20 * SAT }, recent);
    const paidHash = hex();
    insertInvoice(ledger.db, {
      paymentHash: paidHash,
      requestId: paidNew,
      bolt11: "lnbcrt2",
      amountMsats: 20 * SAT,
      backend: "dev",
      expiresAtMs: recent + 600_000,
      createdAtMs: recent,
    });
    markInvoicePaid(ledger.db, paidHash, recent + 2000);
    ledger.markPaid(paidNew, { paidMsats: 20 * SAT, paymentRef: "ref-new", paidAtMs: recent + 2000 }, recent + 2000);
    ledger.settle(paidNew, {}, recent + 4000);
    const gone = hex();
    ledger.decide({ requestId: gone, pubkey: hex(), kind: 5050, priceMsats: 10 * SAT }, recent);
    const goneHash = hex();
    insertInvoice(ledger.db, {
      paymentHash: goneHash,
      requestId: gone,
      bolt11: "lnbcrt3",
      amountMsats: 10 * SAT,
      backend: "dev",
      expiresAtMs: recent + 600_000,
      createdAtMs: recent,
    });
    markInvoiceExpired(ledger.db, goneHash);
    // Open but past due and not swept yet: counted as expired, not as payable.
    const late = hex();
    ledger.decide({ requestId: late, pubkey: hex(), kind: 5050, priceMsats: 10 * SAT }, now - HOUR_MS);
    insertInvoice(ledger.db, {
      paymentHash: hex(),
      requestId: late,
      bolt11: "lnbcrt4",
      amountMsats: 10 * SAT,
      backend: "dev",
      expiresAtMs: now - 1,
      createdAtMs: now - HOUR_MS,
    });
    const open = hex();
    ledger.decide({ requestId: open, pubkey: hex(), kind: 5050, priceMsats: 30 * SAT }, now - 60_000);
    insertInvoice(ledger.db, {
      paymentHash: hex(),
      requestId: open,
      bolt11: "lnbcrt5",
      amountMsats: 30 * SAT,
      backend: "dev",
      expiresAtMs: now + 600_000,
      createdAtMs: now - 60_000,
    });
    ledger.credit(7 * SAT, "operator", "top-up", now - 30 * 60_000);

    const r = store.pageReport(now);
    const cm = (count: number, sats: number) => ({ count, msats: sats * SAT });
    expect(r.money.invoicesAll).toEqual({ issued: cm(5, 80), paid: cm(2, 30), expired: cm(2, 20), unpaid: cm(1, 30) });
    expect(r.money.invoices24h).toEqual({ issued: cm(4, 70), paid: cm(1, 20), expired: cm(2, 20), unpaid: cm(1, 30) });
    expect(r.money.earnedAll).toEqual(cm(2, 30));
    expect(r.money.earned24h).toEqual(cm(1, 20));
    expect(r.decisionsAll).toEqual({ free: 2, gate: 5 });
    expect(r.decisions24h).toEqual({ free: 1, gate: 4 });
    // Hours: 09:00 (3 h ago: free2, paidNew, gone), 11:00 (late), 12:00 (open).
    const hour = (h: number) => r.decisionsByHour.find((b) => b.startMs === Date.UTC(2026, 0, 10, h))!.counts;
    expect(r.decisionsByHour).toHaveLength(24);
    expect(r.decisionsByHour.at(-1)!.startMs).toBe(Date.UTC(2026, 0, 10, 12));
    expect(hour(9)).toEqual({ free: 1, partial: 0, gate: 2, blocked: 0 });
    expect(hour(11)).toEqual({ free: 0, partial: 0, gate: 1, blocked: 0 });
    expect(hour(12)).toEqual({ free: 0, partial: 0, gate: 1, blocked: 0 });

    // The balance worked back from now starts at the seed, exactly.
    expect(r.balance[0]).toMatchObject({ poolMsats: 1000 * SAT, change: null });
    expect(r.balance.at(-1)).toMatchObject({ atMs: now, poolMsats: ledger.totals().poolMsats, change: null });
    for (let i = 1; i < r.balance.length - 1; i++) expect(r.balance[i]!.poolMsats - r.balance[i - 1]!.poolMsats).toBe(r.balance[i]!.change!.deltaMsats);
    // Credits: the operator's 7 sats and 10 % of each paid job; returns: the voided free job.
    expect(r.marks.filter((m) => m.what === "credit").map((m) => m.amountMsats)).toEqual([1 * SAT, 2 * SAT, 7 * SAT]);
    expect(r.marks.filter((m) => m.what !== "credit")).toEqual([expect.objectContaining({ what: "void", amountMsats: 10 * SAT })]);
    ledger.close();
  });
});
