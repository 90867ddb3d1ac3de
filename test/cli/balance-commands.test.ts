// `dvm-gate balance show|credit|refund` and the balance in `identity show` (SPEC §8, §12),
// run as an operator runs them: `node bin/dvm-gate.js …` with a config in a temp dir.
// Bad input and refusals: exit 2, one "dvm-gate: …" line, nothing changed.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { nip19 } from "nostr-tools";
import { afterAll, describe, expect, it } from "vitest";
import { makeTmpDir } from "../helpers/tmp.js";
import { ledgerSettings } from "../../src/config/ledger-settings.js";
import { parseConfig } from "../../src/config/load.js";
import { Ledger } from "../../src/ledger/ledger.js";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const tmp = makeTmpDir("dvm-gate-cli-balance-");
afterAll(() => tmp.remove());

function freshConfig(): string {
  const dir = tmp.file(`case-${Math.random().toString(16).slice(2)}`);
  mkdirSync(dir, { recursive: true });
  const configPath = join(dir, "dvm-gate.json");
  const raw = { database: { path: "./data/dvm-gate.sqlite" }, balances: { maxBalanceSats: 1000 } };
  writeFileSync(configPath, JSON.stringify(raw));
  // Commands other than start open an existing ledger only: make it, as `start` would.
  const cfg = parseConfig(raw, { env: {}, baseDir: dir, sourcePath: configPath });
  Ledger.open(cfg.database.path, ledgerSettings(cfg), { nowMs: Date.now() }).close();
  return configPath;
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  json: () => any;
}

function cliEnv(configPath: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, DVM_GATE_CONFIG: configPath };
  for (const k of Object.keys(env)) if (k.startsWith("FREE_TIER_") || k.startsWith("TRUST_") || k === "DVM_GATE_DEBUG" || k === "DVM_GATE_NSEC") delete env[k];
  return env;
}

function cli(configPath: string, ...args: string[]): Run {
  const r = spawnSync(process.execPath, ["bin/dvm-gate.js", ...args], { cwd: REPO_ROOT, env: cliEnv(configPath), encoding: "utf8", timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, json: () => JSON.parse(r.stdout) };
}

/** Independent invocations at once (each is its own process), to keep the file quick. */
function cliAll(configPath: string, argLists: string[][]): Promise<Run[]> {
  return Promise.all(
    argLists.map(
      (args) =>
        new Promise<Run>((res, rej) => {
          const p = spawn(process.execPath, ["bin/dvm-gate.js", ...args], { cwd: REPO_ROOT, env: cliEnv(configPath), timeout: 30_000 });
          let stdout = "";
          let stderr = "";
          p.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
          p.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
          p.on("error", rej);
          p.on("close", (status) => res({ status, stdout, stderr, json: () => JSON.parse(stdout) }));
        }),
    ),
  );
}

function expectRefused(r: Run, reason: RegExp): void {
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

  it("refuses a credit over the cap, a refund over the balance and bad input, changing nothing", async () => {
    const cfg = freshConfig();
    expect(cli(cfg, "balance", "credit", hex, "900", "--note", "x").status).toBe(0);
    const cases: [string[], RegExp][] = [
      [["balance", "credit", hex, "101", "--note", "x"], /exceed balances.maxBalanceSats; room left 100000 msats/],
      [["balance", "refund", hex, "901", "--note", "x"], /refused, the balance is 900000 msats/],
      [["balance", "credit", hex, "5"], /--note TEXT is required/],
      [["balance", "credit", hex, "0", "--note", "x"], /more than 0/],
      [["balance", "credit", hex, "1.5", "--note", "x"], /whole number of sats/],
      [["balance", "credit", "not-a-key", "5", "--note", "x"], /not a pubkey/],
      [["balance", "show"], /missing PUBKEY/],
      [["balance", "empty", hex], /unknown subcommand/],
    ];
    const runs = await cliAll(
      cfg,
      cases.map(([args]) => args),
    );
    runs.forEach((r, i) => expectRefused(r, cases[i]![1]));
    expect(cli(cfg, "balance", "show", hex, "--json").json()).toMatchObject({ balanceMsats: 900_000, depositedMsats: 900_000, withdrawnMsats: 0 });
  });
});
