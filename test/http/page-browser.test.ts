// The operator page in a real browser (headless Chromium, no npm dependency: the
// Debian `chromium` binary run with --dump-dom and --screenshot) after a scripted day
// on a real gate: a real relay on 127.0.0.1, the gate service with the dev wallet and
// its HTTP server on one SQLite file, customers and a worker with real keys. Free
// jobs, paid jobs, an invoice left to expire, one left open and an operator credit
// happen hours apart on the gate's clock; each figure must then be on the page.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { generateSecretKey, getPublicKey } from "nostr-tools/pure";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ledgerSettings } from "../../src/cli/context.js";
import { grantSigner } from "../../src/events/grant-event.js";
import { GateMetrics } from "../../src/http/metrics.js";
import { startHttpServer, type HttpServer } from "../../src/http/server.js";
import { Ledger } from "../../src/ledger/ledger.js";
import { DevWalletBackend, devPay } from "../../src/payments/dev.js";
import { startEmbeddedRelay, type EmbeddedRelay } from "../../src/peers/embedded-relay.js";
import { GateService } from "../../src/service/gate-service.js";
import { TestWorker } from "../helpers/worker.js";
import { Customer, e2eConfig, FAST, SAT, waitFor, waitForAsync } from "../e2e/harness.js";
import { makeTmpDir } from "../helpers/tmp.js";

const CHROMIUM = "/usr/bin/chromium";
const HOUR = 3_600_000;

function chromium(args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const profile = mkdtempSync(join(tmpdir(), "dvm-gate-chromium-"));
  const base = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    `--user-data-dir=${profile}`,
  ];
  return new Promise((resolve, reject) => {
    const p = spawn(CHROMIUM, [...base, ...args], { timeout: timeoutMs });
    let stdout = "";
    let stderr = "";
    p.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    p.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    p.on("error", reject);
    p.on("close", (code) => {
      rmSync(profile, { recursive: true, force: true });
      resolve({ code, stdout, stderr });
    });
  });
}

/** The text of the element with this id in the DOM Chromium rendered. */
function byId(dom: string, id: string): string {
  const m = new RegExp(`id="${id}"[^>]*>([^<]*)<`).exec(dom);
  if (!m) throw new Error(`no element #${id} on the page`);
  return m[1]!.trim();
}

