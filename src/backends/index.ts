// Builds each configured kind's backend (jobs.kinds.K.backend) and the per-request
// price of kinds whose price depends on the job (openai's token pricing).
import type { Logger } from "pino";
import type { RuntimeConfig } from "../config/load.js";
import type { BackendConfig } from "../config/backend-schema.js";
import { ExecBackend } from "./exec.js";
import { HttpBackend } from "./http.js";
import { Nip90Backend } from "./nip90.js";
import { OpenAiBackend } from "./openai.js";
import type { Backend, KindBackend } from "./types.js";

export type { Backend, KindBackend } from "./types.js";

export interface BuiltBackends {
  backends: Map<number, KindBackend>;
  /** Null for kinds priced by their `priceSats` alone. */
  priceOf: (kind: number, iTags: string[][], params: string[][]) => number | null;
  close: () => Promise<void>;
}

interface BuildOptions {
  secretKey: Uint8Array;
  chargeUnitMsats: number;
  nowMs?: () => number;
  /** Where backends log what their peers do (nip90: upstream relays lost and back). */
  log?: Logger;
}

export function createBackends(cfg: RuntimeConfig, o: BuildOptions): BuiltBackends {
  const backends = new Map<number, KindBackend>();
  const openai = new Map<number, OpenAiBackend>();
  for (const [kind, b] of cfg.jobs.backends) {
    const backend = createBackend(b, cfg.jobs.priceMsatsByKind.get(kind) ?? 0, o);
    if (backend instanceof OpenAiBackend) openai.set(kind, backend);
    backends.set(kind, { backend, maxConcurrent: b.maxConcurrent, maxAttempts: b.maxAttempts });
  }
  return {
    backends,
    priceOf: (kind, iTags, params) => openai.get(kind)?.priceOf(iTags, params) ?? null,
    close: async () => {
      await Promise.allSettled([...backends.values()].map((k) => k.backend.close?.()));
    },
  };
}

function createBackend(b: BackendConfig, baseMsats: number, o: BuildOptions): Backend {
  switch (b.type) {
    case "http":
      return new HttpBackend(b.url);
    case "exec":
      return new ExecBackend(b.command);
    case "nip90":
      return new Nip90Backend({
        relays: b.relays,
        pubkey: b.pubkey,
        secretKey: o.secretKey,
        ...(o.nowMs ? { nowMs: o.nowMs } : {}),
        ...(o.log ? { log: o.log.child({ backend: "nip90", upstream: b.pubkey.slice(0, 16) }) } : {}),
      });
    case "openai":
      return new OpenAiBackend({
        baseUrl: b.baseUrl,
        model: b.model,
        apiKey: b.apiKey,
        pricing: {
          baseMsats,
          inputMsatsPerToken: b.inputMsatsPerToken,
          outputMsatsPerToken: b.outputMsatsPerToken,
          maxOutputTokens: b.maxOutputTokens,
          unitMsats: o.chargeUnitMsats,
        },
      });
  }
}
