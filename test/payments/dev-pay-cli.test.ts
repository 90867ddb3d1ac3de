import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { openDb, type Db } from "../../src/ledger/db.js";
import { DevWalletBackend } from "../../src/payments/dev.js";
import { makeTmpDir, type TmpDir } from "../helpers/tmp.js";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const BIN = join(REPO, "bin/dvm-gate.js");

/** The real executable in its own process (needs dist/, which `npm test` builds). */
function cli(args: string[], cwd?: string): Promise<{ code: number; out: string[]; err: string[] }> {
  if (!existsSync(join(REPO, "dist/src/cli/main.js"))) throw new Error("dist/ is missing: run `npx tsc -p tsconfig.json` (npm test does)");
  const lines = (t: string) => t.split("\n").filter((l) => l.length > 0);
  return new Promise((done) => {
    const env = { PATH: process.env.PATH ?? "" };
    execFile(process.execPath, [BIN, ...args], { timeout: 30_000, env, ...(cwd ? { cwd } : {}) }, (error, stdout, stderr) =>
      done({ code: error ? (typeof error.code === "number" ? error.code : -1) : 0, out: lines(stdout), err: lines(stderr) }),
    );
  });
}

function paidCount(db: Db): number {
  return (db.prepare("SELECT count(paid_at_ms) AS n FROM dev_wallet_invoices").get() as { n: number }).n;
}

describe("dvm-gate dev-pay (the executable, in its own process)", () => {
  let tmp: TmpDir;
  let cfgPath: string;
  let db: Db;
  let wallet: DevWalletBackend;

  beforeEach(() => {
    tmp = makeTmpDir();
    cfgPath = tmp.file("dvm-gate.json");
    writeFileSync(
      cfgPath,
      JSON.stringify({ database: { path: "./gate.sqlite" }, payments: { backend: "dev", dev: { enabled: true } }, log: { level: "silent" } }),
    );
    db = openDb(tmp.file("gate.sqlite"));
    wallet = new DevWalletBackend(db, { pollMs: 20 });
  });
  afterEach(async () => {
    await wallet.close();
    db.close();
    tmp.remove();
  });

  const issue = (amountMsats = 21_000) => wallet.createInvoice({ amountMsats, description: "job", expirySec: 600, requestId: "a".repeat(64) });

  it("pays an invoice and says so; paying again changes nothing and still exits 0", async () => {
    const inv = await issue();
    const first = await cli(["dev-pay", inv.bolt11, "--config", cfgPath]);
    expect(first).toEqual({ code: 0, out: [`paid 21000 msats (21 sats) for payment hash ${inv.paymentHash}`], err: [] });
    expect(await wallet.lookupInvoice(inv.paymentHash)).toMatchObject({ state: "settled", amountMsats: 21_000 });
    const again = await cli(["dev-pay", inv.bolt11, "--config", cfgPath]);
    expect(again.code).toBe(0);
    expect(again.out[0]).toMatch(/^already paid/);
    expect(paidCount(db)).toBe(1);
  });

  it("prints JSON with --json", async () => {
    const inv = await issue(5_000);
    const r = await cli(["dev-pay", inv.bolt11, "--json", "--config", cfgPath]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out.join("\n"))).toEqual({ status: "paid", paymentHash: inv.paymentHash, amountMsats: 5_000 });
  });

  it("refuses garbage, unknown and expired invoices with one line and exit 2, changing nothing", async () => {
    const garbage = await cli(["dev-pay", "lnbcrt1notaninvoice", "--config", cfgPath]);
    expect(garbage.code).toBe(2);
    expect(garbage.err).toHaveLength(1);
    expect(garbage.err[0]).toMatch(/^dvm-gate: dev-pay: invalid bolt11/);

    const otherDb = openDb(":memory:");
    const foreign = await new DevWalletBackend(otherDb).createInvoice({ amountMsats: 1000, description: "x", expirySec: 600, requestId: "b".repeat(64) });
    otherDb.close();
    const unknown = await cli(["dev-pay", foreign.bolt11, "--config", cfgPath]);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toEqual([expect.stringMatching(/^dvm-gate: dev-pay: unknown invoice.*gate\.sqlite/)]);

    const past = new DevWalletBackend(db, { nowMs: () => Date.now() - 3_600_000 });
    const old = await past.createInvoice({ amountMsats: 1000, description: "x", expirySec: 60, requestId: "c".repeat(64) });
    const expired = await cli(["dev-pay", old.bolt11, "--config", cfgPath]);
    expect(expired.code).toBe(2);
    expect(expired.err).toEqual([expect.stringMatching(/^dvm-gate: dev-pay: invoice expired at /)]);

    const missing = await cli(["dev-pay", "--config", cfgPath]);
    expect(missing.code).toBe(2);
    expect(missing.err[0]).toMatch(/missing BOLT11/);
    expect(paidCount(db)).toBe(0);
  });

  it("refuses to run when the dev wallet is not enabled", async () => {
    const inv = await issue();
    const off = tmp.file("off.json");
    writeFileSync(off, JSON.stringify({ database: { path: "./gate.sqlite" }, payments: { backend: "dev" }, log: { level: "silent" } }));
    const r = await cli(["dev-pay", inv.bolt11, "--config", off]);
    expect(r.code).toBe(2);
    expect(r.err).toEqual([expect.stringMatching(/^dvm-gate: dev-pay: the dev wallet is not enabled \(payments\.dev\.enabled is false\)/)]);
    expect(paidCount(db)).toBe(0);
  });

  it("has --help", async () => {
    const r = await cli(["dev-pay", "--help"]);
    expect(r.code).toBe(0);
    expect(r.out[0]).toMatch(/^Usage: dvm-gate dev-pay BOLT11/);
  });

  it("a dev-pay from another process wakes the running backend's payment hint", async () => {
    const inv = await issue(8_000);
    const hints: string[] = [];
    const stop = wallet.onPaymentHint((h) => hints.push(h));
    try {
      const child = await cli(["dev-pay", inv.bolt11, "--config", cfgPath], tmp.path);
      expect(child).toEqual({ code: 0, out: [`paid 8000 msats (8 sats) for payment hash ${inv.paymentHash}`], err: [] });
      for (let waited = 0; hints.length === 0 && waited < 5_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
      expect(hints).toEqual([inv.paymentHash]);
      expect(await wallet.lookupInvoice(inv.paymentHash)).toMatchObject({ state: "settled", amountMsats: 8_000 });
    } finally {
      stop();
    }
  });
});
