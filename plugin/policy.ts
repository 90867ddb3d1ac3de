// The relay-side policy contract, after nostrify's NPolicy: one small synchronous
// `call` per event, composed in a pipeline that stops at the first reject. Synchronous
// on purpose: strfry waits for every answer on its single writer thread.
import type { Event } from "nostr-tools";

export type PolicyAction = "accept" | "reject" | "shadowReject";

export interface PolicyResult {
  action: PolicyAction;
  /** NIP-01 prefixed reason (`blocked: …`); empty on accept. */
  msg: string;
}

/**
 * Where the event came from, in strfry's words. `IP4`/`IP6` are live clients
 * (`info` is their address); `Import`, `Stream`, `Sync`, `Stored` are copies the
 * operator chose to bring in (`info` is a relay URL or empty); `Client` is a live
 * client of an in-process relay whose address the relay library does not give us.
 */
export type SourceType = "IP4" | "IP6" | "Import" | "Stream" | "Sync" | "Stored" | "Client";

export interface PolicyInput {
  event: Event;
  sourceType: SourceType;
  sourceInfo: string;
  /** The plugin's clock when the event arrived (injectable for tests). */
  nowMs: number;
  /**
   * An upper bound on the event's size as serialized JSON, when the adapter knows one
   * cheaply (strfry's line is longer than the event it carries); lets a size check
   * skip serializing events that are clearly small.
   */
  eventBytesAtMost?: number;
}

export interface Policy {
  readonly name: string;
  call(input: PolicyInput): PolicyResult;
}

export const ACCEPT: PolicyResult = Object.freeze({ action: "accept", msg: "" }) as PolicyResult;

// strfry reads answers with an 8,192-byte line buffer: keep every reason far below it.
const MAX_MSG_CHARS = 300;

export function reject(msg: string): PolicyResult {
  return { action: "reject", msg: msg.length > MAX_MSG_CHARS ? `${msg.slice(0, MAX_MSG_CHARS - 1)}…` : msg };
}

/** Live clients are rate-limited; copies the operator pulls in are not. */
export function isLiveSource(t: SourceType): boolean {
  return t === "IP4" || t === "IP6" || t === "Client";
}

/**
 * A dependency the policy needs is missing (no database yet). Its message is meant for
 * the client and the operator; any other exception is answered `error: internal error`.
 */
export class PolicyUnavailableError extends Error {
  override name = "PolicyUnavailableError";
}

export interface PipelineErrorSink {
  (err: unknown, policy: string, input: PolicyInput): void;
}

/**
 * Runs the policies in order and returns the first non-accept. A policy that throws is
 * a bug or a broken database: the event is rejected (`error: internal error`, fail
 * closed) and the pipeline stays usable for the next event.
 */
export class PolicyPipeline implements Policy {
  readonly name = "pipeline";
  constructor(
    readonly policies: readonly Policy[],
    private readonly onError: PipelineErrorSink = () => {},
  ) {}

  call(input: PolicyInput): PolicyResult {
    for (const p of this.policies) {
      let r: PolicyResult;
      try {
        r = p.call(input);
      } catch (err) {
        this.onError(err, p.name, input);
        if (err instanceof PolicyUnavailableError) return reject(`error: ${err.message}`);
        return { action: "reject", msg: "error: internal error" };
      }
      if (r.action !== "accept") return r;
    }
    return ACCEPT;
  }
}
