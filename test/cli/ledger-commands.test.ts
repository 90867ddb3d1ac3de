// The ledger commands of SPEC §8, run as a user runs them: `node bin/dvm-gate.js …`
// from the repo root, with DVM_GATE_CONFIG pointing at a config in a temp dir.
// Bad input must give exit code 2 and exactly one "dvm-gate: …" line on stderr.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { nip19 } from "nostr-tools";
import { generateSecretKey, getPublicKey } from "nostr-tools/pure";
import { afterAll, describe, expect, it } from "vitest";
import { ledgerSettings } from "../../src/cli/context.js";
import { parseConfig } from "../../src/config/load.js";
import { Ledger } from "../../src/ledger/ledger.js";
import { grantSigner } from "../../src/events/grant-event.js";
import { makeTmpDir } from "../helpers/tmp.js";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const tmp = makeTmpDir("dvm-gate-cli-");
afterAll(() => tmp.remove());

const BASE_CONFIG = {
  database: { path: "./data/dvm-gate.sqlite" },
  jobs: { kinds: { "5050": { priceSats: 10 } } },
  freeTier: { budgetsSats: { new: 0, established: 50, trusted: 200, elite: 1000 }, poolInitialSats: 300, poolCreditPct: 10, maxPendingPerPubkey: 3 },
};

let configNo = 0;
/**
 * A fresh config file in its own folder, and its database created as `start` would
 * (read commands refuse a missing one); `{ db: false }` leaves the database absent.
 */
function freshConfig(raw: unknown = BASE_CONFIG, opts: { db?: boolean } = {}): { configPath: string; dbPath: string; raw: unknown } {
  const dir = tmp.file(`case-${++configNo}`);
  mkdirSync(dir, { recursive: true });
  const configPath = join(dir, "dvm-gate.json");
  writeFileSync(configPath, JSON.stringify(raw, null, 2));
  const dbPath = join(dir, "data", "dvm-gate.sqlite");
  if (opts.db !== false) {
    try {
      const cfg = parseConfig(raw, { env: {}, baseDir: dir, sourcePath: configPath });
      Ledger.open(cfg.database.path, ledgerSettings(cfg), { nowMs: Date.now() }).close();
    } catch {
      // a config the CLI must refuse: no database to make
    }
  }
  return { configPath, dbPath, raw };
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

function expectOk(r: Run): Run {
  expect(r.status, `stderr: ${r.stderr}`).toBe(0);
  return r;
}

/** Exit 2, nothing on stdout, one line on stderr starting "dvm-gate:", no stack trace. */
function expectUserError(r: Run, names?: RegExp): string {
  expect(r.status, `stdout: ${r.stdout} stderr: ${r.stderr}`).toBe(2);
  expect(r.stdout).toBe("");
  const lines = r.stderr.split("\n").filter((l) => l.length > 0);
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^dvm-gate: /);
  expect(r.stderr).not.toMatch(/\n\s+at |Error: /);
  if (names) expect(lines[0]).toMatch(names);
  return lines[0]!;
}

const TOTAL_KEYS = ["absorbedMsats", "creditedMsats", "initialMsats", "pendingMsats", "poolMsats"];

describe("dvm-gate pool", () => {
  it("pool status --json prints exactly the five totals as numbers", () => {
    const { configPath } = freshConfig();
    const t = expectOk(cli(configPath, "pool", "status", "--json")).json();
    expect(Object.keys(t).sort()).toEqual(TOTAL_KEYS);
    for (const k of TOTAL_KEYS) expect(typeof t[k], k).toBe("number");
    expect(t).toEqual({ initialMsats: 300_000, creditedMsats: 0, absorbedMsats: 0, pendingMsats: 0, poolMsats: 300_000 });
  });

  it("takes --config before the command as well as after it", () => {
    const { configPath: envConfig } = freshConfig();
    const other = freshConfig({ ...BASE_CONFIG, freeTier: { ...BASE_CONFIG.freeTier, poolInitialSats: 500 } });
    for (const args of [
      ["--config", other.configPath, "pool", "status", "--json"],
      [`--config=${other.configPath}`, "pool", "status", "--json"],
    ]) {
      expect(expectOk(cli(envConfig, ...args)).json().initialMsats, args.join(" ")).toBe(500_000);
    }
    // Without it, the environment's config: the option above was really used.
    expect(expectOk(cli(envConfig, "pool", "status", "--json")).json().initialMsats).toBe(300_000);
  });

  it("pool credit 5 adds 5 sats to the pool", () => {
    const { configPath } = freshConfig();
    expect(expectOk(cli(configPath, "pool", "credit", "5")).stdout).toMatch(/credited 5 sats/);
    expect(expectOk(cli(configPath, "pool", "status", "--json")).json()).toEqual({
      initialMsats: 300_000,
      creditedMsats: 5000,
      absorbedMsats: 0,
      pendingMsats: 0,
      poolMsats: 305_000,
    });
  });

  it("refuses bad amounts with one line and credits nothing", async () => {
    const { configPath } = freshConfig();
    expectOk(cli(configPath, "pool", "status")); // create the database first, so the refusals race on nothing
    const cases: [string[], RegExp | undefined][] = [
      [["pool", "credit", "-5"], /pool credit SATS: expected a whole number of sats from 1 to 1000000000000, got "-5"/],
      [["pool", "credit", "--", "-5"], /whole number of sats/],
      [["pool", "credit", "1.5"], /whole number of sats/],
      [["pool", "credit", "abc"], /whole number of sats/],
      [["pool", "credit", "0"], /from 1 to 1000000000000, got "0"/],
      [["pool", "credit", "99999999999999999"], /from 1 to 1000000000000, got "99999999999999999"/],
      [["pool", "credit"], /missing SATS/],
    ];
    const runs = await cliAll(
      configPath,
      cases.map(([args]) => args),
    );
    runs.forEach((r, i) => expectUserError(r, cases[i]![1]));
    expect(expectOk(cli(configPath, "pool", "status", "--json")).json().creditedMsats).toBe(0);
  });
});

