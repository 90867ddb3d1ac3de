// SPEC §11 across crashes: the gate (a real `dvm-gate start` process) is SIGKILLed while
// its exec backend runs 10 jobs. After restart every job is run again (attempt 2) and
// each request ends with exactly one result or one error, published once; a job whose
// gate died under it maxAttempts times is voided with an error.
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { generateSecretKey, getPublicKey, type Event } from "nostr-tools/pure";
import { ledgerSettings } from "../../src/cli/context.js";
import { parseConfig } from "../../src/config/load.js";
import { Ledger } from "../../src/ledger/ledger.js";
import { verifyLedger } from "../../src/ledger/verify.js";
import { startEmbeddedRelay } from "../../src/peers/embedded-relay.js";
import { Customer, fetchEvents, waitForAsync } from "../e2e/harness.js";
import { startServiceProcess, writeConfig, type ChildHandle } from "../helpers/service-process.js";
import { makeTmpDir } from "../helpers/tmp.js";
import { execCommand } from "./harness.js";

describe("backends across crashes", () => {
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function setUp(n: number, jobMs: number) {
    const tmp = makeTmpDir("dvm-gate-backend-crash-");
    cleanups.push(() => tmp.remove());
    const relay = await startEmbeddedRelay();
    cleanups.push(() => relay.close());
    const gateSk = generateSecretKey();
    const gatePk = getPublicKey(gateSk);
    const config = {
      nostr: { secretKey: Buffer.from(gateSk).toString("hex"), relays: [relay.url] },
      database: { path: tmp.file("gate.sqlite"), synchronous: "FULL" },
      jobs: {
        kinds: { "5050": { priceSats: 1, backend: { type: "exec", command: execCommand("slow-ok", String(jobMs)), maxConcurrent: 10, maxAttempts: 2 } } },
        timeoutSec: 120,
      },
      freeTier: { maxPendingPerPubkey: 1000 },
      payments: { backend: "dev", dev: { enabled: true } },
      http: { enabled: false },
      log: { level: "warn" },
    };
    const configPath = writeConfig(tmp.file("config.json"), config);
    const cfg = parseConfig(config, { env: {}, baseDir: tmp.path, sourcePath: configPath });
    const elite = await new Customer().connect([relay.url]);
    cleanups.push(() => elite.close());
    const pre = Ledger.open(cfg.database.path, ledgerSettings(cfg), { nowMs: Date.now() });
    pre.setTier(elite.pubkey, "elite", Date.now());
    pre.close();
    const handles: ChildHandle[] = [];
    const start = async () => {
      const h = await startServiceProcess(configPath);
      handles.push(h);
      cleanups.push(() => h.kill("SIGKILL"));
      return h;
    };
    const reader = () => new Database(cfg.database.path, { readonly: true, fileMustExist: true });
    const count = (sql: string, ...args: unknown[]) => {
      const db = reader();
      try {
        return (db.prepare(sql).get(...args) as { n: number }).n;
      } finally {
        db.close();
      }
    };
    const requests: Event[] = Array.from({ length: n }, (_, i) => elite.request(gatePk, { input: `job ${i}` }));
    return { tmp, relay, gatePk, cfg, elite, start, count, requests };
  }

  /** Results and error feedback per request on the relay, once nothing is left to publish. */
  async function outcomes(s: Awaited<ReturnType<typeof setUp>>): Promise<Map<string, { results: Event[]; errors: Event[] }>> {
    await waitForAsync(async () => s.count("SELECT COUNT(*) AS n FROM outbox_delivery WHERE state = 'pending'") === 0 || null, 20_000, "the outbox to drain");
    const ids = s.requests.map((r) => r.id);
    const results = await fetchEvents(s.relay.url, { kinds: [6050], authors: [s.gatePk], "#e": ids });
    const feedback = await fetchEvents(s.relay.url, { kinds: [7000], authors: [s.gatePk], "#e": ids });
    const out = new Map(ids.map((id) => [id, { results: [] as Event[], errors: [] as Event[] }]));
    const about = (e: Event) => e.tags.find((t) => t[0] === "e")?.[1] ?? "";
    for (const e of results) out.get(about(e))?.results.push(e);
    for (const e of feedback) if (e.tags.some((t) => t[0] === "status" && t[1] === "error")) out.get(about(e))?.errors.push(e);
    return out;
  }

  function verifyClean(s: Awaited<ReturnType<typeof setUp>>): void {
    const after = Ledger.open(s.cfg.database.path, ledgerSettings(s.cfg), { nowMs: Date.now(), sweep: false });
    try {
      expect(verifyLedger(after.db)).toEqual([]);
      expect(after.totals().pendingMsats).toBe(0);
    } finally {
      after.close();
    }
  }

  it("gate kill -9 while 10 jobs run: after restart each job has exactly one result, published once", { timeout: 90_000 }, async () => {
    const s = await setUp(10, 2500);
    const first = await s.start();
    for (const r of s.requests) await s.elite.publish(r);
    await waitForAsync(async () => s.count("SELECT COUNT(*) AS n FROM jobs WHERE state = 'running'") === 10 || null, 20_000, "10 jobs running");
    expect(await first.kill("SIGKILL")).toBeNull();
    expect(s.count("SELECT COUNT(*) AS n FROM outbox WHERE purpose = 'result'")).toBe(0);

    const second = await s.start();
    await waitForAsync(async () => s.count("SELECT COUNT(*) AS n FROM jobs WHERE state = 'done'") === 10 || null, 30_000, "10 jobs done");
    const got = await outcomes(s);
    for (const [id, o] of got) {
      expect(o.results.length, `results for ${id.slice(0, 8)}`).toBe(1);
      expect(o.errors.length, `errors for ${id.slice(0, 8)}`).toBe(0);
    }
    expect(s.count("SELECT COUNT(*) AS n FROM jobs WHERE attempts = 2")).toBe(10);
    expect(s.count("SELECT COUNT(*) AS n FROM outbox WHERE purpose = 'result'")).toBe(10);
    expect(s.count("SELECT COUNT(*) AS n FROM grants")).toBe(10);
    await second.kill("SIGTERM");
    verifyClean(s);
  });

  it("a job whose gate died under it maxAttempts times is voided with one error", { timeout: 90_000 }, async () => {
    const s = await setUp(3, 60_000);
    const first = await s.start();
    for (const r of s.requests) await s.elite.publish(r);
    await waitForAsync(async () => s.count("SELECT COUNT(*) AS n FROM jobs WHERE state = 'running' AND attempts = 1") === 3 || null, 20_000, "3 jobs running");
    await first.kill("SIGKILL");
    const second = await s.start();
    await waitForAsync(
      async () => s.count("SELECT COUNT(*) AS n FROM jobs WHERE state = 'running' AND attempts = 2") === 3 || null,
      20_000,
      "3 jobs running again",
    );
    await second.kill("SIGKILL");
    const third = await s.start();
    await waitForAsync(async () => s.count("SELECT COUNT(*) AS n FROM jobs WHERE state = 'failed'") === 3 || null, 20_000, "3 jobs failed");
    const got = await outcomes(s);
    for (const [, o] of got) {
      expect(o.results).toHaveLength(0);
      expect(o.errors).toHaveLength(1);
    }
    expect(s.count("SELECT COUNT(*) AS n FROM requests WHERE state = 'failed'")).toBe(3);
    await third.kill("SIGTERM");
    verifyClean(s);
  });
});