describe.skipIf(!existsSync(CHROMIUM))("operator page in headless Chromium after a scripted day", () => {
  const tmp = makeTmpDir("dvm-gate-page-browser-");
  let relay: EmbeddedRelay;
  let ledger: Ledger;
  let backend: DevWalletBackend;
  let service: GateService;
  let http: HttpServer;
  let worker: TestWorker;
  let gateKey = "";
  const gatePubkey = () => gateKey;
  const customers: Customer[] = [];
  // The day runs on the gate's clock, from 10 h ago to now.
  let offsetMs = -10 * HOUR;
  const nowMs = () => Date.now() + offsetMs;
  const nowSec = () => Math.floor(nowMs() / 1000);

  beforeAll(async () => {
    relay = await startEmbeddedRelay();
    worker = new TestWorker();
    const cfg = e2eConfig(tmp, [relay.url], { payments: { backend: "dev", dev: { enabled: true }, invoiceExpirySec: 60, paymentGraceSec: 0 } }, [
      worker.pubkey,
    ]);
    const secretKey = generateSecretKey();
    gateKey = getPublicKey(secretKey);
    ledger = Ledger.open(cfg.database.path, ledgerSettings(cfg), { nowMs: nowMs(), synchronous: "NORMAL", grantSigner: grantSigner(secretKey) });
    backend = new DevWalletBackend(ledger.db, { nowMs, pollMs: 50 });
    const metrics = new GateMetrics();
    const log = pino({ level: "silent" });
    service = new GateService({ cfg, ledger, backend, log, metrics, secretKey, opts: { ...FAST, nowMs } });
    await service.start();
    http = await startHttpServer({
      cfg: { ...cfg, http: { enabled: true, host: "127.0.0.1", port: 0, publicBaseUrl: null } },
      ledger,
      log,
      metrics,
      gatePubkey: getPublicKey(secretKey),
      nowMs,
    });
    await worker.connect([relay.url]);
  }, 30_000);

  afterAll(async () => {
    for (const c of customers) c.close();
    worker.close();
    await http?.close();
    await service?.stop();
    await backend?.close();
    ledger?.close();
    await relay?.close();
    tmp.remove();
  });

  // Read from the ledger, not from the replies: relays drop replies whose NIP-40
  // expiration (set on the gate's clock, hours behind here) has passed.
  const invoiceFor = (requestId: string) =>
    waitFor(
      () => (ledger.db.prepare("SELECT bolt11 FROM invoices WHERE request_id = ?").get(requestId) as { bolt11: string } | undefined)?.bolt11,
      8000,
      "an invoice",
    );
  const customer = async () => {
    const c = await new Customer().connect([relay.url]);
    customers.push(c);
    return c;
  };

  it("finds the money, the pool, the decisions by hour and the relay state, and writes a screenshot", async () => {
    // 10 h ago: an elite customer's two free jobs, done by the worker.
    const elite = await customer();
    ledger.setTier(elite.pubkey, "elite", nowMs());
    for (let i = 0; i < 2; i++) {
      const req = elite.request(gatePubkey(), { createdAt: nowSec(), input: `free ${i}` });
      await elite.publish(req);
      await waitFor(() => ledger.getRequest(req.id)?.state === "processing", 8000, "free job processing");
      await worker.result(req);
      await waitFor(() => ledger.getRequest(req.id)?.state === "done", 8000, "free job done");
    }

    // 8 h ago: a third free job the worker fails: its reservation goes back to the pool.
    offsetMs += 2 * HOUR;
    const failed = elite.request(gatePubkey(), { createdAt: nowSec(), input: "fails" });
    await elite.publish(failed);
    await waitFor(() => ledger.getRequest(failed.id)?.state === "processing", 8000, "free job processing");
    await worker.error(failed);
    await waitFor(() => ledger.getRequest(failed.id)?.state === "failed", 8000, "failed job voided");

    // 6 h ago: two paid jobs from a new customer (10 sats each), paid with the dev wallet.
    offsetMs += 2 * HOUR;
    const payer = await customer();
    for (let i = 0; i < 2; i++) {
      const req = payer.request(gatePubkey(), { createdAt: nowSec(), input: `paid ${i}` });
      await payer.publish(req);
      expect(devPay(ledger.db, await invoiceFor(req.id), nowMs()).status).toBe("paid");
      await waitFor(() => ledger.getRequest(req.id)?.state === "processing", 8000, "paid job processing");
      await worker.result(req);
      await waitFor(() => ledger.getRequest(req.id)?.state === "done", 8000, "paid job done");
    }

    // 3 h ago: an invoice nobody pays; two minutes later it has expired.
    offsetMs += 3 * HOUR;
    const shy = await customer();
    const unpaid = shy.request(gatePubkey(), { createdAt: nowSec(), input: "never paid" });
    await shy.publish(unpaid);
    await invoiceFor(unpaid.id);
    offsetMs += 2 * 60_000;
    await waitFor(() => ledger.getRequest(unpaid.id)?.state === "expired", 8000, "the unpaid offer to expire");
    await waitFor(
      () => (ledger.db.prepare("SELECT state FROM invoices WHERE request_id = ?").get(unpaid.id) as { state: string } | undefined)?.state === "expired",
      8000,
      "the invoice to be closed",
    );

    // 1 h ago: the operator tops up the pool by 25 sats.
    offsetMs += 2 * HOUR;
    ledger.credit(25 * SAT, "operator", "top-up", nowMs());

    // Now: one more invoice, still open when the page is read.
    offsetMs = 0;
    const late = await customer();
    const open = late.request(gatePubkey(), { createdAt: nowSec(), input: "paying soon" });
    await late.publish(open);
    await invoiceFor(open.id);
    // The service reports relay state on its sweep; wait for the page to have it.
    await waitForAsync(async () => (await fetch(`${http.url}/`).then((r) => r.text())).includes('id="relays-summary"'), 8000, "relay state on the page");

    const dump = await chromium(["--dump-dom", `${http.url}/`]);
    expect(dump.code, dump.stderr.slice(-2000)).toBe(0);
    const dom = dump.stdout;

    // Invoices: 4 issued (2 paid, 1 expired, 1 open), 10 sats each, all within 24 h.
    for (const w of ["24h", "all"]) {
      expect([byId(dom, `invoices-issued-${w}-count`), byId(dom, `invoices-issued-${w}-sats`)]).toEqual(["4", "40 sats"]);
      expect([byId(dom, `invoices-paid-${w}-count`), byId(dom, `invoices-paid-${w}-sats`)]).toEqual(["2", "20 sats"]);
      expect([byId(dom, `invoices-expired-${w}-count`), byId(dom, `invoices-expired-${w}-sats`)]).toEqual(["1", "10 sats"]);
      expect([byId(dom, `invoices-unpaid-${w}-count`), byId(dom, `invoices-unpaid-${w}-sats`)]).toEqual(["1", "10 sats"]);
    }
    // Earned: the two paid jobs that were done.
    expect(byId(dom, "earned-24h")).toBe("20 sats");
    expect(byId(dom, "earned-all")).toBe("20 sats");
    // Pool: 10,000 seeded − 20 absorbed by the free jobs + 25 operator + 2 × 1 sat (10 % of paid jobs).
    expect(byId(dom, "pool-balance")).toBe("10007 sats");
    expect(byId(dom, "pool-credited")).toBe("27 sats");
    expect(byId(dom, "chart-credits")).toBe("3 credits");
    expect(byId(dom, "chart-returns")).toMatch(/^1 void or expiry/);
    expect(dom).toContain('class="mark-credit"');
    // Decisions: 3 free, 4 gated, spread over different hours of the chart.
    expect(byId(dom, "decisions-free-24h")).toBe("3");
    expect(byId(dom, "decisions-gate-24h")).toBe("4");
    expect(byId(dom, "chart-decisions-free")).toBe("free 3");
    expect(byId(dom, "chart-decisions-gate")).toBe("gate 4");
    expect(byId(dom, "chart-decisions-partial")).toBe("partial 0");
    expect(byId(dom, "chart-decisions-blocked")).toBe("blocked 0");
    const bars = dom.match(/<rect [^>]*fill="#(1f9d55|e0a526)"><title>/g) ?? [];
    expect(bars.length).toBeGreaterThanOrEqual(4); // free at −10 h and −8 h, gate at −6 h, −3 h and now
    // Relay connection state.
    expect(byId(dom, "relays-summary")).toBe("1 of 1 connected");
    expect(dom).toContain(relay.url);
    // Nothing fetched from the network: the page has no external reference at all.
    expect(dom).not.toMatch(/\b(src|href)=/i);

    const shotDir = mkdtempSync(join(tmpdir(), "dvm-gate-page-shot-"));
    const shot = join(shotDir, "operator-page.png");
    const r = await chromium([`--screenshot=${shot}`, "--window-size=1280,2400", "--hide-scrollbars", `${http.url}/`]);
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    expect(statSync(shot).size).toBeGreaterThan(10_000);
    console.log(`operator page screenshot: ${shot}`);
  }, 120_000);
});
