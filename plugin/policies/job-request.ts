// Job requests for the gate's own kinds must be well-formed NIP-90 before a relay
// stores them: bounded size, fresh, not expired, tags in the shapes the gate reads.
// Other kinds, including other DVMs' job kinds, are not this policy's business.
import { ACCEPT, isLiveSource, reject, type Policy, type PolicyInput, type PolicyResult } from "../policy.js";

export interface JobRequestPolicyOptions {
  /** The gate's job kinds (the keys of `jobs.kinds`). */
  kinds: ReadonlySet<number>;
  maxRequestBytes: number;
  maxRequestAgeSec: number;
  /** How far ahead of our clock `created_at` may be (SPEC §4: 60 s). */
  maxFutureSec?: number;
}

const INPUT_TYPES = new Set(["url", "event", "job", "text"]);
const HEX64 = /^[0-9a-f]{64}$/;
const DIGITS = /^\d{1,16}$/;
const UNIX_SEC = /^\d{1,12}$/;

export class JobRequestPolicy implements Policy {
  readonly name = "job-request";
  private readonly maxFutureSec: number;

  constructor(private readonly opts: JobRequestPolicyOptions) {
    this.maxFutureSec = opts.maxFutureSec ?? 60;
  }

  call(input: PolicyInput): PolicyResult {
    const ev = input.event;
    if (!this.opts.kinds.has(ev.kind)) return ACCEPT;
    if (input.eventBytesAtMost === undefined || input.eventBytesAtMost > this.opts.maxRequestBytes) {
      const bytes = Buffer.byteLength(JSON.stringify(ev));
      if (bytes > this.opts.maxRequestBytes)
        return reject(`invalid: job request is ${bytes} bytes, over this relay's limit of ${this.opts.maxRequestBytes}`);
    }
    if (!Array.isArray(ev.tags)) return reject("invalid: tags must be an array");

    const nowSec = Math.floor(input.nowMs / 1000);
    // Freshness is a live client's concern; events copied in by sync or import are history.
    if (isLiveSource(input.sourceType)) {
      if (typeof ev.created_at !== "number" || !Number.isInteger(ev.created_at)) return reject("invalid: created_at must be a whole number of seconds");
      if (ev.created_at > nowSec + this.maxFutureSec) return reject(`invalid: created_at is more than ${this.maxFutureSec} s in the future`);
      if (ev.created_at < nowSec - this.opts.maxRequestAgeSec)
        return reject(`invalid: job request is older than ${this.opts.maxRequestAgeSec} s`);
    }
    for (const tag of ev.tags) {
      const problem = tagProblem(tag, nowSec);
      if (problem) return reject(`invalid: ${problem}`);
    }
    return ACCEPT;
  }
}

/** What is wrong with one tag of a job request, or null. */
function tagProblem(tag: unknown, nowSec: number): string | null {
  if (!Array.isArray(tag) || tag.length === 0 || !tag.every((v) => typeof v === "string")) return "every tag must be a non-empty array of strings";
  const t = tag as string[];
  switch (t[0]) {
    case "i": {
      if (t.length < 3 || t.length > 5) return `"i" tag must be ["i", data, type, relay?, marker?]`;
      const [, data, type] = t as [string, string, string];
      if (!INPUT_TYPES.has(type)) return `"i" tag input type must be url, event, job or text, got ${JSON.stringify(type.slice(0, 20))}`;
      if (data.length === 0) return `"i" tag data must not be empty`;
      if ((type === "event" || type === "job") && !HEX64.test(data)) return `"i" tag of type ${type} must carry a 64-hex event id`;
      return null;
    }
    case "bid":
      if (t.length < 2 || !DIGITS.test(t[1]!) || !Number.isSafeInteger(Number(t[1]))) return `"bid" tag must be whole millisats (digits only)`;
      return null;
    case "param":
      if (t.length < 3 || t[1]!.length === 0) return `"param" tag must be ["param", name, value, ...]`;
      return null;
    case "output":
      if (t.length < 2 || t[1]!.length === 0) return `"output" tag must name a MIME type`;
      return null;
    case "expiration": {
      if (t.length < 2 || !UNIX_SEC.test(t[1]!)) return `"expiration" tag must be a unix time in seconds`;
      if (Number(t[1]) <= nowSec) return "job request has expired (NIP-40)";
      return null;
    }
    default:
      return null;
  }
}
