// The one interface between the gate and where approved work runs (SPEC §11). A backend
// gets a job that the ledger already approved (free, or paid) and answers with its
// content or a failure; it never touches the ledger or the outbox: the job runner
// writes the result, the grant and the resolution in one transaction after it returns.
import type { Tier } from "../policy/tiers.js";

export interface BackendJob {
  /** The customer's request event id. */
  id: string;
  kind: number;
  customer: string;
  tier: Tier | null;
  /** `i` tags without the tag name: [data, type?, relay?, marker?] (decrypted when the request was encrypted). */
  inputs: string[][];
  /** `param` tags, the first value of each name. */
  params: Record<string, string>;
  output: string | null;
  /** Seconds left until the job's deadline when it starts. */
  deadlineSec: number;
}

export type BackendResult = { ok: true; content: string; costMsats?: number } | { ok: false; reason: string };

export interface RunOptions {
  /** Epoch ms by which the backend must have answered; it is aborted then. */
  deadlineMs: number;
  /** Aborted when the customer cancels or the gate stops. */
  signal: AbortSignal;
  /** The most UTF-8 bytes of content the gate will take (jobs.maxResultBytes). */
  maxResultBytes: number;
  /** Upstream progress (nip90's processing/partial feedback), passed on to the customer. */
  onProgress?: (status: "processing" | "partial", text: string) => void;
}

export interface Backend {
  readonly type: string;
  run(job: BackendJob, opts: RunOptions): Promise<BackendResult>;
  close?(): Promise<void>;
}

/** A kind's backend with its limits (jobs.kinds.K.backend). */
export interface KindBackend {
  backend: Backend;
  maxConcurrent: number;
  maxAttempts: number;
}

/** The JSON that http and exec backends receive (SPEC §11). */
export function jobPayload(job: BackendJob): Record<string, unknown> {
  return {
    id: job.id,
    kind: job.kind,
    customer: job.customer,
    tier: job.tier,
    inputs: job.inputs,
    params: job.params,
    output: job.output,
    deadlineSec: job.deadlineSec,
  };
}

/** Why a run stopped early: the deadline or a cancellation (the signal's reason says which). */
export function abortReason(signal: AbortSignal): string {
  const r: unknown = signal.reason;
  return typeof r === "string" ? r : "cancelled";
}

/** A failure reason from a peer's text: one line, at most 200 characters. */
export function shortReason(prefix: string, text: string): string {
  const one = text.replace(/\s+/g, " ").trim().slice(0, 200);
  return one ? `${prefix}: ${one}` : prefix;
}