describe("dvm-gate identity", () => {
  const sk = generateSecretKey();
  const hex = getPublicKey(sk);
  const npub = nip19.npubEncode(hex);

  it("set-tier takes an npub, show --json (by hex) reports the pinned tier and its budget", () => {
    const { configPath } = freshConfig();
    expectOk(cli(configPath, "identity", "set-tier", npub, "elite"));
    const v = expectOk(cli(configPath, "identity", "show", hex, "--json")).json();
    expect(v).toMatchObject({ pubkey: hex, tier: "elite", pinnedTier: "elite", banned: false, budgetMsats: 1_000_000, usedMsats: 0, pendingCount: 0 });
    expectOk(cli(configPath, "identity", "set-tier", hex, "auto"));
    expect(expectOk(cli(configPath, "identity", "show", npub, "--json")).json()).toMatchObject({ tier: "new", pinnedTier: null, budgetMsats: 0 });
  });

  it("ban and unban", () => {
    const { configPath } = freshConfig();
    expect(expectOk(cli(configPath, "identity", "ban", npub, "--reason", "spam", "--json")).json().banned).toBe(true);
    expect(expectOk(cli(configPath, "identity", "show", hex, "--json")).json().banned).toBe(true);
    expect(expectOk(cli(configPath, "identity", "unban", hex, "--json")).json().banned).toBe(false);
    expect(expectOk(cli(configPath, "identity", "show", npub, "--json")).json().banned).toBe(false);
  });

  it("refuses a bad pubkey or an unknown tier with one line and changes nothing", async () => {
    const { configPath } = freshConfig();
    expectOk(cli(configPath, "pool", "status"));
    const cases: [string[], RegExp][] = [
      [["identity", "set-tier", "not-a-key", "elite"], /not a pubkey/],
      [["identity", "set-tier", hex.slice(0, 63), "elite"], /not a pubkey/],
      [["identity", "set-tier", `${npub.slice(0, -1)}${npub.endsWith("q") ? "p" : "q"}`, "elite"], /not a pubkey/],
      [["identity", "set-tier", hex, "superstar"], /unknown tier "superstar"/],
      [["identity", "set-tier", hex], /missing TIER/],
      [["identity", "ban", "npub1xyz"], /not a pubkey/],
      [["identity", "promote", hex], /unknown subcommand/],
    ];
    const runs = await cliAll(
      configPath,
      cases.map(([args]) => args),
    );
    runs.forEach((r, i) => expectUserError(r, cases[i]![1]));
    expect(expectOk(cli(configPath, "identity", "show", hex, "--json")).json()).toMatchObject({ known: false, tier: "new" });
  });
});

