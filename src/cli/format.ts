// Small output helpers shared by commands.
import { pubkeyToHex } from "../config/load.js";
import { formatSats } from "../util/money.js";
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
