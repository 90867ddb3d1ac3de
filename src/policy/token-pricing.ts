// SPEC §11 token pricing for `openai` backends, in msats (a sat per 1k tokens is a msat
// per token). The decision reserves and charges an upper estimate; the model's `usage`
// gives the cost that settles it. Pure: no I/O, no clock.
import { assertMsats } from "../util/money.js";

export interface TokenPricing {
  /** The kind's `priceSats`, as msats: the fixed part of every job. */
  baseMsats: number;
  inputMsatsPerToken: number;
  outputMsatsPerToken: number;
  maxOutputTokens: number;
  /** The payment backend's billing unit (1 msat; 1000 for LNbits). */
  unitMsats: number;
}

/**
 * Chat templates add role markers around the user's text; no template in use adds more
 * than this many tokens to one message.
 */
export const PROMPT_OVERHEAD_TOKENS = 32;

/**
 * An upper estimate of the prompt's tokens: byte-level BPE and byte-fallback tokenizers
 * never make more tokens than the text has UTF-8 bytes.
 */
export function inputTokensUpperEstimate(promptBytes: number): number {
  return promptBytes + PROMPT_OVERHEAD_TOKENS;
}

/** The `max_tokens` sent: the customer's `param max_tokens`, capped by the config. */
export function effectiveMaxTokens(p: TokenPricing, requested: string | undefined): number {
  const n = requested !== undefined && /^\d{1,9}$/.test(requested) ? Number(requested) : p.maxOutputTokens;
  return Math.max(1, Math.min(n, p.maxOutputTokens));
}

export function upperEstimateMsats(p: TokenPricing, promptBytes: number, maxTokens: number): number {
  return ceilToUnit(p.baseMsats + p.inputMsatsPerToken * inputTokensUpperEstimate(promptBytes) + p.outputMsatsPerToken * maxTokens, p.unitMsats);
}

export function usageCostMsats(p: TokenPricing, usage: { promptTokens: number; completionTokens: number }): number {
  return ceilToUnit(p.baseMsats + p.inputMsatsPerToken * usage.promptTokens + p.outputMsatsPerToken * usage.completionTokens, p.unitMsats);
}

/** Rounds up to a whole number of billing units; refuses a sum that is not exact msats. */
function ceilToUnit(msats: number, unitMsats: number): number {
  assertMsats(msats, "token price");
  const unit = Math.max(1, unitMsats);
  return assertMsats(Math.ceil(msats / unit) * unit, "token price");
}
