// One `dvm-gate start` per ledger. The lock is a small SQLite file next to the
// database, held in SQLite's EXCLUSIVE locking mode for the life of the service: the
// kernel's file lock goes away with the process, so a holder killed with -9 leaves no
// lock behind and the next start takes over without any pid or clock guesswork. A
// `.pid` file beside it only names the holder in a refused start's message; the SQLite
// lock alone decides (a stale pid file from a killed holder is simply overwritten).
import Database from "better-sqlite3";
import { readFileSync, rmSync, writeFileSync } from "node:fs";

export class LedgerLockedError extends Error {
  override name = "LedgerLockedError";
}

export interface ServeLock {
  path: string;
  release: () => void;
}

export function serveLockPath(dbPath: string): string {
  return `${dbPath}.lock`;
}

function holderPath(lockPath: string): string {
  return `${lockPath}.pid`;
}

function isBusy(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return code === "SQLITE_BUSY" || code === "SQLITE_LOCKED";
}

/**
 * Takes the serve lock of `dbPath` or throws LedgerLockedError naming the database and
 * the holder's pid. Never waits: a second start is refused at once.
 */
export function acquireServeLock(dbPath: string, nowMs: number): ServeLock {
  const path = serveLockPath(dbPath);
  const db = new Database(path, { timeout: 0 });
  try {
    db.pragma("busy_timeout = 0");
    // No journal file beside the lock; the lock file holds nothing worth recovering.
    db.pragma("journal_mode = MEMORY");
    db.pragma("locking_mode = EXCLUSIVE");
    // The first write under EXCLUSIVE locking mode takes the lock and keeps it after commit.
    db.exec("BEGIN EXCLUSIVE");
    db.exec("CREATE TABLE IF NOT EXISTS holder (pid INTEGER NOT NULL, since_ms INTEGER NOT NULL)");
    db.exec("DELETE FROM holder");
    db.prepare("INSERT INTO holder (pid, since_ms) VALUES (?, ?)").run(process.pid, nowMs);
    db.exec("COMMIT");
  } catch (err) {
    db.close();
    if (isBusy(err)) {
      const pid = readHolderPid(path);
      throw new LedgerLockedError(
        `start: the ledger ${dbPath} is already served by another dvm-gate start${pid ? ` (pid ${pid})` : ""}; stop it first, or give this one its own database.path`,
      );
    }
    throw err;
  }
  writeFileSync(holderPath(path), `${process.pid}\n`);
  return {
    path,
    release: () => {
      if (!db.open) return;
      rmSync(holderPath(path), { force: true });
      db.close();
    },
  };
}

function readHolderPid(lockPath: string): number | null {
  try {
    const pid = Number(readFileSync(holderPath(lockPath), "utf8").trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}
