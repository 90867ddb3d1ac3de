// NIP-98 HTTP auth: who is calling, proven by a kind 27235 event signed for exactly
// this URL and method, moments ago. nostr-tools does the unpacking and the tag checks;
// the clock is ours (nostr-tools' own timestamp check reads the wall clock, and the
// server takes `nowMs` as a parameter like everything else that decides).
import { HTTPAuth } from "nostr-tools/kinds";
import { verifyEvent, type Event } from "nostr-tools/pure";
import { unpackEventFromToken, validateEventKind, validateEventMethodTag, validateEventUrlTag } from "nostr-tools/nip98";

export const HTTP_AUTH_KIND = HTTPAuth;
/** How far `created_at` may be from our clock, either way. */
export const NIP98_MAX_SKEW_SEC = 60;
/** A signed kind 27235 event with a long URL fits easily; anything bigger is not one. */
export const MAX_AUTHORIZATION_CHARS = 8192;

export type Nip98Result = { ok: true; pubkey: string; event: Event } | { ok: false; reason: string };

const SCHEME = /^Nostr\s+(\S+)\s*$/i;

/**
 * Checks an `Authorization` header against the URL and method the request was made
 * to. Every failure is a value with a reason meant for the caller; nothing throws.
 */
export async function checkNip98(header: string | undefined, expected: { url: string; method: string; nowMs: number }): Promise<Nip98Result> {
  if (header === undefined || header === "") return fail("missing Authorization header: expected `Nostr <base64 of a signed kind 27235 event>`");
  if (header.length > MAX_AUTHORIZATION_CHARS) return fail(`Authorization header longer than ${MAX_AUTHORIZATION_CHARS} characters`);
  const token = SCHEME.exec(header)?.[1];
  if (!token) return fail("Authorization scheme must be `Nostr` followed by one base64 token");

  let event: Event;
  try {
    event = await unpackEventFromToken(token);
  } catch {
    return fail("Authorization token is not base64 of a JSON Nostr event");
  }
  // Each check below sees an event whose fields have the right types only once the
  // signature check (which hashes a strict serialisation) passed.
  if (!safe(() => verifyEvent(event))) return fail("event id or signature is invalid");
  if (!validateEventKind(event)) return fail(`event kind must be ${HTTP_AUTH_KIND}`);
  const nowSec = Math.floor(expected.nowMs / 1000);
  if (Math.abs(nowSec - event.created_at) > NIP98_MAX_SKEW_SEC)
    return fail(`event created_at must be within ${NIP98_MAX_SKEW_SEC} s of the server's clock (${nowSec})`);
  if (!safe(() => validateEventUrlTag(event, expected.url))) return fail(`event u tag must be exactly ${expected.url}`);
  if (!safe(() => validateEventMethodTag(event, expected.method))) return fail(`event method tag must be ${expected.method}`);
  return { ok: true, pubkey: event.pubkey, event };
}

function fail(reason: string): Nip98Result {
  return { ok: false, reason };
}

/** nostr-tools' validators throw on some malformed tags (e.g. `["method"]`): that is a no. */
function safe(check: () => boolean): boolean {
  try {
    return check() === true;
  } catch {
    return false;
  }
}
