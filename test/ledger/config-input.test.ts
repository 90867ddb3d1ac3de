// The free-tier settings the ledger runs on come from the config file and the
// FREE_TIER_* environment variables (SPEC §2, §10): wrong types are refused with a
// ConfigError naming the field path, overrides are applied, bad env values refused.
import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../../src/config/load.js";

function configError(raw: unknown, env: NodeJS.ProcessEnv = {}): string {
  try {
    parseConfig(raw, { env, baseDir: "/tmp" });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as Error).message;
    expect(message).not.toMatch(/\n|    at /); // one line, no stack
    return message;
  }
  throw new Error(`config was accepted: ${JSON.stringify(raw)} with env ${JSON.stringify(env)}`);
}

describe("config bad input", () => {
  const cases: [string, unknown, RegExp][] = [
    ["a budget given as text", { freeTier: { budgetsSats: { new: "x" } } }, /freeTier\.budgetsSats\.new: .*expected number/],
    ["a fractional budget", { freeTier: { budgetsSats: { established: 1.5 } } }, /freeTier\.budgetsSats\.established: must be a whole number of sats/],
    ["a negative budget", { freeTier: { budgetsSats: { trusted: -1 } } }, /freeTier\.budgetsSats\.trusted: must be ≥ 0/],
    ["a huge budget", { freeTier: { budgetsSats: { elite: 1e16 } } }, /freeTier\.budgetsSats\.elite: must be ≤ /],
    ["an unknown tier budget", { freeTier: { budgetsSats: { superstar: 5 } } }, /freeTier\.budgetsSats: Unrecognized key: "superstar"/],
    ["a pool given as text", { freeTier: { poolInitialSats: "10000" } }, /freeTier\.poolInitialSats: /],
    ["a credit share above 100 %", { freeTier: { poolCreditPct: 101 } }, /freeTier\.poolCreditPct: /],
    ["a fractional credit share", { freeTier: { poolCreditPct: 2.5 } }, /freeTier\.poolCreditPct: must be a whole percentage/],
    ["a pending limit as text", { freeTier: { maxPendingPerPubkey: "3" } }, /freeTier\.maxPendingPerPubkey: /],
    ["an unknown freeTier key", { freeTier: { bogus: 1 } }, /freeTier: Unrecognized key: "bogus"/],
    ["an unknown synchronous mode", { database: { synchronous: "OFF" } }, /database\.synchronous: /],
    ["a job kind outside 5000–5999", { jobs: { kinds: { "1234": { priceSats: 1 } } } }, /jobs\.kinds\.1234: job kinds are 5000–5999/],
    ["a negative price", { jobs: { kinds: { "5050": { priceSats: -10 } } } }, /jobs\.kinds\.5050\.priceSats: must be ≥ 0/],
    ["a timeout of 0", { jobs: { timeoutSec: 0 } }, /jobs\.timeoutSec: /],
    ["a config that is an array", [], /\(config\): .*expected object/],
    ["a config that is a string", "x", /\(config\): .*expected object/],
  ];
  for (const [name, raw, pattern] of cases) it(`refuses ${name}, naming the field`, () => expect(configError(raw)).toMatch(pattern));
});

describe("FREE_TIER_* environment overrides", () => {
  it("applies each override over the defaults, in sats converted to msats once", () => {
    const cfg = parseConfig(
      {},
      {
        env: {
          FREE_TIER_BUDGET_NEW: "7",
          FREE_TIER_BUDGET_ESTABLISHED: "60",
          FREE_TIER_BUDGET_TRUSTED: "250",
          FREE_TIER_BUDGET_ELITE: "2000",
          FREE_TIER_POOL_INITIAL_SATS: "300",
          FREE_TIER_POOL_CREDIT_PCT: "25",
        },
      },
    );
    expect(cfg.freeTier).toEqual({
      budgetsMsats: { new: 7000, established: 60_000, trusted: 250_000, elite: 2_000_000 },
      poolInitialMsats: 300_000,
      poolCreditPct: 25,
      maxPendingPerPubkey: 3,
    });
  });

  it("keeps the seed's defaults without overrides", () => {
    expect(parseConfig({}, { env: {} }).freeTier).toEqual({
      budgetsMsats: { new: 0, established: 50_000, trusted: 200_000, elite: 1_000_000 },
      poolInitialMsats: 10_000_000,
      poolCreditPct: 10,
      maxPendingPerPubkey: 3,
    });
  });

  it("lets an env var win over the config file and leaves the other tiers as configured", () => {
    const cfg = parseConfig(
      { freeTier: { budgetsSats: { new: 1, established: 60, trusted: 300, elite: 900 } } },
      { env: { FREE_TIER_BUDGET_ESTABLISHED: "70" } },
    );
    expect(cfg.freeTier.budgetsMsats).toEqual({ new: 1000, established: 70_000, trusted: 300_000, elite: 900_000 });
  });

  it("ignores an empty variable", () => {
    expect(parseConfig({}, { env: { FREE_TIER_BUDGET_NEW: "" } }).freeTier.budgetsMsats.new).toBe(0);
  });

  for (const bad of ["abc", "-1", "1.5", "1e3", "0x10", "99999999999999999999"])
    it(`refuses FREE_TIER_BUDGET_NEW=${bad}, naming the variable`, () => {
      expect(configError({}, { FREE_TIER_BUDGET_NEW: bad })).toMatch(/^FREE_TIER_BUDGET_NEW: /);
    });

  it("refuses an override that the schema refuses, naming the field it lands in", () => {
    expect(configError({}, { FREE_TIER_POOL_CREDIT_PCT: "101" })).toMatch(/freeTier\.poolCreditPct: /);
    expect(configError({}, { FREE_TIER_POOL_INITIAL_SATS: "x" })).toMatch(/^FREE_TIER_POOL_INITIAL_SATS: /);
  });
});
