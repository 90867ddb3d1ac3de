// Who is this pubkey to the gate: effective tier and ban, read from the service's
// SQLite file. Read-only by construction (the connection is opened read-only, one
// prepared statement, no writes ever), so the plugin never competes with the service
// for the write lock and never changes the books.
import type { Statement } from "better-sqlite3";
import { existsSync } from "node:fs";
import type { TrustSettings } from "../src/config/load.js";
import { openDb, type Db } from "../src/ledger/db.js";
import { SELECT_IDENTITY_SQL, toTrustState, type IdentityRow } from "../src/ledger/identity-row.js";
import { effectiveTier, type Tier } from "../src/policy/tiers.js";
import { PolicyUnavailableError } from "./policy.js";

export interface TierInfo {
  tier: Tier;
  banned: boolean;
}

export interface TierLookup {
  /** Throws PolicyUnavailableError when the answer cannot be known (fail closed). */
  lookup(pubkey: string, nowMs: number): TierInfo;
}

export interface SqliteTierLookupOptions {
  path: string;
  trust: TrustSettings;
  busyTimeoutMs: number;
  /** While the file is missing or unreadable, how often to try opening it again. */
  reopenIntervalMs?: number;
  /** Told once per change between available and unavailable, never per event. */
  onStateChange?: (available: boolean, detail: string) => void;
}

export class SqliteTierLookup implements TierLookup {
  private db: Db | null = null;
  private byPubkey: Statement | null = null;
  private lastAttemptMs = -Infinity;
  private lastProblem: string | null = null;
  private readonly reopenIntervalMs: number;

  constructor(private readonly opts: SqliteTierLookupOptions) {
    this.reopenIntervalMs = opts.reopenIntervalMs ?? 1000;
  }

  /** Opens the file now; returns the problem (also reported) when it cannot. */
  open(nowMs: number): string | null {
    this.lastAttemptMs = nowMs;
    const path = this.opts.path;
    let problem: string;
    if (!existsSync(path)) {
      problem = `dvm-gate database ${path} does not exist yet (start the dvm-gate service once to create it)`;
    } else {
      try {
        const db = openDb(path, { readonly: true, busyTimeoutMs: this.opts.busyTimeoutMs });
        this.byPubkey = db.prepare(SELECT_IDENTITY_SQL);
        this.db = db;
        this.lastProblem = null;
        this.opts.onStateChange?.(true, `reading ${path} read-only`);
        return null;
      } catch (err) {
        problem = `cannot read dvm-gate database ${path}: ${(err as Error).message}`;
      }
    }
    if (problem !== this.lastProblem) this.opts.onStateChange?.(false, problem);
    this.lastProblem = problem;
    return problem;
  }

  lookup(pubkey: string, nowMs: number): TierInfo {
    if (!this.byPubkey) {
      if (nowMs - this.lastAttemptMs >= this.reopenIntervalMs) this.open(nowMs);
      if (!this.byPubkey) throw new PolicyUnavailableError("dvm-gate database not available");
    }
    // No row: a pubkey the gate has never seen, which is what tier `new` means.
    const s = toTrustState(this.byPubkey.get(pubkey) as IdentityRow | undefined, nowMs);
    return { tier: effectiveTier(s, nowMs, this.opts.trust), banned: s.banned };
  }

  close(): void {
    this.db?.close();
    this.db = null;
    this.byPubkey = null;
  }
}

/**
 * Several policies ask about the same pubkey for one event; this answers the repeats
 * from the first read. `forget()` is called before every event, so an answer never
 * outlives the event it was read for and a new ban applies to the very next event.
 */
export class PerEventTierLookup implements TierLookup {
  private lastPubkey = "";
  private lastNowMs = NaN;
  private last: TierInfo | null = null;

  constructor(private readonly inner: TierLookup) {}

  forget(): void {
    this.last = null;
  }

  lookup(pubkey: string, nowMs: number): TierInfo {
    if (this.last && pubkey === this.lastPubkey && nowMs === this.lastNowMs) return this.last;
    this.last = null;
    const info = this.inner.lookup(pubkey, nowMs);
    this.lastPubkey = pubkey;
    this.lastNowMs = nowMs;
    this.last = info;
    return info;
  }
}

/**
 * Remembers answers for `ttlMs`, at most `maxEntries` pubkeys. One SQLite read costs
 * several microseconds (a read transaction and shared-memory locks per statement), a
 * noticeable share of strfry's round trip; the price is that a ban or tier change made
 * by the operator reaches this relay up to `ttlMs` later. `ttlMs = 0` turns it off.
 */
export class CachedTierLookup implements TierLookup {
  private readonly entries = new Map<string, { info: TierInfo; readAtMs: number }>();

  constructor(
    private readonly inner: TierLookup,
    readonly ttlMs: number,
    readonly maxEntries = 10_000,
  ) {
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 0) throw new Error(`ttlMs must be a whole number ≥ 0, got ${ttlMs}`);
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) throw new Error(`maxEntries must be a positive integer, got ${maxEntries}`);
  }

  lookup(pubkey: string, nowMs: number): TierInfo {
    if (this.ttlMs === 0) return this.inner.lookup(pubkey, nowMs);
    const hit = this.entries.get(pubkey);
    // A clock that stepped back also counts as stale.
    if (hit && nowMs >= hit.readAtMs && nowMs - hit.readAtMs < this.ttlMs) return hit.info;
    const info = this.inner.lookup(pubkey, nowMs);
    this.entries.delete(pubkey);
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(pubkey, { info, readAtMs: nowMs });
    return info;
  }
}
