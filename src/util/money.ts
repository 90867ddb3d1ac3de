// Integer millisats everywhere inside. These helpers are the only unit conversions,
// and they refuse (never round or clamp) anything that is not an exact amount.

/** 1,000,000,000,000 sats = 10,000 BTC: far above any price or budget, and ×1000 stays a safe integer. */
export const MAX_SATS = 1_000_000_000_000;
export const MAX_MSATS = MAX_SATS * 1000;

export class AmountError extends Error {
  override name = "AmountError";
}

export function isMsats(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0 && v <= MAX_MSATS;
}

export function assertMsats(v: unknown, what: string): number {
  if (!isMsats(v)) throw new AmountError(`${what}: expected whole millisats from 0 to ${MAX_MSATS}, got ${describe(v)}`);
  return v;
}

export function satsToMsats(sats: number): number {
  if (!Number.isSafeInteger(sats) || sats < 0 || sats > MAX_SATS) throw new AmountError(`expected whole sats from 0 to ${MAX_SATS}, got ${describe(sats)}`);
  return sats * 1000;
}

/** Parses a human/CLI amount in sats: digits only, no sign, no fraction, no exponent. */
export function parseSatsText(text: string, what = "amount"): number {
  const t = text.trim();
  if (!/^\d{1,13}$/.test(t)) throw new AmountError(`${what}: expected a whole number of sats, got ${JSON.stringify(text.slice(0, 40))}`);
  return satsToMsats(Number(t));
}

/**
 * A wire amount in msats (NIP-90 `amount`/`bid`, our own tags): digits only, no sign,
 * fraction, exponent or space, and a whole amount we can hold (≤ MAX_MSATS). Anything
 * else is null: the one reading of a msats string for the gate, the plugin and the peers.
 */
export function parseWireMsats(text: string | undefined): number | null {
  if (text === undefined || !/^\d{1,16}$/.test(text)) return null;
  const v = Number(text);
  return isMsats(v) ? v : null;
}

/** floor(amount × pct / 100) without floating point. */
export function percentOfMsats(amountMsats: number, pct: number): number {
  assertMsats(amountMsats, "amount");
  if (!Number.isSafeInteger(pct) || pct < 0 || pct > 100) throw new AmountError(`percentage must be a whole number 0–100, got ${describe(pct)}`);
  const product = BigInt(amountMsats) * BigInt(pct);
  return Number(product / 100n);
}

export function formatSats(msats: number): string {
  const sats = Math.trunc(msats / 1000);
  const rest = msats % 1000;
  return rest === 0 ? `${sats} ${sats === 1 ? "sat" : "sats"}` : `${sats}.${String(rest).padStart(3, "0")} sats`;
}

function describe(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v.slice(0, 40));
  return String(v);
}
