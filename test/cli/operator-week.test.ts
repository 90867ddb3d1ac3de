// An operator's first week, as issue 12 found it, run as a user runs it: the real
// executable in its own process, real SQLite files, a real relay on 127.0.0.1. Read
// commands need no secret and create no database; one `start` per ledger (surviving
// kill -9 of the holder); audit refuses a key with nothing published; one wording for
// numbers; limits refused, not cut; `fail` prints no log line; `request --key env:`.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { nip19 } from "nostr-tools";
import { generateSecretKey, getPublicKey } from "nostr-tools/pure";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ledgerSettings } from "../../src/cli/context.js";
import { parseConfig } from "../../src/config/load.js";
import { Ledger } from "../../src/ledger/ledger.js";
import { startEmbeddedRelay, type EmbeddedRelay } from "../../src/peers/embedded-relay.js";
import { makeTmpDir } from "../helpers/tmp.js";
import { startScriptedGate, type ScriptedGate } from "./scripted-gate.js";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const BIN = join(REPO_ROOT, "bin/dvm-gate.js");
const tmp = makeTmpDir("dvm-gate-week-");
afterAll(() => tmp.remove());

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith("DVM_GATE_") || k.startsWith("FREE_TIER_") || k.startsWith("TRUST_")) delete env[k];
  return { ...env, ...extra };
}

function run(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Run {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: opts.cwd ?? REPO_ROOT, env: opts.env ?? cleanEnv(), encoding: "utf8", timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function runAsync(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd: opts.cwd ?? REPO_ROOT, env: opts.env ?? cleanEnv(), timeout: 30_000 });
    let stdout = "";
    let stderr = "";
    p.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    p.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    p.on("error", rej);
    p.on("close", (status) => res({ status, stdout, stderr }));
  });
}

/** Exit 2, one line on stderr starting "dvm-gate:", no stack trace. */
function expectOneLine(r: Run, pattern: RegExp, code = 2): string {
  expect(r.status, `stdout: ${r.stdout} stderr: ${r.stderr}`).toBe(code);
  const lines = r.stderr.split("\n").filter((l) => l.length > 0);
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^dvm-gate: /);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(lines[0]).toMatch(pattern);
  return lines[0]!;
}

let caseNo = 0;
/** A config file in its own folder; `db: true` creates its database as `start` would. */
function caseDir(raw: Record<string, unknown>, opts: { db?: boolean } = {}): { dir: string; configPath: string; dbPath: string } {
  const dir = tmp.file(`case-${++caseNo}`);
  mkdirSync(dir, { recursive: true });
  const configPath = join(dir, "dvm-gate.json");
  writeFileSync(configPath, JSON.stringify(raw, null, 2));
  const cfg = parseConfig(raw, { env: {}, baseDir: dir, sourcePath: configPath });
  if (opts.db) Ledger.open(cfg.database.path, ledgerSettings(cfg), { nowMs: Date.now() }).close();
  return { dir, configPath, dbPath: cfg.database.path };
}

const EXAMPLE = JSON.parse(readFileSync(join(REPO_ROOT, "config.example.json"), "utf8")) as Record<string, unknown>;
const someNpub = () => nip19.npubEncode(getPublicKey(generateSecretKey()));

describe("after `cp config.example.json dvm-gate.json`, without DVM_GATE_NSEC", () => {
  it("keygen, pool status, verify, grants and identity show run; settle still asks for the key", () => {
    const { dir } = caseDir(EXAMPLE, { db: true });
    for (const args of [["keygen"], ["pool", "status"], ["verify"], ["grants"], ["identity", "show", someNpub()]]) {
      const r = run(args, { cwd: dir });
      expect(r.status, `${args.join(" ")}: ${r.stderr}`).toBe(0);
      expect(r.stderr).toBe("");
    }
    // An unreachable relay is audit's own problem, not a missing secret.
    expectOneLine(run(["audit", "--relay", "ws://127.0.0.1:9", "--gate", someNpub()], { cwd: dir }), /^dvm-gate: audit: (?!.*DVM_GATE_NSEC)/);
    // A command that signs still needs it, and says which variable.
    expectOneLine(run(["settle", "a".repeat(64)], { cwd: dir }), /nostr\.secretKey: environment variable DVM_GATE_NSEC is not set/);
  });
});

