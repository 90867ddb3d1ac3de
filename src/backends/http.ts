// `http` backend (SPEC §11): POST the job as JSON; a 200 answer {"content": string,
// "costMsats"?: integer} is the result, anything else a failure whose reason carries the
// first 200 characters of what came back.
import { isMsats } from "../util/money.js";
import { abortReason, jobPayload, shortReason, type Backend, type BackendJob, type BackendResult, type RunOptions } from "./types.js";
import { decodeUtf8, jsonBodyCap, readCapped } from "./read-capped.js";

export class HttpBackend implements Backend {
  readonly type = "http";
  constructor(private readonly url: string) {}

  async run(job: BackendJob, opts: RunOptions): Promise<BackendResult> {
    let res: Response;
    try {
      res = await fetch(this.url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify(jobPayload(job)),
        signal: opts.signal,
        redirect: "error",
      });
    } catch (err) {
      if (opts.signal.aborted) return { ok: false, reason: abortReason(opts.signal) };
      return { ok: false, reason: shortReason("http: cannot reach the backend", causeOf(err)) };
    }
    return readAnswer(res, opts, "http");
  }
}

async function readAnswer(res: Response, opts: RunOptions, name: string): Promise<BackendResult> {
  let body: { bytes: Buffer; tooLarge: boolean };
  try {
    body = await readCapped(res.body, jsonBodyCap(opts.maxResultBytes));
  } catch (err) {
    if (opts.signal.aborted) return { ok: false, reason: abortReason(opts.signal) };
    return { ok: false, reason: shortReason(`${name}: the answer broke off`, causeOf(err)) };
  }
  if (body.tooLarge) return { ok: false, reason: `result too large: the answer is over the ${opts.maxResultBytes}-byte limit` };
  const text = decodeUtf8(body.bytes) ?? "";
  if (res.status !== 200) return { ok: false, reason: shortReason(`${name}: HTTP ${res.status}`, text) };
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { ok: false, reason: shortReason(`${name}: the answer is not JSON`, text) };
  }
  const o = v as { content?: unknown; costMsats?: unknown } | null;
  if (typeof o !== "object" || o === null || typeof o.content !== "string")
    return { ok: false, reason: shortReason(`${name}: the answer has no "content" string`, text) };
  if (o.costMsats !== undefined && o.costMsats !== null && !isMsats(o.costMsats))
    return { ok: false, reason: `${name}: "costMsats" is not a whole number of millisats` };
  return typeof o.costMsats === "number" ? { ok: true, content: o.content, costMsats: o.costMsats } : { ok: true, content: o.content };
}

export function causeOf(err: unknown): string {
  const e = err as { cause?: { code?: string; message?: string }; message?: string };
  return e?.cause?.code ?? e?.cause?.message ?? e?.message ?? String(err);
}
