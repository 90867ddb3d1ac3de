// `openai` backend (SPEC §11): an OpenAI-compatible POST {baseUrl}/chat/completions
// (Ollama, llama.cpp's server, vLLM, hosted APIs) for text jobs. The text inputs are the
// user message; `param max_tokens` and `temperature` pass through, capped by the
// config; the answer's `usage` prices the job (src/policy/token-pricing.ts).
import { textOfInputs } from "../events/job-result.js";
import { effectiveMaxTokens, usageCostMsats, upperEstimateMsats, type TokenPricing } from "../policy/token-pricing.js";
import { abortReason, shortReason, type Backend, type BackendJob, type BackendResult, type RunOptions } from "./types.js";
import { decodeUtf8, jsonBodyCap, readCapped } from "./read-capped.js";
import { causeOf } from "./http.js";

export interface OpenAiSettings {
  baseUrl: string;
  model: string;
  apiKey: string | null;
  pricing: TokenPricing;
}

const MAX_TEMPERATURE = 2;

export class OpenAiBackend implements Backend {
  readonly type = "openai";
  constructor(private readonly s: OpenAiSettings) {}

  /** The decision's price for this request: the upper estimate of SPEC §11. */
  priceOf(iTags: string[][], params: string[][]): number {
    const prompt = textOfInputs(iTags);
    const maxTokens = effectiveMaxTokens(this.s.pricing, params.find((p) => p[1] === "max_tokens")?.[2]);
    return upperEstimateMsats(this.s.pricing, Buffer.byteLength(prompt, "utf8"), maxTokens);
  }

  async run(job: BackendJob, opts: RunOptions): Promise<BackendResult> {
    const prompt = textOfInputs(job.inputs.map((i) => ["i", ...i]));
    const body: Record<string, unknown> = {
      model: this.s.model,
      messages: [{ role: "user", content: prompt }],
      max_tokens: effectiveMaxTokens(this.s.pricing, job.params.max_tokens),
      stream: false,
    };
    const t = job.params.temperature;
    if (t !== undefined && /^\d+(\.\d+)?$/.test(t)) body.temperature = Math.min(Number(t), MAX_TEMPERATURE);
    let res: Response;
    try {
      res = await fetch(`${this.s.baseUrl}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(this.s.apiKey ? { authorization: `Bearer ${this.s.apiKey}` } : {}) },
        body: JSON.stringify(body),
        signal: opts.signal,
        redirect: "error",
      });
    } catch (err) {
      if (opts.signal.aborted) return { ok: false, reason: abortReason(opts.signal) };
      return { ok: false, reason: shortReason("openai: cannot reach the server", causeOf(err)) };
    }
    let raw: { bytes: Buffer; tooLarge: boolean };
    try {
      raw = await readCapped(res.body, jsonBodyCap(opts.maxResultBytes));
    } catch (err) {
      if (opts.signal.aborted) return { ok: false, reason: abortReason(opts.signal) };
      return { ok: false, reason: shortReason("openai: the answer broke off", causeOf(err)) };
    }
    if (raw.tooLarge) return { ok: false, reason: `result too large: the answer is over the ${opts.maxResultBytes}-byte limit` };
    const text = decodeUtf8(raw.bytes) ?? "";
    let v: unknown = null;
    try {
      v = JSON.parse(text);
    } catch {
      /* judged below */
    }
    if (res.status !== 200) {
      const message = (v as { error?: { message?: unknown } } | null)?.error?.message;
      return { ok: false, reason: shortReason(`openai: HTTP ${res.status}`, typeof message === "string" ? message : text) };
    }
    const a = v as { choices?: { message?: { content?: unknown } }[]; usage?: { prompt_tokens?: unknown; completion_tokens?: unknown } } | null;
    const content = a?.choices?.[0]?.message?.content;
    if (typeof content !== "string") return { ok: false, reason: shortReason("openai: the answer has no choices[0].message.content", text) };
    const p = a?.usage?.prompt_tokens;
    const c = a?.usage?.completion_tokens;
    // Without usage the job settles at its reservation (the upper estimate), never more.
    if (!isCount(p) || !isCount(c)) return { ok: true, content };
    return { ok: true, content, costMsats: usageCostMsats(this.s.pricing, { promptTokens: p, completionTokens: c }) };
  }
}

function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0 && v <= 100_000_000;
}
