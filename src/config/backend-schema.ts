// `jobs.kinds.K.backend` (SPEC §11): where the gate itself runs an approved job. One
// zod object per backend type, told apart by `type`; the keys are the SPEC's.
import { z } from "zod";

const hex64 = /^[0-9a-f]{64}$/;
const pubkeyText = z.string().refine((s) => hex64.test(s) || /^npub1[02-9ac-hj-np-z]{58}$/.test(s), "must be a 64-char hex pubkey or an npub");
const relayUrl = z.string().regex(/^wss?:\/\/[^\s]+$/, "must be a ws:// or wss:// URL");
const httpUrl = z.string().regex(/^https?:\/\/[^\s]+$/, "must be an http:// or https:// URL");
const satsPer1k = z.number().int("must be a whole number of sats").min(0).max(1_000_000);

// Shared by every type: how many jobs of the kind run at once, and how often a job
// that was running when the gate stopped is started again (in all).
const common = {
  maxConcurrent: z.number().int().min(1).max(256).default(4),
  maxAttempts: z.number().int().min(1).max(10).default(2),
};

export const backendSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("nip90"), relays: z.array(relayUrl).min(1, "needs at least one relay"), pubkey: pubkeyText, ...common }).strict(),
  z.object({ type: z.literal("http"), url: httpUrl, ...common }).strict(),
  z.object({ type: z.literal("exec"), command: z.array(z.string().min(1)).min(1, "needs the program to run"), ...common }).strict(),
  z
    .object({
      type: z.literal("openai"),
      baseUrl: httpUrl,
      model: z.string().min(1),
      apiKey: z.string().min(1).optional(),
      maxOutputTokens: z.number().int().min(1).max(1_000_000).default(512),
      inputSatsPer1kTokens: satsPer1k.default(0),
      outputSatsPer1kTokens: satsPer1k.default(0),
      ...common,
    })
    .strict(),
]);

export type BackendConfigFile = z.output<typeof backendSchema>;

/** A backend's settings as the rest of the code sees them: pubkeys hex, secrets resolved, sats as msats. */
export type BackendConfig = { maxConcurrent: number; maxAttempts: number } & (
  | { type: "nip90"; relays: string[]; pubkey: string }
  | { type: "http"; url: string }
  | { type: "exec"; command: string[] }
  | {
      type: "openai";
      baseUrl: string;
      model: string;
      apiKey: string | null;
      maxOutputTokens: number;
      /** A sat per 1k tokens is a msat per token. */
      inputMsatsPerToken: number;
      outputMsatsPerToken: number;
    }
);

export function toBackendConfig(
  b: BackendConfigFile,
  field: string,
  helpers: { pubkeyToHex: (s: string) => string; secret: (field: string, ref: string) => string },
): BackendConfig {
  const base = { maxConcurrent: b.maxConcurrent, maxAttempts: b.maxAttempts };
  switch (b.type) {
    case "nip90":
      return { ...base, type: "nip90", relays: [...new Set(b.relays)], pubkey: helpers.pubkeyToHex(b.pubkey) };
    case "http":
      return { ...base, type: "http", url: b.url };
    case "exec":
      return { ...base, type: "exec", command: b.command };
    case "openai":
      return {
        ...base,
        type: "openai",
        baseUrl: b.baseUrl.replace(/\/+$/, ""),
        model: b.model,
        apiKey: b.apiKey ? helpers.secret(`${field}.apiKey`, b.apiKey) : null,
        maxOutputTokens: b.maxOutputTokens,
        inputMsatsPerToken: b.inputSatsPer1kTokens,
        outputMsatsPerToken: b.outputSatsPer1kTokens,
      };
  }
}
