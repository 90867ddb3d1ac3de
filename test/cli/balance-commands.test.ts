// `dvm-gate balance show|credit|refund` and the balance in `identity show` (SPEC §8, §12),
// run as an operator runs them: `node bin/dvm-gate.js …` with a config in a temp dir.
// Bad input and refusals: exit 2, one "dvm-gate: …" line, nothing changed.
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { nip19 } from "nostr-tools";
import { afterAll, describe, expect, it } from "vitest";
import { makeTmpDir } from "../helpers/tmp.js";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const tmp = makeTmpDir("dvm-gate-cli-balance-");
afterAll(() => tmp.remove());

function freshConfig(): string {
  const dir = tmp.file(`case-${Math.random().toString(16).slice(2)}`);
  mkdirSync(dir, { recursive: true });
  const configPath = join(dir, "dvm-gate.json");
  writeFileSync(configPath, JSON.stringify({ database: { path: "./data/dvm-gate.sqlite" }, balances: { maxBalanceSats: 1000 } }));
  return configPath;
}

function cli(configPath: string, ...args: string[]) {
  const env: NodeJS.ProcessEnv = { ...process.env, DVM_GATE_CONFIG: configPath };
  for (const k of Object.keys(env)) if (k.startsWith("FREE_TIER_") || k.startsWith("TRUST_") || k === "DVM_GATE_DEBUG" || k === "DVM_GATE_NSEC") delete env[k];
  const r = spawnSync(process.execPath, ["bin/dvm-gate.js", ...args], { cwd: REPO_ROOT, env, encoding: "utf8", timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, json: () => JSON.parse(r.stdout) };
}

function expectRefused(r: ReturnType<typeof cli>, reason: RegExp): void {
  expect(r.status, r.stderr).toBe(2);
  expect(r.stdout).toBe("");
  const lines = r.stderr.split("\n").filter((l) => l.length > 0);
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^dvm-gate: /);
  expect(lines[0]).toMatch(reason);
}

const hex = "ab".repeat(32);
const npub = nip19.npubEncode(hex);

describe("dvm-gate balance", () => {
  it("credits by hand, shows it (also in identity show), and records a refund", () => {
    const cfg = freshConfig();
    const credit = cli(cfg, "balance", "credit", npub, "300", "--note", "paid on-chain, ticket 12");
    expect(credit.status, credit.stderr).toBe(0);
    expect(credit.stdout).toMatch(/credited 300 sats; balance is now 300000 msats/);
    const shown = cli(cfg, "balance", "show", hex, "--json").json();
    expect(shown).toMatchObject({ pubkey: hex, balanceMsats: 300_000, heldMsats: 0, depositedMsats: 300_000, maxBalanceMsats: 1_000_000 });
    expect(shown.recentDeposits).toMatchObject([{ source: "operator", amountMsats: 300_000, note: "paid on-chain, ticket 12" }]);
    expect(cli(cfg, "balance", "show", npub).stdout).toMatch(/balance\s+300000 msats/);
    expect(cli(cfg, "identity", "show", npub, "--json").json()).toMatchObject({ balanceMsats: 300_000, balanceHeldMsats: 0 });
    expect(cli(cfg, "identity", "show", npub).stdout).toMatch(/balance  300000 msats prepaid/);
    const refund = cli(cfg, "balance", "refund", hex, "100", "--note", "refunded by hand", "--json");
    expect(refund.status, refund.stderr).toBe(0);
    expect(refund.json()).toMatchObject({ balanceMsats: 200_000, withdrawnMsats: 100_000 });
    expect(cli(cfg, "verify").status).toBe(0);
  });

  it("refuses a credit over the cap, a refund over the balance and bad input, changing nothing", () => {
    const cfg = freshConfig();
    expect(cli(cfg, "balance", "credit", hex, "900", "--note", "x").status).toBe(0);
    expectRefused(cli(cfg, "balance", "credit", hex, "101", "--note", "x"), /exceed balances.maxBalanceSats; room left 100000 msats/);
    expectRefused(cli(cfg, "balance", "refund", hex, "901", "--note", "x"), /refused, the balance is 900000 msats/);
    expectRefused(cli(cfg, "balance", "credit", hex, "5"), /--note TEXT is required/);
    expectRefused(cli(cfg, "balance", "credit", hex, "0", "--note", "x"), /more than 0/);
    expectRefused(cli(cfg, "balance", "credit", hex, "1.5", "--note", "x"), /whole number of sats/);
    expectRefused(cli(cfg, "balance", "credit", "not-a-key", "5", "--note", "x"), /not a pubkey/);
    expectRefused(cli(cfg, "balance", "show"), /missing PUBKEY/);
    expectRefused(cli(cfg, "balance", "empty", hex), /unknown subcommand/);
    expect(cli(cfg, "balance", "show", hex, "--json").json()).toMatchObject({ balanceMsats: 900_000, depositedMsats: 900_000, withdrawnMsats: 0 });
  });
});
