// `http` backend (SPEC §11): POST the job as JSON; a 200 answer {"content": string,
// "costMsats"?: integer} is the result, anything else a failure whose reason carries the
// first 200 characters of what came back.
import { isMsats } from "../util/money.js";
import { abortReason, jobPayload, shortReason, type Backend, type BackendJob, type BackendResult, type RunOptions } from "./types.js";
import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { decodeUtf8, jsonBodyCap } from "./read-capped.js";

// node:http rather than fetch: undici's fetch cost about 0.8 ms of gate CPU per job in
// the backend bench, a plain request with a keep-alive agent a fraction of it.
export class HttpBackend implements Backend {
  readonly type = "http";
  private readonly target: URL;
  private readonly agent: HttpAgent | HttpsAgent;

  constructor(url: string) {
    this.target = new URL(url);
    this.agent = this.target.protocol === "https:" ? new HttpsAgent({ keepAlive: true, maxSockets: 64 }) : new HttpAgent({ keepAlive: true, maxSockets: 64 });
  }

  run(job: BackendJob, opts: RunOptions): Promise<BackendResult> {
    const body = Buffer.from(JSON.stringify(jobPayload(job)), "utf8");
    const send = this.target.protocol === "https:" ? httpsRequest : httpRequest;
    return new Promise((resolve) => {
      let done = false;
      const finish = (r: BackendResult) => {
        if (!done) {
          done = true;
          resolve(r);
        }
      };
      const req = send(
        this.target,
        {
          method: "POST",
          agent: this.agent,
          headers: { "content-type": "application/json", accept: "application/json", "content-length": body.byteLength },
          signal: opts.signal,
        },
        (res) => {
          const cap = jsonBodyCap(opts.maxResultBytes);
          const parts: Buffer[] = [];
          let total = 0;
          res.on("data", (d: Buffer) => {
            total += d.byteLength;
            if (total > cap) {
              finish({ ok: false, reason: `result too large: the answer is over the ${opts.maxResultBytes}-byte limit` });
              res.destroy();
            } else parts.push(d);
          });
          res.on("end", () => finish(judge(res.statusCode ?? 0, Buffer.concat(parts), "http")));
          // After "end" this changes nothing; before it, the answer was cut (or we aborted).
          res.on("close", () =>
            finish(opts.signal.aborted ? { ok: false, reason: abortReason(opts.signal) } : { ok: false, reason: "http: the answer broke off" }),
          );
          res.on("error", (err) =>
            finish(
              opts.signal.aborted
                ? { ok: false, reason: abortReason(opts.signal) }
                : { ok: false, reason: shortReason("http: the answer broke off", causeOf(err)) },
            ),
          );
        },
      );
      req.on("error", (err) => {
        if (opts.signal.aborted) finish({ ok: false, reason: abortReason(opts.signal) });
        else finish({ ok: false, reason: shortReason("http: cannot reach the backend", causeOf(err)) });
      });
      req.end(body);
    });
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }
}

/** SPEC §11: a 200 {"content": string, "costMsats"?: integer} is the result, anything else a failure. */
function judge(status: number, bytes: Buffer, name: string): BackendResult {
  const text = decodeUtf8(bytes) ?? "";
  if (status !== 200) return { ok: false, reason: shortReason(`${name}: HTTP ${status}`, text) };
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
