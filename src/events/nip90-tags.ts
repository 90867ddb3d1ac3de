// The NIP-90 job-request tags, read one way for everyone: the gate (checkJobRequest,
// over cleartext and decrypted tags) and the relay plugin (JobRequestPolicy, over the
// cleartext tags a relay sees) call this same reader, so a request the relay stores is
// never one the gate calls malformed, and the other way round. The rules and the
// reasons are listed in docs/EVENTS.md ("Job request"); both callers run one shared
// table of cases (test/events/nip90-cases.ts).
import { parseWireMsats } from "../util/money.js";
import { HEX64 } from "../util/hex.js";

export const I_TAG_TYPES: ReadonlySet<string> = new Set(["url", "event", "job", "text"]);
/** Reply relays kept from a request's `relays` tags; the rest are dropped. */
export const MAX_REPLY_RELAYS = 10;
/**
 * URLs looked at, across all `relays` tags: parsing is the costly part of reading tags,
 * and the plugin reads them on the relay's single writer thread, before any rate limit.
 */
export const MAX_RELAY_URLS_READ = 2 * MAX_REPLY_RELAYS;
/** NIP-40 times: seconds, never milliseconds (13 digits is a clock in ms, not a date). */
const UNIX_SEC = /^\d{1,12}$/;

export interface JobTags {
  inputs: string[][];
  params: string[][];
  output: string | null;
  bidMsats: number | null;
  replyRelays: string[];
}

/**
 * Reads a request's tags (all strings: the caller checks that first). The first
 * malformed tag wins and comes back as a NIP-01 `invalid:` reason; tags NIP-90 does
 * not define are kept out of the result and never refused.
 */
export function readJobTags(tags: readonly string[][]): JobTags | { problem: string } {
  const out: JobTags = { inputs: [], params: [], output: null, bidMsats: null, replyRelays: [] };
  let bids = 0;
  let urlsRead = 0;
  for (const t of tags) {
    const problem = jobTagProblem(t);
    if (problem) return { problem: `invalid: ${problem}` };
    const [name, a] = t;
    if (name === "i") out.inputs.push(t);
    else if (name === "param") out.params.push(t);
    else if (name === "output") out.output ??= a!;
    else if (name === "bid") {
      // Two bids leave the price the customer agreed to open to reading: refused.
      if (++bids > 1) return { problem: "invalid: more than one bid tag" };
      out.bidMsats = parseWireMsats(a);
    } else if (name === "relays") {
      for (let i = 1; i < t.length && urlsRead < MAX_RELAY_URLS_READ && out.replyRelays.length < MAX_REPLY_RELAYS; i++, urlsRead++) {
        const url = t[i]!;
        if (isRelayUrl(url) && !out.replyRelays.includes(url)) out.replyRelays.push(url);
      }
    }
  }
  return out;
}

/** What NIP-90 forbids in one tag, or null. */
export function jobTagProblem(t: readonly string[]): string | null {
  const [name, a, b] = t;
  switch (name) {
    case "i":
      return iTagProblem(t);
    case "param":
      return !a || b === undefined ? "param tag needs a key and a value" : null;
    case "output":
      return !a ? "output tag needs a mime type" : null;
    case "bid":
      return parseWireMsats(a) === null ? "bid must be a whole number of millisats" : null;
    case "expiration":
      return expirationSec(t) === null ? "expiration tag is not a unix time" : null;
    default:
      return null;
  }
}

/** NIP-90: `["i", data, type, relay?, marker?]`, where type MUST be url, event, job or text. */
function iTagProblem(t: readonly string[]): string | null {
  const [, data, type] = t;
  if (!data) return "i tag needs data";
  if (type === undefined) return "i tag needs a type: url, event, job or text";
  if (!I_TAG_TYPES.has(type)) return `i tag type must be url, event, job or text, got ${JSON.stringify(type.slice(0, 20))}`;
  if ((type === "event" || type === "job") && !HEX64.test(data)) return `i tag of type ${type} needs an event id`;
  if (t.length > 5) return "i tag has more than data, type, relay and marker";
  return null;
}

/** A well-formed NIP-40 `expiration` tag's time, else null. */
export function expirationSec(t: readonly string[] | undefined): number | null {
  const v = t?.[1];
  return v !== undefined && UNIX_SEC.test(v) ? Number(v) : null;
}

/** ws:// or wss:// only: replies go nowhere else, and these strings reach our relay pool. */
export function isRelayUrl(url: string): boolean {
  if (url.length > 256) return false;
  try {
    const u = new URL(url);
    return (u.protocol === "ws:" || u.protocol === "wss:") && u.hostname !== "";
  } catch {
    return false;
  }
}
