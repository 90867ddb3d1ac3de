// Finding, reading, validating and converting the config. The only place that
// reads process.env for settings; everything downstream gets a RuntimeConfig.
import { existsSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { nip19 } from "nostr-tools";
import { z } from "zod";
import { configSchema, MAX_SATS, TIERS, type ParsedConfig, type Tier } from "./schema.js";
import { satsToMsats } from "../util/money.js";
import { toBackendConfig, type BackendConfig } from "./backend-schema.js";
import type { TrustSettings } from "../policy/tiers.js";

export class ConfigError extends Error {
  override name = "ConfigError";
}

export interface RuntimeConfig {
  /** The file the config came from, or null when running on the demo defaults. */
  sourcePath: string | null;
  /** Folder for the database, the demo key and other state. */
  dataDir: string;
  nostr: {
    secretKeyHex: string | null;
    relays: string[];
    maxReplyRelays: number;
    heartbeatSec: number;
    customerRelays: { maxOpen: number; connectTimeoutMs: number; publishTimeoutMs: number; maxAttempts: number };
  };
  database: { path: string; synchronous: "FULL" | "NORMAL"; busyTimeoutMs: number };
  jobs: {
    priceMsatsByKind: Map<number, number>;
    workerPubkeys: string[];
    timeoutSec: number;
    maxRequestAgeSec: number;
    maxRequestBytes: number;
    /** Kinds the gate runs itself (SPEC §11); a kind not here waits for an external worker. */
    backends: Map<number, BackendConfig>;
    maxResultBytes: number;
  };
  freeTier: {
    budgetsMsats: Record<Tier, number>;
    poolInitialMsats: number;
    poolCreditPct: number;
    maxPendingPerPubkey: number;
  };
  trust: TrustSettings;
  payments: {
    backend: "dev" | "nwc" | "lnbits";
    invoiceExpirySec: number;
    paymentGraceSec: number;
    devEnabled: boolean;
    nwcUri: string | null;
    lnbits: { url: string; invoiceKey: string } | null;
    zapProviderPubkey: string | null;
    invoiceLimits: { maxOpenInvoicesPerPubkey: number; newTierInvoicesPerMinute: number; newTierLimitRepliesPerMinute: number };
  };
  balances: { maxBalanceMsats: number };
  intake: ParsedConfig["intake"];
  http: { enabled: boolean; host: string; port: number; publicBaseUrl: string | null };
  plugin: {
    perPubkeyPerMinute: Record<Tier, number>;
    perIpPerMinute: number;
    tierCacheMs: number;
    abuseReportSec: number;
    minTierForKinds: Map<number, Tier>;
  };
  log: { level: ParsedConfig["log"]["level"] };
}

export type { TrustSettings };

export interface LoadOptions {
  /** --config FILE, if given. */
  configPath?: string | undefined;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** --config FILE, else $DVM_GATE_CONFIG, else ./dvm-gate.json if present, else null (demo defaults). */
export function findConfigPath(opts: LoadOptions): string | null {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  if (opts.configPath) return resolve(cwd, opts.configPath);
  if (env.DVM_GATE_CONFIG) return resolve(cwd, env.DVM_GATE_CONFIG);
  const local = resolve(cwd, "dvm-gate.json");
  return existsSync(local) ? local : null;
}

export function loadConfig(opts: LoadOptions = {}): RuntimeConfig {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const path = findConfigPath(opts);
  let raw: unknown = {};
  if (path) {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (err) {
      throw new ConfigError(`cannot read config ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new ConfigError(`config ${path} is not valid JSON${jsonErrorWhere(text, err)} (its text is not shown: it may hold a secret)`);
    }
  }
  return parseConfig(raw, { env, baseDir: path ? dirname(path) : cwd, sourcePath: path });
}

/**
 * Where a JSON syntax error is, never what is there: V8's message quotes the text
 * around the error, and an unquoted nsec would show in it. Only numbers are kept.
 */
export function jsonErrorWhere(text: string, err: unknown): string {
  const message = String((err as Error)?.message ?? "");
  const lineCol = /line (\d+) column (\d+)/.exec(message);
  if (lineCol) return ` at line ${lineCol[1]}, column ${lineCol[2]}`;
  const pos = /position (\d+)/.exec(message);
  if (pos) {
    const before = text.slice(0, Number(pos[1]));
    const line = before.split("\n").length;
    return ` at line ${line}, column ${before.length - before.lastIndexOf("\n")}`;
  }
  if (/end of JSON input/i.test(message)) return " (it ends too early)";
  return "";
}

const ENV_OVERRIDES: { name: string; apply: (c: Record<string, any>, v: number) => void }[] = [
  ...TIERS.map((tier) => ({
    name: `FREE_TIER_BUDGET_${tier.toUpperCase()}`,
    apply: (c: Record<string, any>, v: number) => (((c.freeTier ??= {}).budgetsSats ??= {})[tier] = v),
  })),
  { name: "FREE_TIER_POOL_INITIAL_SATS", apply: (c, v) => ((c.freeTier ??= {}).poolInitialSats = v) },
  { name: "FREE_TIER_POOL_CREDIT_PCT", apply: (c, v) => ((c.freeTier ??= {}).poolCreditPct = v) },
  { name: "TRUST_POINTS_PER_PAID_JOB", apply: (c, v) => ((c.trust ??= {}).pointsPerPaidJob = v) },
  { name: "TRUST_ABUSE_PENALTY", apply: (c, v) => ((c.trust ??= {}).abusePenalty = v) },
  { name: "TRUST_DECAY_AFTER_DAYS", apply: (c, v) => ((c.trust ??= {}).decayAfterDays = v) },
  { name: "TRUST_DECAY_PER_DAY", apply: (c, v) => ((c.trust ??= {}).decayPerDay = v) },
];

function applyEnvOverrides(raw: unknown, env: NodeJS.ProcessEnv): unknown {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return raw;
  const copy = structuredClone(raw) as Record<string, any>;
  for (const o of ENV_OVERRIDES) {
    const text = env[o.name];
    if (text === undefined || text === "") continue;
    if (!/^\d+$/.test(text.trim())) throw new ConfigError(`${o.name}: expected a whole non-negative number, got ${JSON.stringify(text)}`);
    const v = Number(text.trim());
    if (!Number.isSafeInteger(v) || v > MAX_SATS) throw new ConfigError(`${o.name}: must be ≤ ${MAX_SATS}`);
    o.apply(copy, v);
  }
  return copy;
}

export function formatZodError(err: z.ZodError): string {
  return err.issues
    .map((i) => {
      const where = i.path.length ? i.path.join(".") : "(config)";
      // zod reports a bad record key as "Invalid key in record"; say what was expected.
      const inner = (i as { issues?: { message: string }[] }).issues;
      const message = i.code === "invalid_key" && inner?.length ? inner.map((x) => x.message).join(", ") : i.message;
      return `${where}: ${message}`;
    })
    .join("; ");
}

/** Pubkeys anywhere may be npub or hex; inside we use lowercase hex only. */
export function pubkeyToHex(text: string): string {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return t.toLowerCase();
  if (t.startsWith("npub1")) {
    try {
      const d = nip19.decode(t);
      if (d.type === "npub") return d.data;
    } catch {
      /* fall through to the error below */
    }
  }
  throw new ConfigError(`not a pubkey (expected 64 hex characters or an npub): ${JSON.stringify(text.slice(0, 80))}`);
}

export function secretKeyToHex(text: string): string {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return t.toLowerCase();
  if (t.startsWith("nsec1")) {
    try {
      const d = nip19.decode(t);
      if (d.type === "nsec") return Buffer.from(d.data).toString("hex");
    } catch {
      /* fall through */
    }
  }
  throw new ConfigError("nostr.secretKey: expected an nsec or 64 hex characters (value not shown)");
}

/** "env:VAR", "file:PATH" or the literal value. Never echoes the secret in errors. */
export function resolveSecret(field: string, ref: string, env: NodeJS.ProcessEnv, baseDir: string): string {
  if (ref.startsWith("env:")) {
    const name = ref.slice(4);
    const v = env[name];
    if (!v) throw new ConfigError(`${field}: environment variable ${name} is not set`);
    return v.trim();
  }
  if (ref.startsWith("file:")) {
    const p = resolve(baseDir, ref.slice(5));
    try {
      return readFileSync(p, "utf8").trim();
    } catch (err) {
      throw new ConfigError(`${field}: cannot read secret file ${p}: ${(err as NodeJS.ErrnoException).code ?? "error"}`);
    }
  }
  return ref;
}

/**
 * Adds `key` to `obj` as an enumerable getter that runs `resolve` on first read and
 * keeps its value (an error is thrown again on each read, naming the field, never the value).
 */
function lazily<T extends object, K extends string, V>(obj: T, key: K, resolve: () => V): T & Record<K, V> {
  let done = false;
  let value: V;
  return Object.defineProperty(obj, key, {
    enumerable: true,
    get: () => {
      if (!done) {
        value = resolve();
        done = true;
      }
      return value;
    },
  }) as T & Record<K, V>;
}

export function parseConfig(raw: unknown, ctx: { env?: NodeJS.ProcessEnv; baseDir?: string; sourcePath?: string | null } = {}): RuntimeConfig {
  const env = ctx.env ?? process.env;
  const baseDir = ctx.baseDir ?? process.cwd();
  const where = ctx.sourcePath ? `config ${ctx.sourcePath}` : "config";
  const parsed = configSchema.safeParse(applyEnvOverrides(raw, env));
  if (!parsed.success) throw new ConfigError(`${where}: ${formatZodError(parsed.error)}`);
  const c = parsed.data;

  const secretRef = c.nostr.secretKey ?? env.DVM_GATE_NSEC;
  const dbPath = resolve(baseDir, c.database.path);

  if (c.payments.backend === "nwc" && !c.payments.nwc) throw new ConfigError(`${where}: payments.nwc: required when payments.backend is "nwc"`);
  if (c.payments.backend === "lnbits" && !c.payments.lnbits) throw new ConfigError(`${where}: payments.lnbits: required when payments.backend is "lnbits"`);

  const toMsats = (s: number) => satsToMsats(s);
  const nwc = c.payments.nwc;
  const lnbits = c.payments.lnbits;
  return {
    sourcePath: ctx.sourcePath ?? null,
    dataDir: dirname(dbPath),
    // Secrets are resolved when first read, so the commands that never sign or pay
    // (keygen, pool status, verify, grants, …) run without them being set.
    nostr: lazily(
      { relays: c.nostr.relays, maxReplyRelays: c.nostr.maxReplyRelays, customerRelays: c.nostr.customerRelays, heartbeatSec: c.nostr.heartbeatSec },
      "secretKeyHex",
      () => (secretRef ? secretKeyToHex(resolveSecret("nostr.secretKey", secretRef, env, baseDir)) : null),
    ),
    database: { path: dbPath, synchronous: c.database.synchronous, busyTimeoutMs: c.database.busyTimeoutMs },
    jobs: {
      priceMsatsByKind: new Map(Object.entries(c.jobs.kinds).map(([k, v]) => [Number(k), toMsats(v.priceSats)])),
      workerPubkeys: c.jobs.workerPubkeys.map(pubkeyToHex),
      timeoutSec: c.jobs.timeoutSec,
      maxRequestAgeSec: c.jobs.maxRequestAgeSec,
      maxRequestBytes: c.jobs.maxRequestBytes,
      backends: new Map(
        Object.entries(c.jobs.kinds).flatMap(([k, v]) =>
          v.backend
            ? [
                [
                  Number(k),
                  toBackendConfig(v.backend, `jobs.kinds.${k}.backend`, { pubkeyToHex, secret: (f, ref) => resolveSecret(f, ref, env, baseDir) }),
                ] as const,
              ]
            : [],
        ),
      ),
      maxResultBytes: c.jobs.maxResultBytes,
    },
    freeTier: {
      budgetsMsats: {
        new: toMsats(c.freeTier.budgetsSats.new),
        established: toMsats(c.freeTier.budgetsSats.established),
        trusted: toMsats(c.freeTier.budgetsSats.trusted),
        elite: toMsats(c.freeTier.budgetsSats.elite),
      },
      poolInitialMsats: toMsats(c.freeTier.poolInitialSats),
      poolCreditPct: c.freeTier.poolCreditPct,
      maxPendingPerPubkey: c.freeTier.maxPendingPerPubkey,
    },
    trust: {
      pointsPerPaidJob: c.trust.pointsPerPaidJob,
      abusePenalty: c.trust.abusePenalty,
      thresholds: c.trust.thresholds,
      decayAfterDays: c.trust.decayAfterDays,
      decayPerDay: c.trust.decayPerDay,
      wot: {
        anchors: c.trust.wot.anchors.map(pubkeyToHex),
        followFloor: c.trust.wot.followFloor,
        rankProvider: c.trust.wot.rankProvider ? pubkeyToHex(c.trust.wot.rankProvider) : null,
        rankFloors: c.trust.wot.rankFloors,
        refreshSec: c.trust.wot.refreshSec,
      },
    },
    payments: lazily(
      {
        backend: c.payments.backend,
        invoiceExpirySec: c.payments.invoiceExpirySec,
        paymentGraceSec: c.payments.paymentGraceSec,
        devEnabled: c.payments.dev.enabled || (ctx.sourcePath == null && c.payments.backend === "dev"),
        lnbits: lnbits ? lazily({ url: lnbits.url }, "invoiceKey", () => resolveSecret("payments.lnbits.invoiceKey", lnbits.invoiceKey, env, baseDir)) : null,
        zapProviderPubkey: c.payments.zap ? pubkeyToHex(c.payments.zap.providerPubkey) : null,
        invoiceLimits: {
          maxOpenInvoicesPerPubkey: c.payments.maxOpenInvoicesPerPubkey,
          newTierInvoicesPerMinute: c.payments.newTierInvoicesPerMinute,
          newTierLimitRepliesPerMinute: c.payments.newTierLimitRepliesPerMinute,
        },
      },
      "nwcUri",
      () => (nwc ? resolveSecret("payments.nwc.uri", nwc.uri, env, baseDir) : null),
    ),
    balances: { maxBalanceMsats: toMsats(c.balances.maxBalanceSats) },
    intake: c.intake,
    http: { enabled: c.http.enabled, host: c.http.host, port: c.http.port, publicBaseUrl: c.http.publicBaseUrl ?? null },
    plugin: {
      perPubkeyPerMinute: c.plugin.perPubkeyPerMinute,
      perIpPerMinute: c.plugin.perIpPerMinute,
      tierCacheMs: c.plugin.tierCacheMs,
      abuseReportSec: c.plugin.abuseReportSec,
      minTierForKinds: new Map(Object.entries(c.plugin.minTierForKinds).map(([k, t]) => [Number(k), t])),
    },
    log: c.log,
  };
}
