// The one config file, validated with zod. Sats for humans here; the rest of the
// code only ever sees msats, converted once by `toRuntime` in load.ts.
import { z } from "zod";

import { TIERS, type Tier } from "../policy/tiers.js";
import { HEX64 } from "../util/hex.js";

export { TIERS, type Tier };

// Whole, non-negative sats, bounded so that msats stay exact in a JS number
// (10,000 BTC is far beyond any free-tier budget or job price).
import { MAX_SATS } from "../util/money.js";
import { backendSchema } from "./backend-schema.js";
export { MAX_SATS };
const sats = z.number().int("must be a whole number of sats").min(0, "must be ≥ 0").max(MAX_SATS, `must be ≤ ${MAX_SATS}`);
const seconds = (min: number, max: number) => z.number().int("must be a whole number of seconds").min(min).max(max);
const pubkeyText = z.string().refine((s) => HEX64.test(s) || /^npub1[02-9ac-hj-np-z]{58}$/.test(s), "must be a 64-char hex pubkey or an npub");
const relayUrl = z.string().regex(/^wss?:\/\/[^\s]+$/, "must be a ws:// or wss:// URL");
// A secret may be given inline, as "env:VAR" or as "file:PATH"; resolved in load.ts.
const secretRef = z.string().min(1, "must not be empty");

const kindKey = z.string().regex(/^5\d{3}$/, "job kinds are 5000–5999");

// Each tier may be given alone; the others keep the seed's defaults.
export const tierBudgets = z.object({ new: sats.default(0), established: sats.default(50), trusted: sats.default(200), elite: sats.default(1000) }).strict();

