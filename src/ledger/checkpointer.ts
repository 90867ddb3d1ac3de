// Moves SQLite's WAL checkpoints off the decision path. With automatic checkpoints,
// whichever decision commits past the threshold copies ~1,000 scattered pages into
// the database file and takes 10–20 ms on a large file (docs/BENCHMARKS.md). A worker
// thread runs PASSIVE checkpoints every `everyMs` instead; PASSIVE never waits for
// writers, and `wal_autocheckpoint` stays as a backstop if the worker falls behind.
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";

/** The backstop: a writer checkpoints itself only when the WAL is this many pages (~40 MB) behind. */
export const BACKSTOP_AUTOCHECKPOINT_PAGES = 10_000;

const WORKER_SOURCE = `
const { workerData, parentPort } = require("node:worker_threads");
const Database = require(workerData.betterSqlite3);
const db = new Database(workerData.path, { timeout: 1000 });
const timer = setInterval(() => {
  try { db.pragma("wal_checkpoint(PASSIVE)"); } catch { /* busy or closing: next tick */ }
}, workerData.everyMs);
parentPort.on("message", () => { clearInterval(timer); db.close(); process.exit(0); });
`;

export interface Checkpointer {
  stop: () => Promise<void>;
}

export function startCheckpointer(path: string, everyMs = 250): Checkpointer {
  // Resolved here, from the package, so the worker finds the same better-sqlite3 whatever the cwd.
  const betterSqlite3 = createRequire(import.meta.url).resolve("better-sqlite3");
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path, everyMs, betterSqlite3 } });
  worker.unref();
  let stopped: Promise<void> | null = null;
  return {
    stop: () =>
      (stopped ??= new Promise<void>((resolve) => {
        // Keep the event loop alive until the worker has closed its connection.
        worker.ref();
        worker.once("exit", () => resolve());
        worker.postMessage("stop");
      })),
  };
}
