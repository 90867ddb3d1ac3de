// Small output helpers shared by commands.
import { pubkeyToHex } from "../config/load.js";
import { formatSats, MAX_SATS, satsToMsats } from "../util/money.js";
import { UsageError } from "./context.js";
import { HEX64 } from "../util/hex.js";

export function printJson(out: (t: string) => void, value: unknown): void {
  out(JSON.stringify(value, null, 2));
}

export function msatsLine(label: string, msats: number): string {
  return `${label.padEnd(10)} ${String(msats).padStart(16)} msats  (${formatSats(msats)})`;
}

/** A pubkey argument: npub or hex, one clear line when it is neither. */
export function pubkeyArg(text: string | undefined, what = "PUBKEY"): string {
  if (!text) throw new UsageError(`missing ${what} (npub or 64 hex characters)`);
  if (text.trim().startsWith("nsec1")) throw new UsageError(`${what}: that is a secret key (nsec), not a pubkey; value not shown. Keep it secret.`);
  try {
    return pubkeyToHex(text);
  } catch {
    throw new UsageError(`${what}: not a pubkey (expected an npub or 64 hex characters): ${JSON.stringify(text.slice(0, 80))}`);
  }
}

export function requestIdArg(text: string | undefined): string {
  if (!text) throw new UsageError("missing REQUEST_ID (64 hex characters, the job request's event id)");
  const t = text.trim().toLowerCase();
  if (!HEX64.test(t)) throw new UsageError(`REQUEST_ID: expected the request event id, 64 hex characters: ${JSON.stringify(text.slice(0, 80))}`);
  return t;
}

export function noExtraArgs(positionals: string[], expected: number, usage: string): void {
  if (positionals.length > expected) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[expected])}; usage: ${usage}`);
}

/**
 * The one way a CLI number is refused: `WHAT: expected a whole number from MIN to MAX, got "X"`,
 * the same for a sign, a fraction, letters or a number too large.
 */
export function wholeNumberArg(text: string, what: string, min: number, max: number, unit = ""): number {
  const t = text.trim();
  const n = /^\d{1,16}$/.test(t) ? Number(t) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw new UsageError(`${what}: expected a whole number${unit ? ` of ${unit}` : ""} from ${min} to ${max}, got ${JSON.stringify(text.slice(0, 40))}`);
  return n;
}

/** Whole sats from `minSats` to MAX_SATS, returned as msats. */
export function satsArg(text: string, what: string, minSats = 0): number {
  return satsToMsats(wholeNumberArg(text, what, minSats, MAX_SATS, "sats"));
}

/** "1 reply", "2 replies": counts in messages read as English. */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** Free text with a limit is refused when longer, never cut (the operator would not know). */
export function textArg(text: string, what: string, maxChars: number): string {
  const chars = [...text].length;
  if (chars > maxChars) throw new UsageError(`${what} is ${chars} characters long; at most ${maxChars} are kept, nothing changed`);
  return text;
}