describe("a read command on a missing database", () => {
  it("exits 2 saying so and creates neither the file nor its folder; pool credit (a write) creates it", async () => {
    const missingDir = tmp.file("nonexistent/dir");
    const { configPath, dbPath } = caseDir({ database: { path: join(missingDir, "x.sqlite") } });
    const env = cleanEnv({ DVM_GATE_CONFIG: configPath });
    const reads = [["pool", "status"], ["grants"], ["verify"], ["identity", "show", someNpub()], ["fail", "b".repeat(64)]];
    const runs = await Promise.all(reads.map((args) => runAsync(args, { env })));
    for (const r of runs) expectOneLine(r, new RegExp(`no database at ${dbPath.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}`));
    expect(existsSync(tmp.file("nonexistent"))).toBe(false);

    expect(run(["pool", "credit", "5"], { env }).status).toBe(0);
    expect(existsSync(dbPath)).toBe(true);
    expect(run(["pool", "status", "--json"], { env }).stdout).toMatch(/"creditedMsats": 5000/);
  });

  it("exits 2 naming the path when database.path is a directory, for start too", () => {
    const { dir, configPath } = caseDir({ database: { path: "./ledger-dir" }, nostr: { secretKey: Buffer.from(generateSecretKey()).toString("hex") } });
    mkdirSync(join(dir, "ledger-dir"));
    const env = cleanEnv({ DVM_GATE_CONFIG: configPath });
    for (const args of [["pool", "status"], ["pool", "credit", "1"], ["start"]])
      expectOneLine(run(args, { env }), new RegExp(`database\\.path ${join(dir, "ledger-dir").replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")} is a directory`));
  });
});

describe("two starts on one ledger", () => {
  const children: ChildProcess[] = [];
  afterAll(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  });

  /** `dvm-gate start --json` in `cwd` (the demo: no config there); resolves once running. */
  function startDemo(cwd: string): Promise<{ child: ChildProcess; info: { gate: string; relays: string[] } }> {
    const child = spawn(process.execPath, [BIN, "start", "--json"], { cwd, env: cleanEnv() });
    children.push(child);
    return new Promise((res, rej) => {
      let out = "";
      let err = "";
      child.stdout!.setEncoding("utf8").on("data", (d: string) => {
        out += d;
        const line = out.split("\n").find((l) => l.startsWith("{"));
        if (line) res({ child, info: JSON.parse(line) });
      });
      child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
      child.on("exit", (code) => rej(new Error(`start exited ${code} before running: ${err.slice(-1000)}`)));
    });
  }
  const exited = (c: ChildProcess) => new Promise<void>((res) => (c.exitCode !== null || c.signalCode !== null ? res() : c.once("exit", () => res())));

  it("refuses the second with one line and changes nothing the first published; after kill -9 the next one takes over", async () => {
    const cwd = tmp.file("demo-folder");
    mkdirSync(cwd);
    const first = await startDemo(cwd);
    const relayFile = join(cwd, "data", "relay-url.txt");
    const before = { text: readFileSync(relayFile, "utf8"), mtimeMs: statSync(relayFile).mtimeMs };
    expect(before.text.trim()).toBe(first.info.relays[0]);

    const second = await runAsync(["start", "--json"], { cwd });
    expectOneLine(second, new RegExp(`the ledger .*dvm-gate\\.sqlite is already served by another dvm-gate start \\(pid ${first.child.pid}\\)`));
    expect(second.stdout).toBe("");
    expect({ text: readFileSync(relayFile, "utf8"), mtimeMs: statSync(relayFile).mtimeMs }).toEqual(before);
    // The first one is still serving: a customer command reaches its relay.
    const status = await runAsync(["pool", "status", "--json"], { cwd });
    expect(status.status).toBe(0);

    first.child.kill("SIGKILL");
    await exited(first.child);
    const third = await startDemo(cwd);
    expect(third.info.gate).toBe(first.info.gate);
    third.child.kill("SIGTERM");
    await exited(third.child);
    expect(third.child.exitCode).toBe(0);
  }, 60_000);
});

