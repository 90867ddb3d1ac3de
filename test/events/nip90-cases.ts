// One table of NIP-90 tag cases, run through both readers of job requests: the gate's
// checkJobRequest and the relay plugin's JobRequestPolicy (test/events/nip90-shared.test.ts).
// Each case is the standard request's tags with some replaced or added, signed by a
// customer and addressed to the gate (a `p` tag), at NOW_SEC. The two expectations
// must agree: a request the gate calls malformed is one the relay refuses with the same
// reason, and a request the gate serves is one the relay stores.
import { NOW_SEC, PRICE_MSATS } from "./fixtures.js";

export type GateExpect = { ok: true } | { answer: "ignore" } | { answer: "error"; abuse: boolean };
export type PluginExpect = "accept" | "reject";

export interface Nip90Case {
  name: string;
  /** Tags replacing the standard request's tags of the same names (added when new). */
  replace?: string[][];
  /** Tags added after the standard ones (a second tag of a name). */
  add?: string[][];
  /** Tag names removed from the standard request. */
  remove?: string[];
  gate: GateExpect;
  plugin: PluginExpect;
  /** The reason both give, when they refuse for a tag. */
  reason?: RegExp;
}

const MALFORMED = { answer: "error", abuse: true } as const;

export const NIP90_CASES: Nip90Case[] = [
  { name: "the standard request", gate: { ok: true }, plugin: "accept" },
  { name: "an i tag with a relay and a marker", replace: [["i", "a".repeat(64), "job", "wss://r.example", "marker"]], gate: { ok: true }, plugin: "accept" },
  {
    name: "an i tag of each type",
    replace: [["i", "https://x.example/a.mp3", "url"]],
    add: [
      ["i", "b".repeat(64), "event"],
      ["i", "c".repeat(64), "job"],
      ["i", "hi", "text"],
    ],
    gate: { ok: true },
    plugin: "accept",
  },
  { name: "a param tag with an empty value and extra elements", replace: [["param", "lang", "", "extra"]], gate: { ok: true }, plugin: "accept" },
  { name: "no bid at all", remove: ["bid"], gate: { ok: true }, plugin: "accept" },
  { name: "a bid equal to the price", replace: [["bid", String(PRICE_MSATS)]], gate: { ok: true }, plugin: "accept" },
  { name: "a bid at the largest amount (10^15 msats)", replace: [["bid", "1000000000000000"]], gate: { ok: true }, plugin: "accept" },
  { name: "an expiration ahead", replace: [["expiration", String(NOW_SEC + 60)]], gate: { ok: true }, plugin: "accept" },
  { name: "tags NIP-90 does not define, and an empty tag", add: [["t", "x"], ["client", "y"], []], gate: { ok: true }, plugin: "accept" },
  { name: "bad reply relays (dropped, not refused)", replace: [["relays", "https://not.ws", "wss://ok.example"]], gate: { ok: true }, plugin: "accept" },
  // An honest mistake: answered by the gate (it knows the price), stored by the relay.
  {
    name: "a bid below the price",
    replace: [["bid", String(PRICE_MSATS - 1)]],
    gate: { answer: "error", abuse: false },
    plugin: "accept",
    reason: /^bid below price/,
  },
  // Disagreement 1: two bids make the agreed price ambiguous. Both refuse.
  { name: "two bid tags", add: [["bid", "30000"]], gate: MALFORMED, plugin: "reject", reason: /^invalid: more than one bid tag$/ },
  // Disagreement 2: NIP-90 says the input type MUST be url, event, job or text. Both refuse.
  {
    name: "an i tag without a type",
    replace: [["i", "What is the capital of France?"]],
    gate: MALFORMED,
    plugin: "reject",
    reason: /^invalid: i tag needs a type/,
  },
  // Disagreement 3: a bid is an amount we can hold (≤ 10^15 msats), not any safe integer.
  {
    name: "a bid above 10^15 msats that is still a safe integer",
    replace: [["bid", "1000000000000001"]],
    gate: MALFORMED,
    plugin: "reject",
    reason: /^invalid: bid must be a whole number of millisats$/,
  },
  { name: "a bid of 16 nines", replace: [["bid", "9999999999999999"]], gate: MALFORMED, plugin: "reject", reason: /^invalid: bid must be a whole number/ },
  { name: "a non-numeric bid", replace: [["bid", "ten sats"]], gate: MALFORMED, plugin: "reject", reason: /^invalid: bid must be a whole number/ },
  { name: "a negative bid", replace: [["bid", "-20000"]], gate: MALFORMED, plugin: "reject", reason: /^invalid: bid must be a whole number/ },
  { name: "a fractional bid", replace: [["bid", "20000.5"]], gate: MALFORMED, plugin: "reject", reason: /^invalid: bid must be a whole number/ },
  { name: "a bid in exponent form", replace: [["bid", "2e4"]], gate: MALFORMED, plugin: "reject", reason: /^invalid: bid must be a whole number/ },
  { name: "an empty bid", replace: [["bid", ""]], gate: MALFORMED, plugin: "reject", reason: /^invalid: bid must be a whole number/ },
  { name: "an i tag without data", replace: [["i"]], gate: MALFORMED, plugin: "reject", reason: /^invalid: i tag needs data$/ },
  { name: "an i tag with empty data", replace: [["i", "", "text"]], gate: MALFORMED, plugin: "reject", reason: /^invalid: i tag needs data$/ },
  {
    name: "an i tag of an unknown type",
    replace: [["i", "x", "carrier-pigeon"]],
    gate: MALFORMED,
    plugin: "reject",
    reason: /^invalid: i tag type must be url, event, job or text, got "carrier-pigeon"$/,
  },
  {
    name: "an i tag of type event that is not an id",
    replace: [["i", "note1xyz", "event"]],
    gate: MALFORMED,
    plugin: "reject",
    reason: /^invalid: i tag of type event needs an event id$/,
  },
  {
    name: "an i tag of type job with an uppercase id",
    replace: [["i", "A".repeat(64), "job"]],
    gate: MALFORMED,
    plugin: "reject",
    reason: /^invalid: i tag of type job needs an event id$/,
  },
  {
    name: "an i tag longer than NIP-90's five elements",
    replace: [["i", "x", "text", "wss://r.example", "m", "extra"]],
    gate: MALFORMED,
    plugin: "reject",
    reason: /^invalid: i tag has more than/,
  },
  {
    name: "a param tag without a value",
    replace: [["param", "model"]],
    gate: MALFORMED,
    plugin: "reject",
    reason: /^invalid: param tag needs a key and a value$/,
  },
  {
    name: "a param tag with an empty key",
    replace: [["param", "", "v"]],
    gate: MALFORMED,
    plugin: "reject",
    reason: /^invalid: param tag needs a key and a value$/,
  },
  { name: "an output tag without a mime type", replace: [["output"]], gate: MALFORMED, plugin: "reject", reason: /^invalid: output tag needs a mime type$/ },
  {
    name: "an output tag with an empty mime type",
    replace: [["output", ""]],
    gate: MALFORMED,
    plugin: "reject",
    reason: /^invalid: output tag needs a mime type$/,
  },
  {
    name: "an expiration that is not a time",
    replace: [["expiration", "soon"]],
    gate: MALFORMED,
    plugin: "reject",
    reason: /^invalid: expiration tag is not a unix time$/,
  },
  {
    name: "an expiration in milliseconds",
    replace: [["expiration", String((NOW_SEC + 60) * 1000)]],
    gate: MALFORMED,
    plugin: "reject",
    reason: /^invalid: expiration tag is not a unix time$/,
  },
  // Neither serves an expired request: the gate stays silent, the relay refuses to store it.
  {
    name: "an expiration now (NIP-40)",
    replace: [["expiration", String(NOW_SEC)]],
    gate: { answer: "ignore" },
    plugin: "reject",
    reason: /expired \(NIP-40\)/,
  },
];
