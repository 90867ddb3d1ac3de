// SPEC §5 decay, on the pure functions: only a positive score wears down with absence.
import { describe, expect, it } from "vitest";
import { applyAbuse, applySuccess, DAY_MS, freshTrustState, scoreAt } from "../../src/policy/tiers.js";
import { testLedgerSettings } from "../helpers/ledger-settings.js";

const trust = testLedgerSettings().trust;
const T0 = 1_750_000_000_000;

describe("score decay", () => {
  it("wears a positive score down by 1 a day after 30 idle days, never below 0", () => {
    let s = freshTrustState(T0);
    for (let i = 0; i < 3; i++) s = applySuccess(s, T0, trust); // 6 points, active at T0
    expect(scoreAt(s, T0 + 30 * DAY_MS, trust)).toBe(6);
    expect(scoreAt(s, T0 + 32 * DAY_MS, trust)).toBe(4);
    expect(scoreAt(s, T0 + 100 * DAY_MS, trust)).toBe(0);
  });

  it("does not forgive abuse by absence: a negative score stays as it is", () => {
    let s = applySuccess(freshTrustState(T0), T0, trust); // +2, active at T0
    s = applyAbuse(s, T0 + DAY_MS, trust); // −3
    expect(s.score).toBe(-3);
    expect(scoreAt(s, T0 + 400 * DAY_MS, trust)).toBe(-3);
  });
});