describe("with a relay on 127.0.0.1", () => {
  let relay: EmbeddedRelay;
  let gate: ScriptedGate;
  beforeAll(async () => {
    relay = await startEmbeddedRelay();
    // One processing reply per request, never a result: the wait runs out after it.
    gate = await startScriptedGate(relay.url, () => [{ status: "processing", info: "working" }]);
  });
  afterAll(async () => {
    gate.close();
    await relay.close();
  });

  it("audit of a key that published no grant and no pool status says nothing to audit, exit 1", async () => {
    const npub = someNpub();
    const text = await runAsync(["audit", "--relay", relay.url, "--gate", npub]);
    expect(text.status, text.stderr).toBe(1);
    expect(text.stdout).toMatch(/nothing to audit: [0-9a-f]{64} published no grant events and no pool status event on ws:\/\/127\.0\.0\.1:\d+/);
    expect(text.stdout).not.toMatch(/audit passed/);
    const json = await runAsync(["audit", "--relay", relay.url, "--gate", npub, "--json"]);
    expect(json.status).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, nothingToAudit: true, grants: 0 });
  });

  it("request counts one reply as 1 reply, and takes --key from env:VAR and file:PATH", async () => {
    const sk = generateSecretKey();
    const hex = Buffer.from(sk).toString("hex");
    const keyFile = tmp.file("customer.key");
    writeFileSync(keyFile, nip19.nsecEncode(sk) + "\n", { mode: 0o600 });
    const base = ["request", "--relay", relay.url, "--gate", gate.pubkey, "--input", "hi", "--wait", "2", "--json"];
    for (const key of ["env:CUSTOMER_KEY", `file:${keyFile}`]) {
      const r = await runAsync([...base, "--key", key], { env: cleanEnv({ CUSTOMER_KEY: hex }) });
      expect(r.status, r.stderr).toBe(1);
      const first = JSON.parse(r.stdout.split("\n")[0]!);
      expect(first).toMatchObject({ type: "request", customer: getPublicKey(sk), throwawayKey: false });
      expect(r.stderr.trim()).toBe("dvm-gate: waited 2 s without a result, error or success (1 reply)");
      expect(r.stdout + r.stderr).not.toContain(hex);
    }
    expectOneLine(await runAsync([...base, "--key", "env:NOT_SET_ANYWHERE"]), /request: --key: environment variable NOT_SET_ANYWHERE is not set/);
  });

  it("refuses numbers in one wording that says the real range, a sign included", async () => {
    const gateArgs = ["--relay", relay.url, "--gate", gate.pubkey];
    const cases: [string[], RegExp][] = [
      [["request", ...gateArgs, "--wait", "-1"], /^dvm-gate: request: --wait: expected a whole number from 1 to 3600, got "-1"$/],
      [
        ["request", ...gateArgs, "--wait", "99999999999999999999"],
        /^dvm-gate: request: --wait: expected a whole number from 1 to 3600, got "99999999999999999999"$/,
      ],
      [["request", ...gateArgs, "--kind", "-5050"], /^dvm-gate: request: --kind: expected a whole number from 5000 to 5999, got "-5050"$/],
      [["request", ...gateArgs, "--bid", "-3"], /^dvm-gate: request: --bid: expected a whole number of sats from 0 to 1000000000000, got "-3"$/],
      [["grants", "--limit", "0"], /^dvm-gate: grants: --limit: expected a whole number from 1 to 10000, got "0"$/],
      [["grants", "--after", "-1"], /^dvm-gate: grants: --after: expected a whole number from 0 to 999999999, got "-1"$/],
    ];
    const runs = await Promise.all(cases.map(([args]) => runAsync(args)));
    runs.forEach((r, i) => expectOneLine(r, cases[i]![1]));
  });
});

describe("limits and quiet one-shot commands", () => {
  const gateKey = Buffer.from(generateSecretKey()).toString("hex");
  const raw = { nostr: { secretKey: gateKey }, jobs: { kinds: { "5050": { priceSats: 10 } } } };

  function withFreeJob(): { env: NodeJS.ProcessEnv; dbPath: string; requestId: string } {
    const { configPath, dbPath } = caseDir(raw, { db: true });
    const cfg = parseConfig(raw, { env: {}, baseDir: dirname(configPath), sourcePath: configPath });
    const ledger = Ledger.open(dbPath, ledgerSettings(cfg), { nowMs: Date.now() });
    const customer = getPublicKey(generateSecretKey());
    ledger.setTier(customer, "elite", Date.now());
    const requestId = Buffer.from(generateSecretKey()).toString("hex");
    expect(ledger.decide({ requestId, pubkey: customer, kind: 5050, priceMsats: 10_000 }, Date.now()).request.state).toBe("processing");
    ledger.close();
    return { env: cleanEnv({ DVM_GATE_CONFIG: configPath }), dbPath, requestId };
  }
  const stateOf = (dbPath: string, requestId: string, cfgRaw = raw) => {
    const cfg = parseConfig(cfgRaw, { env: {} });
    const l = Ledger.open(dbPath, ledgerSettings(cfg), { nowMs: Date.now(), sweep: false });
    try {
      return l.getRequest(requestId)?.state;
    } finally {
      l.close();
    }
  };

  it("fail refuses a --reason over its limit and changes nothing; within it, prints one line and no log line", () => {
    const { env, dbPath, requestId } = withFreeJob();
    expectOneLine(
      run(["fail", requestId, "--reason", "x".repeat(191)], { env }),
      /^dvm-gate: fail: --reason is 191 characters long; at most 190 are kept, nothing changed$/,
    );
    expect(stateOf(dbPath, requestId)).toBe("processing");

    const ok = run(["fail", requestId, "--reason", "x".repeat(190)], { env });
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stderr).toBe("");
    expect(ok.stdout.trim().split("\n")).toHaveLength(1);
    expect(ok.stdout).toMatch(/^voided [0-9a-f]{64}: 10 sats returned to the pool; error feedback queued for the customer$/m);
    expect(stateOf(dbPath, requestId)).toBe("failed");
  });

  it("pool credit says 1 sat, and refuses a --note over 200 characters", () => {
    const { env } = withFreeJob();
    expect(run(["pool", "credit", "1"], { env }).stdout).toMatch(/^credited 1 sat; pool is now /);
    expectOneLine(run(["pool", "credit", "2", "--note", "n".repeat(201)], { env }), /--note is 201 characters long; at most 200/);
    expect(run(["pool", "status", "--json"], { env }).stdout).toMatch(/"creditedMsats": 1000/);
  });
});

