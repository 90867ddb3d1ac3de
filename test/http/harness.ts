// Shared set-up for the HTTP tests: a real ledger on a temp SQLite file, a real server
// on 127.0.0.1:0, a pino logger whose lines the test can read, and NIP-98 tokens signed
// with real keys.
import { pino, type Logger } from "pino";
import { finalizeEvent, generateSecretKey, getPublicKey, type Event } from "nostr-tools/pure";
import { ledgerSettings } from "../../src/cli/context.js";
import { parseConfig, type RuntimeConfig } from "../../src/config/load.js";
import { Ledger, type GrantSigner } from "../../src/ledger/ledger.js";
import { GateMetrics } from "../../src/http/metrics.js";
import { startHttpServer, type HttpServer } from "../../src/http/server.js";
import { makeTmpDir, type TmpDir } from "../helpers/tmp.js";
import type { DepositMaker } from "../../src/http/balance.js";

export const SAT = 1000;

export interface Harness {
  tmp: TmpDir;
  cfg: RuntimeConfig;
  ledger: Ledger;
  metrics: GateMetrics;
  server: HttpServer;
  gateSecretKey: Uint8Array;
  gatePubkey: string;
  logLines: () => Record<string, unknown>[];
  /** Replaces the grant signer the ledger calls (the ledger keeps one for its lifetime). */
  setGrantSigner: (s: GrantSigner | null) => void;
  stop: () => Promise<void>;
}

export function testConfig(dbPath: string): RuntimeConfig {
  return parseConfig(
    {
      database: { path: dbPath, synchronous: "NORMAL" },
      jobs: { kinds: { "5050": { priceSats: 10 }, "5100": { priceSats: 100 } }, timeoutSec: 600 },
      freeTier: { budgetsSats: { new: 0, established: 50, trusted: 200, elite: 1000 }, poolInitialSats: 10_000, maxPendingPerPubkey: 3 },
      http: { host: "127.0.0.1", port: 0 },
      log: { level: "debug" },
    },
    { env: {} },
  );
}

export async function startHarness(opts: { nowMs?: () => number; deposits?: (ledger: Ledger) => DepositMaker } = {}): Promise<Harness> {
  const tmp = makeTmpDir("dvm-gate-http-");
  const cfg = testConfig(tmp.file("gate.sqlite"));
  const lines: string[] = [];
  const log: Logger = pino({ level: "debug" }, { write: (s: string) => void lines.push(s) });
  let signer: GrantSigner | null = null;
  const ledger = Ledger.open(cfg.database.path, ledgerSettings(cfg), {
    nowMs: Date.now(),
    synchronous: "NORMAL",
    grantSigner: (g) => {
      if (!signer) throw new Error("test: no grant signer set");
      return signer(g);
    },
  });
  const metrics = new GateMetrics();
  const gateSecretKey = generateSecretKey();
  const gatePubkey = getPublicKey(gateSecretKey);
  const server = await startHttpServer({
    cfg,
    ledger,
    log,
    metrics,
    gatePubkey,
    ...(opts.nowMs ? { nowMs: opts.nowMs } : {}),
    ...(opts.deposits ? { deposits: opts.deposits(ledger) } : {}),
  });
  return {
    tmp,
    cfg,
    ledger,
    metrics,
    server,
    gateSecretKey,
    gatePubkey,
    logLines: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
    setGrantSigner: (s) => {
      signer = s;
    },
    stop: async () => {
      await server.close();
      if (ledger.db.open) ledger.close();
      tmp.remove();
    },
  };
}

export interface TokenOptions {
  url: string;
  method?: string;
  createdAtSec?: number;
  kind?: number;
  extraTags?: string[][];
}

export function signAuthEvent(sk: Uint8Array, o: TokenOptions): Event {
  return finalizeEvent(
    {
      kind: o.kind ?? 27235,
      created_at: o.createdAtSec ?? Math.floor(Date.now() / 1000),
      tags: [["u", o.url], ["method", o.method ?? "GET"], ...(o.extraTags ?? [])],
      content: "",
    },
    sk,
  );
}

export function authHeader(ev: Event): string {
  return `Nostr ${Buffer.from(JSON.stringify(ev), "utf8").toString("base64")}`;
}

/** Every row of every table, in a stable order: equal snapshots mean nothing was written. */
export function snapshotTables(ledger: Ledger): Record<string, unknown[]> {
  const tables = ledger.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[];
  const out: Record<string, unknown[]> = {};
  for (const { name } of tables) {
    const rows = ledger.db.prepare(`SELECT * FROM "${name}"`).all() as Record<string, unknown>[];
    out[name] = rows.map((r) => JSON.stringify(r)).sort();
  }
  return out;
}

export function hex64(n: number): string {
  return n.toString(16).padStart(64, "0");
}
