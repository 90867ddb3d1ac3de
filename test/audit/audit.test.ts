// auditGrants on real grant histories (a real ledger signing with the gate's key), and
// on tampered copies of them: each break is named by the check it breaks.
import { afterAll, describe, expect, it } from "vitest";
import { generateSecretKey, type Event } from "nostr-tools/pure";
import { auditGrants, type AuditCheck } from "../../src/peers/audit.js";
import { verifyLedger } from "../../src/ledger/verify.js";
import { makeTmpDir } from "../helpers/tmp.js";
import { HOUR_MS, makeHistory, resign, setTag, T0_MS, type History } from "./history.js";

const tmp = makeTmpDir("dvm-gate-audit-");
let n = 0;
const history = (opts?: Parameters<typeof makeHistory>[1]): History => {
  const h = makeHistory(tmp.file(`ledger-${n++}.sqlite`), opts);
  h.ledger.close();
  return h;
};
afterAll(() => tmp.remove());

const checks = (r: { problems: { check: AuditCheck }[] }) => [...new Set(r.problems.map((p) => p.check))].sort();
const seqOf = (e: Event) => Number(e.tags.find((t) => t[0] === "seq")![1]);

describe("auditGrants", () => {
  const h = history();

  it("passes an honest history and reports its size and last totals", () => {
    expect(h.grants).toHaveLength(6);
    const r = auditGrants([...h.grants, h.poolStatus], h.gatePubkey);
    expect(r.problems).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.grants).toBe(6);
    expect(r.customers).toBe(4);
    expect(r.last?.seq).toBe(6);
    const lastTotals = h.grants
      .at(-1)!
      .tags.find((t) => t[0] === "totals")!
      .slice(1)
      .map(Number);
    expect(r.last?.totals).toEqual({
      initialMsats: lastTotals[0],
      creditedMsats: lastTotals[1],
      absorbedMsats: lastTotals[2],
      pendingMsats: lastTotals[3],
      poolMsats: lastTotals[4],
    });
    expect(r.notes?.join(" ")).toMatch(/pool status/);
  });

  it("ignores order and duplicate copies of the same event", () => {
    const shuffled = [...h.grants].reverse();
    const r = auditGrants([...shuffled, ...h.grants, h.poolStatus, h.poolStatus], h.gatePubkey);
    expect(r.ok).toBe(true);
    expect(r.grants).toBe(6);
  });

  it("names a missing seq as a chain break", () => {
    const r = auditGrants([...h.grants.filter((e) => seqOf(e) !== 3), h.poolStatus], h.gatePubkey);
    expect(r.ok).toBe(false);
    expect(checks(r)).toEqual(["chain"]);
    expect(r.problems[0]!.detail).toMatch(/seq 3 is missing/);
  });

  it("names a second event with the same seq as a chain break", () => {
    const twin = resign(h.grants[1]!, h.gateSk, (t) => setTag(t, "absorbed", ["1"]));
    const r = auditGrants([...h.grants, twin, h.poolStatus], h.gatePubkey);
    expect(checks(r)).toContain("chain");
    expect(r.problems.some((p) => /seq 2 appears 2 times/.test(p.detail))).toBe(true);
  });

  it("names a prev that is not the id of the grant before", () => {
    const last = h.grants.at(-1)!;
    const relinked = resign(last, h.gateSk, (t) => setTag(t, "prev", ["ab".repeat(32)]));
    const r = auditGrants([...h.grants.slice(0, -1), relinked, h.poolStatus], h.gatePubkey);
    expect(checks(r)).toEqual(["chain"]);
    expect(r.problems[0]!.detail).toMatch(/seq 6 .* names prev/);
  });

  it("names a wrong total on a grant re-signed by the gate", () => {
    const last = h.grants.at(-1)!;
    const totals = last.tags.find((t) => t[0] === "totals")!.slice(1);
    const bumped = [totals[0]!, totals[1]!, totals[2]!, totals[3]!, String(Number(totals[4]) + 1000)];
    const wrong = resign(last, h.gateSk, (t) => setTag(t, "totals", bumped));
    const r = auditGrants([...h.grants.slice(0, -1), wrong, h.poolStatus], h.gatePubkey);
    expect(checks(r)).toEqual(["totals"]);
    expect(r.problems[0]!.detail).toMatch(/seq 6: initial .* ≠ pool/);
  });

  it("names totals whose absorbed does not grow by the grant, even when they balance", () => {
    const last = h.grants.at(-1)!;
    const [i, c, a, p, pool] = last.tags
      .find((t) => t[0] === "totals")!
      .slice(1)
      .map(Number) as [number, number, number, number, number];
    // Moves 1 sat from absorbed back to the pool: conservation holds, the history does not.
    const wrong = resign(last, h.gateSk, (t) => setTag(t, "totals", [i, c, a - 1000, p, pool + 1000].map(String)));
    const r = auditGrants([...h.grants.slice(0, -1), wrong], h.gatePubkey);
    expect(checks(r)).toEqual(["totals"]);
    expect(r.problems[0]!.detail).toMatch(/absorbed total grew by/);
  });

  it("names a forged signature (a tag altered, the signature kept)", () => {
    const victim = h.grants[2]!;
    const forged: Event = { ...victim, tags: setTag(victim.tags, "absorbed", ["1"]) };
    const r = auditGrants([...h.grants.filter((e) => e !== victim), forged, h.poolStatus], h.gatePubkey);
    expect(r.ok).toBe(false);
    expect(r.problems[0]!.check).toBe("signature");
    expect(r.problems[0]!.detail).toMatch(/does not verify/);
  });

  it("names a grant signed by another key", () => {
    const victim = h.grants[4]!;
    const foreign = resign(victim, generateSecretKey(), (t) => t);
    const r = auditGrants([...h.grants.filter((e) => e !== victim), foreign, h.poolStatus], h.gatePubkey);
    expect(r.problems[0]!.check).toBe("signature");
    expect(r.problems[0]!.detail).toMatch(/not the gate/);
  });

  it("names a malformed grant as a format problem", () => {
    const broken = resign(h.grants.at(-1)!, h.gateSk, (t) => t.filter((x) => x[0] !== "totals"));
    const r = auditGrants([...h.grants.slice(0, -1), broken], h.gatePubkey);
    expect(checks(r)).toEqual(["format"]);
    expect(r.problems[0]!.detail).toMatch(/totals/);
  });

  it("skips the budget check, with a note, when no budgets are known", () => {
    const r = auditGrants(h.grants, h.gatePubkey);
    expect(r.ok).toBe(true);
    expect(r.notes?.join(" ")).toMatch(/budget check skipped/);
  });
});