describe("a config file that is not valid JSON", () => {
  it("is reported by place, never quoting the text: an unquoted nsec does not show", () => {
    const nsec = nip19.nsecEncode(generateSecretKey());
    const dir = tmp.file("bad-json");
    mkdirSync(dir);
    const configPath = join(dir, "dvm-gate.json");
    writeFileSync(configPath, `{\n  "nostr": {\n    "secretKey": ${nsec}\n  }\n}\n`);
    const r = run(["pool", "status", "--json"], { env: cleanEnv({ DVM_GATE_CONFIG: configPath }) });
    const line = expectOneLine(r, /is not valid JSON.*its text is not shown/);
    // No 6 characters of the key in a row, the bech32 prefix aside.
    for (let i = 5; i + 6 <= nsec.length; i++) expect(line).not.toContain(nsec.slice(i, i + 6));
    expect(line).not.toContain("nsec1");
  });
});

describe("a secret key where a pubkey belongs", () => {
  it("is refused without being echoed, by every command that takes a pubkey", async () => {
    const nsec = nip19.nsecEncode(generateSecretKey());
    const relay = "ws://127.0.0.1:9";
    const runs = await Promise.all([
      runAsync(["audit", "--relay", relay, "--gate", nsec]),
      runAsync(["request", "--relay", relay, "--gate", nsec]),
      runAsync(["identity", "show", nsec]),
    ]);
    for (const r of runs) {
      const line = expectOneLine(r, /secret key \(nsec\).*value not shown/);
      expect(line).not.toContain(nsec.slice(5, 20));
    }
  });
});

describe("an option given without its value", () => {
  it("says the option needs a value, wherever it stands", async () => {
    const runs = await Promise.all([runAsync(["pool", "status", "--config"]), runAsync(["request", "--input"]), runAsync(["grants", "--limit", "--json"])]);
    expectOneLine(runs[0]!, /^dvm-gate: pool: --config needs a value/);
    expectOneLine(runs[1]!, /^dvm-gate: request: --input needs a value/);
    expectOneLine(runs[2]!, /^dvm-gate: grants: --limit needs a value \(write --limit=VALUE/);
  });
});

describe("start without the gate's secret", () => {
  it("exits 2 and creates neither the database nor its folder", () => {
    const { dir, configPath, dbPath } = caseDir({ ...EXAMPLE, database: { path: "./fresh/dvm-gate.sqlite" } });
    expectOneLine(run(["start"], { env: cleanEnv({ DVM_GATE_CONFIG: configPath }) }), /DVM_GATE_NSEC is not set/);
    expect(existsSync(dirname(dbPath))).toBe(false);
    expect(existsSync(join(dir, "fresh"))).toBe(false);
  });

  it("with a wallet setting it cannot use, exits 2 naming it and leaves no ledger, lock or folder", async () => {
    const secretKey = Buffer.from(generateSecretKey()).toString("hex");
    const wallets: [Record<string, unknown>, RegExp][] = [
      [{ backend: "nwc", nwc: { uri: "http://wallet.example?secret=topsecret123" } }, /payments\.nwc\.uri: not a nostr\+walletconnect/],
      [{ backend: "nwc", nwc: { uri: "env:NWC_NOT_SET_ANYWHERE" } }, /NWC_NOT_SET_ANYWHERE is not set/],
      [{ backend: "lnbits", lnbits: { url: "ftp://127.0.0.1:9", invoiceKey: "k" } }, /payments\.lnbits\.url: must be http/],
      [{ backend: "dev", dev: { enabled: false } }, /payments\.dev\.enabled is false/],
    ];
    const cases = wallets.map(([payments]) =>
      caseDir({ ...EXAMPLE, nostr: { secretKey, relays: [] }, database: { path: "./fresh/dvm-gate.sqlite" }, payments }),
    );
    const runs = await Promise.all(cases.map((c) => runAsync(["start"], { env: cleanEnv({ DVM_GATE_CONFIG: c.configPath }) })));
    runs.forEach((r, i) => {
      const line = expectOneLine(r, wallets[i]![1]);
      expect(line).not.toContain("topsecret");
      expect(existsSync(join(cases[i]!.dir, "fresh"))).toBe(false);
    });
  });
});
