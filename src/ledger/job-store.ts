// The durable job queue of SPEC §11 (table `jobs`). A job is queued in the transaction
// that sends its go signal, claimed (state running, attempts + 1) in a short
// transaction before its backend is called, and ended in the transaction that posts or
// voids its reservation. All writers expect to run inside the caller's transaction.
import type { Db } from "./db.js";
import { stmt } from "./stmt.js";
import type { Tier } from "../policy/tiers.js";

export type JobState = "waiting" | "running" | "done" | "failed" | "cancelled";

export interface JobRow {
  id: number;
  requestId: string;
  kind: number;
  tierRank: number;
  state: JobState;
  attempts: number;
  queuedAtMs: number;
  startedAtMs: number | null;
}

const TIER_RANK: Record<Tier, number> = { new: 0, established: 1, trusted: 2, elite: 3 };

interface Raw {
  id: number;
  request_id: string;
  kind: number;
  tier_rank: number;
  state: JobState;
  attempts: number;
  queued_at_ms: number;
  started_at_ms: number | null;
}
const toJob = (r: Raw): JobRow => ({
  id: r.id,
  requestId: r.request_id,
  kind: r.kind,
  tierRank: r.tier_rank,
  state: r.state,
  attempts: r.attempts,
  queuedAtMs: r.queued_at_ms,
  startedAtMs: r.started_at_ms,
});

/** Queues a job once per request (the request id is the idempotency key). Returns whether it is new. */
export function queueJob(db: Db, j: { requestId: string; kind: number; tier: Tier | null; nowMs: number }): boolean {
  return (
    stmt(db, "INSERT OR IGNORE INTO jobs (request_id, kind, tier_rank, state, queued_at_ms) VALUES (?, ?, ?, 'waiting', ?)").run(
      j.requestId,
      j.kind,
      TIER_RANK[j.tier ?? "new"],
      j.nowMs,
    ).changes === 1
  );
}

export function getJob(db: Db, requestId: string): JobRow | null {
  const r = stmt(db, "SELECT * FROM jobs WHERE request_id = ?").get(requestId) as Raw | undefined;
  return r ? toJob(r) : null;
}

export function countRunning(db: Db, kind: number): number {
  return (stmt(db, "SELECT COUNT(*) AS n FROM jobs WHERE kind = ? AND state = 'running'").get(kind) as { n: number }).n;
}

/** The next waiting job of a kind: the highest tier first, then the earliest queued. */
export function nextWaiting(db: Db, kind: number): JobRow | null {
  const r = stmt(db, "SELECT * FROM jobs WHERE kind = ? AND state = 'waiting' ORDER BY tier_rank DESC, id LIMIT 1").get(kind) as Raw | undefined;
  return r ? toJob(r) : null;
}

/** waiting → running, one more attempt. False when the job was not waiting. */
export function markRunning(db: Db, id: number, nowMs: number): boolean {
  return (
    stmt(db, "UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at_ms = ? WHERE id = ? AND state = 'waiting'").run(nowMs, id).changes === 1
  );
}

/** Ends an open job; false when it had already ended (so a result cannot follow a cancellation). */
export function endJob(db: Db, requestId: string, state: "done" | "failed" | "cancelled", reason: string | null, nowMs: number): boolean {
  return (
    stmt(db, "UPDATE jobs SET state = ?, ended_at_ms = ?, reason = ? WHERE request_id = ? AND state IN ('waiting','running')").run(
      state,
      nowMs,
      reason === null ? null : reason.slice(0, 300),
      requestId,
    ).changes === 1
  );
}

/** Jobs left running by a gate that stopped without finishing them. */
export function runningJobs(db: Db, limit = 10_000): JobRow[] {
  return (stmt(db, "SELECT * FROM jobs WHERE state = 'running' ORDER BY id LIMIT ?").all(limit) as Raw[]).map(toJob);
}

/** A job that ran before a restart waits again to be started. */
export function requeue(db: Db, id: number): void {
  stmt(db, "UPDATE jobs SET state = 'waiting' WHERE id = ? AND state = 'running'").run(id);
}

export function openJobCount(db: Db): number {
  return (stmt(db, "SELECT COUNT(*) AS n FROM jobs WHERE state IN ('waiting','running')").get() as { n: number }).n;
}

/** A job stopped by a graceful shutdown waits again, its attempt given back (it was not its fault). */
export function releaseJob(db: Db, id: number): void {
  stmt(db, "UPDATE jobs SET state = 'waiting', attempts = MAX(0, attempts - 1) WHERE id = ? AND state = 'running'").run(id);
}