export const configSchema = z
  .object({
    nostr: z
      .object({
        secretKey: secretRef.optional(),
        relays: z.array(relayUrl).default([]),
        // Kind 11998 liveness (SPEC §11): clients show a DVM as offline without one newer than 420 s.
        heartbeatSec: seconds(10, 86_400).default(300),
        // Relays named in a request's `relays` tag are untrusted peers (SPEC §4, docs/OPERATIONS.md).
        maxReplyRelays: z.number().int().min(0).max(10).default(3),
        customerRelays: z
          .object({
            maxOpen: z.number().int().min(1).max(1000).default(16),
            connectTimeoutMs: z.number().int().min(100).max(60_000).default(3000),
            publishTimeoutMs: z.number().int().min(100).max(60_000).default(3000),
            maxAttempts: z.number().int().min(1).max(12).default(3),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    database: z
      .object({
        path: z.string().min(1).default("./data/dvm-gate.sqlite"),
        synchronous: z.enum(["FULL", "NORMAL"]).default("FULL"),
        busyTimeoutMs: z.number().int().min(100).max(60_000).default(10_000),
      })
      .strict()
      .prefault({}),
    jobs: z
      .object({
        kinds: z.record(kindKey, z.object({ priceSats: sats, backend: backendSchema.optional() }).strict()).default({ "5050": { priceSats: 10 } }),
        workerPubkeys: z.array(pubkeyText).default([]),
        timeoutSec: seconds(1, 7 * 86_400).default(600),
        maxRequestAgeSec: seconds(1, 7 * 86_400).default(900),
        maxRequestBytes: z.number().int().min(256).max(1_048_576).default(65_536),
        // A backend's answer longer than this (UTF-8 bytes) fails the job (SPEC §11).
        maxResultBytes: z.number().int().min(256).max(16_777_216).default(65_536),
      })
      .strict()
      .prefault({}),
    freeTier: z
      .object({
        budgetsSats: tierBudgets.prefault({}),
        poolInitialSats: sats.default(10_000),
        poolCreditPct: z.number().int("must be a whole percentage").min(0).max(100).default(10),
        maxPendingPerPubkey: z.number().int().min(0).max(1000).default(3),
      })
      .strict()
      .prefault({}),
    trust: z
      .object({
        pointsPerPaidJob: z.number().int().min(0).max(1000).default(2),
        abusePenalty: z.number().int().min(0).max(1000).default(5),
        thresholds: z
          .object({ established: z.number().int().min(1), trusted: z.number().int().min(1), elite: z.number().int().min(1) })
          .strict()
          .refine((t) => t.established < t.trusted && t.trusted < t.elite, "thresholds must rise: established < trusted < elite")
          .default({ established: 10, trusted: 50, elite: 200 }),
        decayAfterDays: z.number().int().min(0).max(3650).default(30),
        decayPerDay: z.number().int().min(0).max(1000).default(1),
        // Web-of-trust floors: signed events from keys the operator chose, cached locally.
        wot: z
          .object({
            anchors: z.array(pubkeyText).default([]),
            followFloor: z.enum(TIERS).default("established"),
            rankProvider: pubkeyText.optional(),
            rankFloors: z.array(z.object({ minRank: z.number().int().min(0).max(100), tier: z.enum(TIERS) }).strict()).default([]),
            // How often the service re-reads the anchors' and provider's events.
            refreshSec: z
              .number()
              .int()
              .min(60)
              .max(7 * 86_400)
              .default(900),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    payments: z
      .object({
        backend: z.enum(["dev", "nwc", "lnbits"]).default("dev"),
        invoiceExpirySec: seconds(60, 86_400).default(600),
        // An unpaid offer stays open this long past its deadline, so a payment made in
        // time but seen late (service restart, slow backend) is honoured, not lost.
        paymentGraceSec: seconds(0, 86_400).default(300),
        dev: z
          .object({ enabled: z.boolean().default(false) })
          .strict()
          .default({ enabled: false }),
        nwc: z.object({ uri: secretRef }).strict().optional(),
        lnbits: z.object({ url: z.string().url(), invoiceKey: secretRef }).strict().optional(),
        zap: z.object({ providerPubkey: pubkeyText }).strict().optional(),
        // Invoice limits (SPEC §6): an invoice costs a wallet call, a fresh key costs nothing.
        maxOpenInvoicesPerPubkey: z.number().int().min(1).max(1000).default(3),
        newTierInvoicesPerMinute: z.number().int().min(0).max(1_000_000).default(60),
        newTierLimitRepliesPerMinute: z.number().int().min(0).max(1_000_000).default(60),
      })
      .strict()
      .prefault({}),
    // Arrival queues by tier (docs/OPERATIONS.md "Floods"): bounds on memory and waiting.
    intake: z
      .object({
        queueSizes: z
          .object({
            new: z.number().int().min(1).max(1_000_000).default(2000),
            established: z.number().int().min(1).max(1_000_000).default(2000),
            trusted: z.number().int().min(1).max(1_000_000).default(2000),
            elite: z.number().int().min(1).max(1_000_000).default(2000),
          })
          .strict()
          .prefault({}),
        maxQueued: z.number().int().min(1).max(1_000_000).default(5000),
        maxWaitMs: z.number().int().min(100).max(3_600_000).default(60_000),
        catchUpHoldMs: z.number().int().min(0).max(600_000).default(10_000),
        tierCacheMs: z.number().int().min(0).max(600_000).default(2000),
      })
      .strict()
      .prefault({}),
    // Prepaid balances (SPEC §12): the most the gate holds for one customer.
    balances: z
      .object({ maxBalanceSats: sats.default(100_000) })
      .strict()
      .prefault({}),
    http: z
      .object({
        enabled: z.boolean().default(true),
        host: z.string().min(1).default("127.0.0.1"),
        port: z.number().int().min(0).max(65_535).default(8080),
        // The URL clients use to reach /estimate when behind a TLS proxy (NIP-98 `u` tag).
        publicBaseUrl: z.string().url().optional(),
      })
      .strict()
      .prefault({}),
    plugin: z
      .object({
        // Per-pubkey and per-IP job-request allowances per minute, by tier.
        perPubkeyPerMinute: z
          .object({
            new: z.number().int().min(0).default(10),
            established: z.number().int().min(0).default(30),
            trusted: z.number().int().min(0).default(120),
            elite: z.number().int().min(0).default(600),
          })
          .strict()
          .prefault({}),
        perIpPerMinute: z.number().int().min(0).default(120),
        // Rate-limit violations cost trust (SPEC §5): at most one abuse per pubkey per
        // this many seconds, written by the plugin off its hot path. 0 turns it off.
        abuseReportSec: z.number().int().min(0).max(86_400).default(60),
        // How long the plugin remembers a pubkey's tier and ban (0 = read every event).
        tierCacheMs: z.number().int().min(0).max(60_000).default(1000),
        minTierForKinds: z.record(z.string().regex(/^\d{1,5}$/, "must be an event kind"), z.enum(TIERS)).default({}),
      })
      .strict()
      .prefault({}),
    log: z
      .object({ level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info") })
      .strict()
      .prefault({}),
  })
  .strict();

export type ConfigFile = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;
