// jobs.kinds.K.backend and its neighbours (SPEC §11) as the config loader reads them,
// and the openai token price as a pure function.
import { describe, expect, it } from "vitest";
import { nip19 } from "nostr-tools";
import { parseConfig } from "../../src/config/load.js";
import { upperEstimateMsats, usageCostMsats, effectiveMaxTokens, PROMPT_OVERHEAD_TOKENS } from "../../src/policy/token-pricing.js";

const parse = (kinds: Record<string, unknown>, env: Record<string, string> = {}) => parseConfig({ jobs: { kinds } }, { env });

describe("backend config", () => {
  it("reads each type with its defaults, pubkeys as hex and secrets resolved", () => {
    const pk = "ab".repeat(32);
    const cfg = parse(
      {
        "5050": { priceSats: 1, backend: { type: "nip90", relays: ["wss://a.example", "wss://a.example"], pubkey: nip19.npubEncode(pk) } },
        "5051": { priceSats: 1, backend: { type: "openai", baseUrl: "http://127.0.0.1:11434/v1/", model: "m", apiKey: "env:KEY", inputSatsPer1kTokens: 2 } },
        "5052": { priceSats: 1 },
      },
      { KEY: "sk-test" },
    );
    expect(cfg.jobs.backends.get(5050)).toEqual({ type: "nip90", relays: ["wss://a.example"], pubkey: pk, maxConcurrent: 4, maxAttempts: 2 });
    expect(cfg.jobs.backends.get(5051)).toMatchObject({
      baseUrl: "http://127.0.0.1:11434/v1",
      apiKey: "sk-test",
      maxOutputTokens: 512,
      inputMsatsPerToken: 2,
      outputMsatsPerToken: 0,
    });
    expect(cfg.jobs.backends.has(5052)).toBe(false);
    expect(cfg.jobs.maxResultBytes).toBe(65_536);
    expect(cfg.nostr.heartbeatSec).toBe(300);
  });

  it("names the field and what was expected", () => {
    const bad = (backend: unknown) => () => parse({ "5050": { priceSats: 1, backend } });
    expect(bad({ type: "grpc" })).toThrow(/jobs\.kinds\.5050\.backend\.type: .*'nip90' \| 'http' \| 'exec' \| 'openai'/);
    expect(bad({ type: "exec", command: [] })).toThrow(/jobs\.kinds\.5050\.backend\.command: needs the program to run/);
    expect(bad({ type: "http", url: "ftp://x" })).toThrow(/jobs\.kinds\.5050\.backend\.url: must be an http/);
    expect(bad({ type: "http", url: "http://x", maxConcurrent: 0 })).toThrow(/maxConcurrent/);
    expect(bad({ type: "openai", baseUrl: "http://x", model: "m", apiKey: "env:MISSING" })).toThrow(/apiKey: environment variable MISSING is not set/);
  });
});

describe("openai token price", () => {
  const p = { baseMsats: 1000, inputMsatsPerToken: 1, outputMsatsPerToken: 3, maxOutputTokens: 100, unitMsats: 1 };

  it("reserves base + input bytes (plus template overhead) + capped max_tokens, and settles from usage", () => {
    expect(effectiveMaxTokens(p, "5000")).toBe(100);
    expect(effectiveMaxTokens(p, "20")).toBe(20);
    expect(effectiveMaxTokens(p, "lots")).toBe(100);
    expect(upperEstimateMsats(p, 10, 100)).toBe(1000 + 10 + PROMPT_OVERHEAD_TOKENS + 300);
    expect(usageCostMsats(p, { promptTokens: 7, completionTokens: 9 })).toBe(1000 + 7 + 27);
  });

  it("rounds up to the payment backend's billing unit", () => {
    expect(upperEstimateMsats({ ...p, unitMsats: 1000 }, 10, 100)).toBe(2000);
    expect(usageCostMsats({ ...p, unitMsats: 1000 }, { promptTokens: 0, completionTokens: 0 })).toBe(1000);
  });
});