describe("auditGrants budgets", () => {
  it("names a customer whose grants in 24 h exceed the published budget of their tier", () => {
    // The ledger enforces 1000 sats for elite, the pool status claims 25: the grants
    // (10 + 20 sats within an hour) prove the gate gave more than it says it does.
    const h = history({ statusBudgetsSats: { new: 0, established: 50, trusted: 200, elite: 25 } });
    const r = auditGrants([...h.grants, h.poolStatus], h.gatePubkey);
    expect(checks(r)).toEqual(["budget"]);
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]!.detail).toMatch(/absorbed 30000 msats in the 24 h up to grant seq 3, over the elite budget of 25000 msats/);
  });

  it("uses budgets given by the caller over the pool status event", () => {
    const h = history();
    const r = auditGrants([...h.grants, h.poolStatus], h.gatePubkey, { new: 0, established: 50_000, trusted: 200_000, elite: 25_000 });
    expect(checks(r)).toEqual(["budget"]);
    expect(r.notes?.join(" ")).toMatch(/given configuration/);
  });

  it("counts only the rolling 24 h: the same spend a day apart is within budget", () => {
    const jobs = [
      { tier: "elite" as const, who: 0, priceSats: 20, atMs: T0_MS + 1000 },
      { tier: "elite" as const, who: 0, priceSats: 20, atMs: T0_MS + 25 * HOUR_MS },
      { tier: "elite" as const, who: 0, priceSats: 20, atMs: T0_MS + 50 * HOUR_MS },
    ];
    const budgets = { new: 0, established: 50, trusted: 200, elite: 25 };
    const apart = history({ jobs, statusBudgetsSats: budgets });
    expect(auditGrants([...apart.grants, apart.poolStatus], apart.gatePubkey).ok).toBe(true);
    const close = history({ jobs: jobs.map((j, i) => ({ ...j, atMs: T0_MS + 1000 + i * 20 * HOUR_MS })), statusBudgetsSats: budgets });
    const r = auditGrants([...close.grants, close.poolStatus], close.gatePubkey);
    expect(checks(r)).toEqual(["budget"]);
    expect(r.problems.map((p) => p.detail.match(/seq (\d+)/)![1])).toEqual(["2", "3"]);
  });
});

