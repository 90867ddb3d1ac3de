// Opening the SQLite file: WAL, synchronous from config, an explicit busy timeout,
// migrations by `user_version`, and a bounded retry so SQLITE_BUSY never escapes
// to callers when several processes share one file.
import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { MIGRATIONS } from "./schema.js";

export type Db = Database.Database;

export interface OpenOptions {
  synchronous?: "FULL" | "NORMAL";
  busyTimeoutMs?: number;
  readonly?: boolean;
  /**
   * Pages of WAL after which a committing writer checkpoints itself (SQLite's default
   * is 1000). The service raises it and checkpoints in the background (checkpointer.ts).
   */
  walAutocheckpointPages?: number;
}

export class LedgerBusyError extends Error {
  override name = "LedgerBusyError";
}

function isBusy(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return code === "SQLITE_BUSY" || code === "SQLITE_BUSY_SNAPSHOT" || code === "SQLITE_LOCKED";
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
function sleepSync(ms: number): void {
  Atomics.wait(sleepCell, 0, 0, ms);
}

/**
 * Runs `fn` until it does not fail with SQLITE_BUSY. SQLite's own busy handler already
 * waits `busy_timeout`; its waits are unfair between processes, so a writer that lost
 * every race gets a few more tries with jitter before we give up with a clear error.
 */
export function withBusyRetry<T>(fn: () => T, attempts = 8): T {
  for (let i = 1; ; i++) {
    try {
      return fn();
    } catch (err) {
      if (!isBusy(err) || i >= attempts) {
        if (isBusy(err)) throw new LedgerBusyError(`database stayed locked after ${attempts} attempts`);
        throw err;
      }
      sleepSync(5 + Math.floor(Math.random() * 20 * i));
    }
  }
}

export function openDb(path: string, opts: OpenOptions = {}): Db {
  const readonly = opts.readonly ?? false;
  if (!readonly && path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path, { readonly, fileMustExist: readonly, timeout: opts.busyTimeoutMs ?? 10_000 });
  db.pragma(`busy_timeout = ${Math.trunc(opts.busyTimeoutMs ?? 10_000)}`);
  if (readonly) {
    const v = db.pragma("user_version", { simple: true }) as number;
    if (v !== MIGRATIONS.length)
      throw new Error(`database ${path} is at schema version ${v}, this dvm-gate expects ${MIGRATIONS.length}: start the service once to migrate it`);
    return db;
  }
  withBusyRetry(() => db.pragma("journal_mode = WAL"));
  db.pragma(`synchronous = ${opts.synchronous === "NORMAL" ? "NORMAL" : "FULL"}`);
  if (opts.walAutocheckpointPages !== undefined) db.pragma(`wal_autocheckpoint = ${Math.max(0, Math.trunc(opts.walAutocheckpointPages))}`);
  db.pragma("foreign_keys = ON");
  // Savepoints (each decision of a batch runs in one, inside the batch's transaction)
  // need a sub-journal; on disk that is a temporary file opened, written, unlinked and
  // closed per transaction. In memory it costs nothing of the kind.
  db.pragma("temp_store = MEMORY");
  // 64 MiB of page cache (SQLite's default is 2 MiB): with a million identities and
  // grants, the indexes a decision walks stay in memory instead of being re-read.
  db.pragma("cache_size = -65536");
  // Reads beyond that come from the OS page cache through a 256 MiB memory map (shared,
  // not per-process heap) instead of a read() per page.
  db.pragma("mmap_size = 268435456");
  migrate(db);
  return db;
}

function migrate(db: Db): void {
  withBusyRetry(() =>
    db
      .transaction(() => {
        const current = db.pragma("user_version", { simple: true }) as number;
        if (current > MIGRATIONS.length)
          throw new Error(`database schema version ${current} is newer than this dvm-gate (${MIGRATIONS.length}); upgrade dvm-gate`);
        for (let v = current; v < MIGRATIONS.length; v++) {
          db.exec(MIGRATIONS[v]!);
          db.pragma(`user_version = ${v + 1}`);
        }
      })
      .immediate(),
  );
}