describe("dvm-gate grants and verify", () => {
  it("grants --json lists the signed grant chain", () => {
    const cfg = freshConfig();
    expect(expectOk(cli(cfg.configPath, "grants", "--json")).json()).toEqual([]);
    // Make two grants through the ledger itself, as the service would.
    const settings = ledgerSettings(parseConfig(cfg.raw, { env: {}, baseDir: dirname(cfg.configPath) }));
    const sk = generateSecretKey();
    const now = Date.now();
    const ledger = Ledger.open(cfg.dbPath, settings, { nowMs: now, grantSigner: grantSigner(sk) });
    const customer = "ab".repeat(32);
    ledger.setTier(customer, "trusted", now);
    for (let i = 1; i <= 2; i++) {
      const requestId = i.toString(16).padStart(64, "0");
      ledger.decide({ requestId, pubkey: customer, kind: 5050, priceMsats: 10_000 }, now);
      ledger.settle(requestId, {}, now + 1);
    }
    ledger.close();

    const grants = expectOk(cli(cfg.configPath, "grants", "--json")).json() as any[];
    expect(grants.map((g) => [g.seq, g.absorbedMsats, g.label, g.tier, g.pubkey])).toEqual([
      [1, 10_000, "free", "trusted", customer],
      [2, 10_000, "free", "trusted", customer],
    ]);
    expect(grants[1].prevEventId).toBe(grants[0].eventId);
    expect(grants[0].event.id).toBe(grants[0].eventId);
    expect(grants[0].event.pubkey).toBe(getPublicKey(sk));
    expect(
      expectOk(cli(cfg.configPath, "grants", "--after", "1", "--json"))
        .json()
        .map((g: any) => g.seq),
    ).toEqual([2]);
    expectUserError(cli(cfg.configPath, "grants", "--limit", "lots"), /--limit/);
  });

  it("verify exits 0 on a sound ledger and 1, naming the broken guarantee, after tampering", () => {
    const cfg = freshConfig();
    expect(expectOk(cli(cfg.configPath, "verify")).stdout).toMatch(/^ok/);
    expectOk(cli(cfg.configPath, "pool", "credit", "7"));
    expect(expectOk(cli(cfg.configPath, "verify", "--json")).json()).toEqual({ ok: true, violations: [] });

    const raw = new Database(cfg.dbPath);
    try {
      raw.prepare("INSERT INTO credits (amount_msats, source, ref, created_at_ms) VALUES (1234, 'operator', 'forged', 0)").run();
    } finally {
      raw.close();
    }
    const r = cli(cfg.configPath, "verify");
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^BROKEN 1 conservation: initial \+ credited = pool \+ pending \+ absorbed: /m);
    const j = cli(cfg.configPath, "verify", "--json");
    expect(j.status).toBe(1);
    expect(j.json().ok).toBe(false);
    expect(j.json().violations.map((v: { guarantee: string }) => v.guarantee)).toContain("1 conservation: initial + credited = pool + pending + absorbed");
  });
});

describe("dvm-gate keygen", () => {
  it("keygen --json prints a matching key pair", () => {
    const { configPath } = freshConfig();
    const k = expectOk(cli(configPath, "keygen", "--json")).json();
    expect(Object.keys(k).sort()).toEqual(["npub", "nsec", "pubkeyHex", "secretKeyHex"]);
    expect(k.secretKeyHex).toMatch(/^[0-9a-f]{64}$/);
    expect(getPublicKey(Uint8Array.from(Buffer.from(k.secretKeyHex, "hex")))).toBe(k.pubkeyHex);
    expect(nip19.decode(k.npub).data).toBe(k.pubkeyHex);
    expect(Buffer.from(nip19.decode(k.nsec).data as unknown as Uint8Array).toString("hex")).toBe(k.secretKeyHex);
  });
});

describe("bad command lines and bad config", () => {
  it("refuses an unknown command", () => {
    const { configPath } = freshConfig();
    expectUserError(cli(configPath, "frobnicate"), /unknown command "frobnicate"/);
  });

  it("refuses no command at all with one line, not the whole help", () => {
    const { configPath } = freshConfig();
    expectUserError(cli(configPath), /missing command/);
  });

  it("refuses extra arguments to verify", () => {
    const { configPath } = freshConfig();
    expectUserError(cli(configPath, "verify", "extra"), /unexpected argument "extra"/);
  });

  it("never echoes a secret key given where a pubkey belongs", () => {
    const { configPath } = freshConfig();
    const nsec = nip19.nsecEncode(generateSecretKey());
    const line = expectUserError(cli(configPath, "identity", "show", nsec), /secret key \(nsec\)/);
    expect(line).not.toContain(nsec.slice(5));
  });

  it("refuses an unknown flag", () => {
    const { configPath } = freshConfig();
    expectUserError(cli(configPath, "pool", "status", "--bogus"), /--bogus/);
  });

  it("refuses an unknown subcommand", () => {
    const { configPath } = freshConfig();
    expectUserError(cli(configPath, "pool", "drain"), /unknown subcommand "drain"/);
  });

  it("refuses a config file with a bad field, naming the field", () => {
    const { configPath } = freshConfig({
      ...BASE_CONFIG,
      freeTier: { ...BASE_CONFIG.freeTier, budgetsSats: { ...BASE_CONFIG.freeTier.budgetsSats, new: "lots" } },
    });
    expectUserError(cli(configPath, "pool", "status"), /freeTier\.budgetsSats\.new/);
  });

  it("refuses a config file that is not JSON", () => {
    const { configPath } = freshConfig();
    writeFileSync(configPath, "{ not json");
    expectUserError(cli(configPath, "pool", "status"), /not valid JSON/);
  });

  it("prints usage for --help", () => {
    const { configPath } = freshConfig();
    expect(expectOk(cli(configPath, "pool", "--help")).stdout).toMatch(/^Usage:/);
  });
});
