// Job requests for the gate's own kinds must be well-formed NIP-90 before a relay
// stores them: bounded size, fresh, not expired, tags in the shapes the gate reads.
// Other kinds, including other DVMs' job kinds, are not this policy's business.
// The tag rules are the gate's own (src/events/nip90-tags.ts), so the relay stores
// exactly the requests the gate will not call malformed.
import { ACCEPT, isLiveSource, reject, type Policy, type PolicyInput, type PolicyResult } from "../policy.js";
import { expirationSec, readJobTags } from "../../src/events/nip90-tags.js";
import { isStringArray } from "../../src/events/verify.js";

export interface JobRequestPolicyOptions {
  /** The gate's job kinds (the keys of `jobs.kinds`). */
  kinds: ReadonlySet<number>;
  maxRequestBytes: number;
  maxRequestAgeSec: number;
  /** How far ahead of our clock `created_at` may be (SPEC §4: 60 s). */
  maxFutureSec?: number;
}

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
      if (bytes > this.opts.maxRequestBytes) return reject(`invalid: job request is ${bytes} bytes, over this relay's limit of ${this.opts.maxRequestBytes}`);
    }
    if (!Array.isArray(ev.tags)) return reject("invalid: tags must be an array");

    const nowSec = Math.floor(input.nowMs / 1000);
    // Freshness is a live client's concern; events copied in by sync or import are history.
    if (isLiveSource(input.sourceType)) {
      if (typeof ev.created_at !== "number" || !Number.isInteger(ev.created_at)) return reject("invalid: created_at must be a whole number of seconds");
      if (ev.created_at > nowSec + this.maxFutureSec) return reject(`invalid: created_at is more than ${this.maxFutureSec} s in the future`);
      if (ev.created_at < nowSec - this.opts.maxRequestAgeSec) return reject(`invalid: job request is older than ${this.opts.maxRequestAgeSec} s`);
    }
    if (!ev.tags.every(isStringArray)) return reject("invalid: tags must be arrays of strings");
    const read = readJobTags(ev.tags);
    if ("problem" in read) return reject(read.problem);
    const expiresAtSec = expirationSec(ev.tags.find((t) => t[0] === "expiration"));
    if (expiresAtSec !== null && expiresAtSec <= nowSec) return reject("invalid: job request has expired (NIP-40)");
    return ACCEPT;
  }
}
