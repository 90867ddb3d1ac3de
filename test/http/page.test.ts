// The page renderer on its own: every string it prints is escaped, whatever field it
// comes from, and the chart copes with one point and with a flat balance.
import { describe, expect, it } from "vitest";
import type { GrantRecord } from "../../src/ledger/ledger.js";
import { balanceChart, esc, renderPage, type PageData } from "../../src/http/page.js";

const EVIL = `"'><script>alert(1)</script>&`;
const totals = { initialMsats: 10_000_000, creditedMsats: 0, absorbedMsats: 10_000, pendingMsats: 0, poolMsats: 9_990_000 };

function data(over: Partial<PageData> = {}): PageData {
  const grant = {
    seq: 1,
    prevEventId: null,
    reservationId: 1,
    requestId: EVIL,
    pubkey: EVIL,
    kind: 5050,
    label: EVIL,
    tier: EVIL,
    absorbedMsats: 10_000,
    chargedMsats: 0,
    totals,
    createdAtMs: 1_750_000_000_000,
    eventId: EVIL,
    eventJson: null,
  } as unknown as GrantRecord;
  return {
    gatePubkey: EVIL,
    nowMs: 1_750_000_060_000,
    totals,
    balance: [{ atMs: 1_750_000_000_000, poolMsats: 9_990_000, what: EVIL }],
    decisions24h: { free: 1 },
    decisionsAll: { free: 1 },
    decisionsSinceStart: { free: 1, partial: 0, gate: 0, blocked: 0, error: 0, ignored: 0 },
    marks: [{ atMs: 1_750_000_030_000, what: "credit", amountMsats: 5000, detail: EVIL }],
    decisionsByHour: Array.from({ length: 24 }, (_, i) => ({
      startMs: 1_750_000_060_000 - (24 - i) * 3_600_000,
      counts: { free: i % 2, partial: 0, gate: 0, blocked: 0 },
    })),
    money: {
      invoices24h: { issued: { count: 1, msats: 10_000 }, paid: { count: 1, msats: 10_000 }, expired: { count: 0, msats: 0 }, unpaid: { count: 0, msats: 0 } },
      invoicesAll: { issued: { count: 1, msats: 10_000 }, paid: { count: 1, msats: 10_000 }, expired: { count: 0, msats: 0 }, unpaid: { count: 0, msats: 0 } },
      earned24h: { count: 1, msats: 10_000 },
      earnedAll: { count: 1, msats: 10_000 },
    },
    relays: [{ relay: EVIL, up: true }],
    recentGrants: [grant],
    budgetsMsats: { new: 0, established: 50_000, trusted: 200_000, elite: 1_000_000 },
    pricesMsats: [[5050, 10_000]],
    ...over,
  };
}

describe("renderPage", () => {
  it("escapes hostile strings in every field it prints", () => {
    const html = renderPage(data());
    expect(html).not.toContain("<script");
    expect(html).not.toMatch(/"'>/);
    expect(html).toContain(esc(EVIL));
    expect(esc(EVIL)).toBe("&quot;&#39;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&amp;");
    // gate key, grant label, tier, customer title, event title and chart tooltip
    expect(html.split(esc(EVIL)).length - 1).toBeGreaterThanOrEqual(6);
  });

  it("says so when there are no grants", () => {
    expect(renderPage(data({ recentGrants: [] }))).toContain("no grants yet");
  });

  it("draws one point and a flat balance without dividing by zero", () => {
    const one = balanceChart([{ atMs: 5, poolMsats: 0, what: "now" }]);
    expect(one).not.toMatch(/NaN|Infinity/);
    const flat = balanceChart([
      { atMs: 1, poolMsats: 7000, what: "seed" },
      { atMs: 2, poolMsats: 7000, what: "now" },
    ]);
    expect(flat).not.toMatch(/NaN|Infinity/);
    expect(flat).toMatch(/<polyline points="96\.0,(\d+\.\d) 936\.0,\1 936\.0,\1"/);
  });
});