describe("auditGrants counts the budget window from the decision (the grant's decided tag), as verify does", () => {
  const budgets = { new: 0, established: 50, trusted: 200, elite: 25 };
  const DAY_SEC = 2 * 86_400;

  it("signs the decision time into each grant, in whole seconds", () => {
    const h = history({ timeoutSec: DAY_SEC, jobs: [{ tier: "elite", who: 0, priceSats: 20, atMs: T0_MS + 1_700, settleAtMs: T0_MS + 23 * HOUR_MS }] });
    const g = h.grants[0]!;
    expect(g.tags.find((t) => t[0] === "decided")).toEqual(["decided", String(Math.floor((T0_MS + 1_700) / 1000))]);
    expect(g.created_at).toBe(Math.floor((T0_MS + 23 * HOUR_MS) / 1000));
  });

  it("passes a job decided 25 h before the next one even though it was settled only 2 h before it", () => {
    // The ledger enforces the same 25 sats it publishes: an honest gate. Settlement
    // times are 2 h apart, decisions 25 h apart: counted by created_at this looked like
    // 40 sats in 24 h.
    const jobs = [
      { tier: "elite" as const, who: 0, priceSats: 20, atMs: T0_MS + 1000, settleAtMs: T0_MS + 23 * HOUR_MS },
      { tier: "elite" as const, who: 0, priceSats: 20, atMs: T0_MS + 25 * HOUR_MS },
    ];
    const dir = tmp.file(`decided-honest.sqlite`);
    const h = makeHistory(dir, { timeoutSec: DAY_SEC, ledgerBudgetsSats: budgets, jobs });
    try {
      expect(h.grants).toHaveLength(2);
      expect(verifyLedger(h.ledger.db)).toEqual([]);
      const r = auditGrants([...h.grants, h.poolStatus], h.gatePubkey);
      expect(r.problems).toEqual([]);
      expect(r.ok).toBe(true);
    } finally {
      h.ledger.close();
    }
  });

  it("names two jobs decided 10 h apart over the budget even when their grants were posted 25 h apart", () => {
    // The ledger gave 1000 sats for elite, the pool status claims 25: decided within
    // 10 h, 40 sats were given in one window, though the second grant was posted 25 h
    // after the first (counted by created_at, this slipped through).
    const jobs = [
      { tier: "elite" as const, who: 0, priceSats: 20, atMs: T0_MS + 1000 },
      { tier: "elite" as const, who: 0, priceSats: 20, atMs: T0_MS + 10 * HOUR_MS, settleAtMs: T0_MS + 25 * HOUR_MS + 2000 },
    ];
    const h = history({ timeoutSec: DAY_SEC, statusBudgetsSats: budgets, jobs });
    expect(h.grants[1]!.created_at - h.grants[0]!.created_at).toBeGreaterThan(24 * 3600);
    const r = auditGrants([...h.grants, h.poolStatus], h.gatePubkey);
    expect(checks(r)).toEqual(["budget"]);
    expect(r.problems[0]!.detail).toMatch(/absorbed 40000 msats in the 24 h up to grant seq 2, over the elite budget of 25000 msats/);
  });

  it("falls back to created_at, with a note, for grants without a decided tag, and refuses a decision after the post", () => {
    const h = history();
    const undated = h.grants.map((g) => resign(g, h.gateSk, (tags) => tags.filter((t) => t[0] !== "decided")));
    // Re-signing changes ids: rebuild the prev chain so only the decided tag differs.
    for (let i = 1; i < undated.length; i++) undated[i] = resign(undated[i]!, h.gateSk, (tags) => setTag(tags, "prev", [undated[i - 1]!.id]));
    const r = auditGrants([...undated, h.poolStatus], h.gatePubkey);
    expect(r.problems).toEqual([]);
    expect(r.notes?.join(" ")).toMatch(/6 grants have no decided tag/);

    const late = resign(h.grants[0]!, h.gateSk, (tags) => setTag(tags, "decided", [String(h.grants[0]!.created_at + 1)]));
    const bad = auditGrants([late, ...h.grants.slice(1), h.poolStatus], h.gatePubkey);
    expect(bad.problems.some((p) => p.check === "format" && /decided after the grant was posted/.test(p.detail))).toBe(true);
  });
});
