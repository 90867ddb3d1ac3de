// `npm start` with no config (SPEC §8): everything a first look needs, on loopback and
// in the data directory — the gate's key (generated once, kept 0600), an embedded relay
// from a relay library, the dev wallet, kind 5050 run by a built-in demo backend, and a short guide.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve, isAbsolute } from "node:path";
import { fileURLToPath } from "node:url";
import { generateSecretKey } from "nostr-tools/pure";
import { nip19 } from "nostr-tools";
import type { Logger } from "pino";
import type { RuntimeConfig } from "../config/load.js";
import { startEmbeddedRelay, type EmbeddedRelay } from "../peers/embedded-relay.js";
import { UsageError } from "./context.js";
import { HEX64 } from "../util/hex.js";

export const DEMO_KEY_FILE = "gate-key.hex";
export const DEMO_RELAY_PORT = 7777;
export const DEMO_KIND = 5050;

export function demoKeyPath(cfg: RuntimeConfig): string {
  return join(cfg.dataDir, DEMO_KEY_FILE);
}

/** The demo gate key from the data directory, created (mode 0600) the first time. */
export function loadOrCreateDemoKey(cfg: RuntimeConfig): Uint8Array {
  const existing = readDemoKey(cfg);
  if (existing) return existing;
  mkdirSync(cfg.dataDir, { recursive: true });
  const sk = generateSecretKey();
  writeFileSync(demoKeyPath(cfg), Buffer.from(sk).toString("hex") + "\n", { mode: 0o600, flag: "wx" });
  chmodSync(demoKeyPath(cfg), 0o600);
  return sk;
}

export function readDemoKey(cfg: RuntimeConfig): Uint8Array | null {
  const p = demoKeyPath(cfg);
  if (!existsSync(p)) return null;
  const hex = readFileSync(p, "utf8").trim();
  if (!HEX64.test(hex)) throw new UsageError(`demo key ${p} is not 64 hex characters; delete it to make a new one`);
  return Uint8Array.from(Buffer.from(hex, "hex"));
}

/**
 * The gate's secret key for commands that sign (start, settle): `nostr.secretKey`, or
 * on the demo defaults the key kept in the data directory.
 */
export function gateSecretKey(cfg: RuntimeConfig, opts: { createDemoKey: boolean }): Uint8Array | null {
  if (cfg.nostr.secretKeyHex) return Uint8Array.from(Buffer.from(cfg.nostr.secretKeyHex, "hex"));
  if (cfg.sourcePath !== null) return null;
  return opts.createDemoKey ? loadOrCreateDemoKey(cfg) : readDemoKey(cfg);
}

export interface DemoRelay {
  relay: EmbeddedRelay;
  /** The config with the demo relay as its only relay. */
  cfg: RuntimeConfig;
}

/** The embedded relay on 127.0.0.1:7777, or a free port when 7777 is taken. */
export async function startDemoRelay(cfg: RuntimeConfig, log: Logger): Promise<DemoRelay> {
  mkdirSync(cfg.dataDir, { recursive: true });
  const dbPath = join(cfg.dataDir, "relay.sqlite");
  let relay: EmbeddedRelay;
  try {
    relay = await startEmbeddedRelay({ port: DEMO_RELAY_PORT, dbPath });
  } catch (err) {
    log.info({ port: DEMO_RELAY_PORT, err: (err as Error).message }, "demo relay port taken; using a free one");
    relay = await startEmbeddedRelay({ port: 0, dbPath });
  }
  // Other commands (request, settle, fail, announce) find the demo relay here, even
  // when 7777 was taken and another port was used.
  writeFileSync(join(cfg.dataDir, DEMO_RELAY_FILE), relay.url + "\n");
  return { relay, cfg: { ...cfg, nostr: { ...cfg.nostr, relays: [relay.url] } } };
}

export const DEMO_RELAY_FILE = "relay-url.txt";

/**
 * The relays a command publishes to: the configured ones, or on the demo defaults (no
 * config file, no relays) the demo relay the running `start` bound.
 */
export function gateRelays(cfg: RuntimeConfig): string[] {
  if (cfg.nostr.relays.length > 0 || cfg.sourcePath !== null) return cfg.nostr.relays;
  try {
    const url = readFileSync(join(cfg.dataDir, DEMO_RELAY_FILE), "utf8").trim();
    if (/^wss?:\/\/\S+$/.test(url)) return [url];
  } catch {
    /* no demo has run here yet */
  }
  return [`ws://127.0.0.1:${DEMO_RELAY_PORT}`];
}

/** The package's folder: the nearest one above this file (dist/src/cli/ or src/cli/) that holds bin/dvm-gate.js. */
const PACKAGE_ROOT = ((): string => {
  const here = dirname(fileURLToPath(import.meta.url));
  for (let dir = here; dirname(dir) !== dir; dir = dirname(dir)) if (existsSync(join(dir, "bin", "dvm-gate.js"))) return dir;
  return resolve(here, "../../..");
})();

/**
 * How the guide's commands should start. `npx dvm-gate` finds the executable only inside
 * the package's folder; anywhere else npx would look the name up on the registry, so
 * the guide names this package's own executable instead.
 */
export function cliInvocation(cwd: string, packageRoot = PACKAGE_ROOT): string {
  const rel = relative(packageRoot, cwd);
  if (rel === "" || (!rel.startsWith("..") && !isAbsolute(rel))) return "npx dvm-gate";
  const bin = join(packageRoot, "bin", "dvm-gate.js");
  return `node ${/^[\w./+@:-]+$/.test(bin) ? bin : JSON.stringify(bin)}`;
}

export function demoGuide(o: { relayUrl: string; gatePubkey: string; httpUrl: string | null; dataDir: string; cli?: string }): string {
  const npub = nip19.npubEncode(o.gatePubkey);
  const cli = o.cli ?? "npx dvm-gate";
  return [
    "",
    "dvm-gate demo is running (no config file found: embedded defaults, dev wallet, no real money).",
    "",
    `  relay   ${o.relayUrl}`,
    `  gate    ${npub}`,
    ...(o.httpUrl ? [`  http    ${o.httpUrl}`] : []),
    `  data    ${resolve(o.dataDir)}   (gate key, ledger, relay events)`,
    "",
    "Send a first job (kind 5050, 10 sats) from another terminal:",
    "",
    `  ${cli} request --relay ${o.relayUrl} --gate ${npub} --kind ${DEMO_KIND} --input "hello" --wait 120`,
    "",
    "A new customer gets an invoice. Pay it with the dev wallet:",
    "",
    `  ${cli} dev-pay <the bolt11 it printed>`,
    "",
    "Or give a customer a free tier first: make a customer key, pin its tier, send with it:",
    "",
    `  ${cli} keygen`,
    `  ${cli} identity set-tier <its npub> elite`,
    `  ${cli} request --relay ${o.relayUrl} --gate ${npub} --key <its nsec> --input "hello" --wait 120`,
    "",
    "(run these from this folder: the commands find the demo's data in ./data)",
    "",
    `Then: ${cli} pool status · ${cli} grants · ${cli} verify. Stop with Ctrl-C.`,
    "",
  ].join("\n");
}
