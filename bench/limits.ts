// The machine's own ceilings, measured in the same run as the figures compared with
// them: the disk swings 10–25× over minutes, so a number from yesterday means nothing.
// Each measurement runs for a bounded time, on one core, with no dvm-gate code path.
import { closeSync, fsyncSync, openSync, unlinkSync, writeSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import type { Db } from "../src/ledger/db.js";
import { openDb } from "../src/ledger/db.js";
import * as pure from "nostr-tools/pure";
import * as wasm from "nostr-tools/wasm";
import type { Event, EventTemplate } from "nostr-tools/pure";
import { initNostrWasm } from "nostr-wasm";
import type { MachineLimits } from "./types.js";

export type Synchronous = "FULL" | "NORMAL";

const RAW_MS = 1500;
const FSYNC_MS = 1000;
const CRYPTO_MS = 1000;

/** Runs `step` until `durationMs` passed; returns steps per second. Checks the clock every `every` steps. */
export function ratePerSec(durationMs: number, step: (i: number) => void, every = 16): number {
  const startNs = process.hrtime.bigint();
  const endNs = startNs + BigInt(durationMs) * 1_000_000n;
  let n = 0;
  let nowNs = startNs;
  while (nowNs < endNs) {
    for (let k = 0; k < every; k++) step(n++);
    nowNs = process.hrtime.bigint();
  }
  return n / (Number(nowNs - startNs) / 1e9);
}

/** Random 64-hex ids, cheap enough that generating them does not blur the figure. */
export class HexIds {
  private buf = randomBytes(32 * 4096);
  private at = 0;
  next(): string {
    if (this.at === this.buf.length) {
      this.buf = randomBytes(this.buf.length);
      this.at = 0;
    }
    const s = this.buf.toString("hex", this.at, this.at + 32);
    this.at += 32;
    return s;
  }
}

export const RAW_POOL_MSATS = 1_000_000_000_000_000;
export const RAW_PRICE_MSATS = 5_000;

/**
 * The writes of one free decision, in plain SQL: debit the pool with a balance guard,
 * insert the request, insert the reservation. Same tables, constraints, indexes and
 * foreign keys as the real file (the schema is data, not our code path).
 */
export class RawDecideWriter {
  readonly db: Db;
  private readonly ids = new HexIds();
  private readonly write: (requestId: string, pubkey: string, nowMs: number) => void;

  constructor(path: string, synchronous: Synchronous, nowMs: number) {
    this.db = openDb(path, { synchronous });
    this.db
      .prepare(
        "INSERT OR IGNORE INTO pool (id, initial_msats, credited_msats, balance_msats, pending_msats, absorbed_msats, seeded_at_ms) VALUES (1, ?, 0, ?, 0, 0, ?)",
      )
      .run(RAW_POOL_MSATS, RAW_POOL_MSATS, nowMs);
    const debit = this.db.prepare("UPDATE pool SET balance_msats = balance_msats - ?, pending_msats = pending_msats + ? WHERE id = 1 AND balance_msats >= ?");
    const insertRequest = this.db.prepare(
      `INSERT INTO requests (request_id, pubkey, kind, price_msats, decision, tier, absorb_msats, charge_msats, state, created_at_ms, expires_at_ms, updated_at_ms)
       VALUES (?, ?, 5050, ?, 'free', 'elite', ?, 0, 'processing', ?, ?, ?)`,
    );
    const insertReservation = this.db.prepare(
      `INSERT INTO reservations (request_id, pubkey, tier, budget_msats, amount_msats, counted_msats, state, created_at_ms, expires_at_ms)
       VALUES (?, ?, 'elite', 1000000000, ?, ?, 'pending', ?, ?)`,
    );
    this.write = this.db.transaction((requestId: string, pubkey: string, atMs: number) => {
      const p = RAW_PRICE_MSATS;
      if (debit.run(p, p, p).changes !== 1) throw new Error("bench pool ran dry");
      insertRequest.run(requestId, pubkey, p, p, atMs, atMs + 600_000, atMs);
      insertReservation.run(requestId, pubkey, p, p, atMs, atMs + 600_000);
    }).immediate;
  }

  decide(pubkey: string, nowMs: number): void {
    this.write(this.ids.next(), pubkey, nowMs);
  }

  close(): void {
    this.db.close();
  }
}

/** Raw BEGIN IMMEDIATE tx/s of the decide writes on a fresh WAL file in `dir`. */
export function rawTxPerSec(dir: string, synchronous: Synchronous, durationMs = RAW_MS): number {
  const path = join(dir, `limits-raw-${synchronous}-${process.hrtime.bigint()}.db`);
  const nowMs = Date.now();
  const w = new RawDecideWriter(path, synchronous, nowMs);
  const pubkeys = new HexIds();
  const keys = Array.from({ length: 1000 }, () => pubkeys.next());
  try {
    return ratePerSec(durationMs, (i) => w.decide(keys[i % keys.length]!, nowMs + i), 4);
  } finally {
    w.close();
  }
}

/** fsync/s of a small file in `dir`, one byte rewritten before each fsync. */
export function fsyncPerSec(dir: string, durationMs = FSYNC_MS): number {
  const path = join(dir, `limits-fsync-${process.hrtime.bigint()}`);
  const fd = openSync(path, "w");
  const byte = Buffer.from("x");
  try {
    return ratePerSec(
      durationMs,
      () => {
        writeSync(fd, byte, 0, 1, 0);
        fsyncSync(fd);
      },
      1,
    );
  } finally {
    closeSync(fd);
    unlinkSync(path);
  }
}

interface Schnorr {
  finalizeEvent: (t: EventTemplate, sk: Uint8Array) => Event;
  verifyEvent: (e: Event) => boolean;
}

function template(i: number): EventTemplate {
  return {
    kind: 5050,
    created_at: 1_700_000_000 + i,
    tags: [
      ["i", `bench input ${i}`, "text"],
      ["bid", "10000"],
      ["relays", "wss://relay.example.com"],
    ],
    content: "",
  };
}

/** sign/s and verify/s; verify gets a fresh object each time because nostr-tools caches its verdict on the event. */
function schnorrRates(s: Schnorr, durationMs: number): { sign: number; verify: number } {
  const sk = randomBytes(32);
  const signed = Array.from({ length: 256 }, (_, i) => s.finalizeEvent(template(i), sk));
  const sign = ratePerSec(durationMs, (i) => s.finalizeEvent(template(i), sk), 4);
  let bad = 0;
  const verify = ratePerSec(
    durationMs,
    (i) => {
      const e = signed[i % signed.length]!;
      const fresh: Event = { id: e.id, pubkey: e.pubkey, created_at: e.created_at, kind: e.kind, tags: e.tags, content: e.content, sig: e.sig };
      if (!s.verifyEvent(fresh)) bad++;
    },
    4,
  );
  if (bad > 0) throw new Error(`bench: ${bad} valid events failed verification`);
  return { sign, verify };
}

export async function measureLimits(workDir: string): Promise<MachineLimits> {
  const sqliteTxPerSec = { FULL: rawTxPerSec(workDir, "FULL"), NORMAL: rawTxPerSec(workDir, "NORMAL") };
  const fsync = fsyncPerSec(workDir);
  wasm.setNostrWasm(await initNostrWasm());
  const js = schnorrRates(pure, CRYPTO_MS);
  const w = schnorrRates(wasm, CRYPTO_MS);
  return {
    sqliteTxPerSec,
    fsyncPerSec: fsync,
    verifyPerSec: { js: js.verify, wasm: w.verify },
    signPerSec: { js: js.sign, wasm: w.sign },
    workDir,
  };
}
