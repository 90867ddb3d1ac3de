// SPEC §4: a request over jobs.maxRequestBytes is answered `invalid: request too large`,
// a forged one is ignored, whatever the size. The wasm verifier (in use once the service
// starts) hashes in a fixed heap and used to call valid events above ~0.9 MB forged, so a
// 1 MB request was dropped as "bad id or signature" instead of being answered.
import { beforeAll, describe, expect, it } from "vitest";
import type { Event } from "nostr-tools/pure";
import { checkJobRequest } from "../../src/events/job-request.js";
import { activeVerifier, initFastVerify, verifyEventWith, verifySignedEvent } from "../../src/events/verify.js";
import { context, flipHex, keys, requestTemplate, sign } from "./fixtures.js";

const gate = keys();
const customer = keys();
const MiB = 1_048_576;

/** A validly signed job request whose JSON is exactly `bytes` long (the input text pads it). */
function requestOfBytes(bytes: number): Event {
  const padded = (pad: number) => {
    const t = requestTemplate(gate);
    t.tags[0] = ["i", "x".repeat(pad), "text"];
    return sign(t, customer);
  };
  const base = Buffer.byteLength(JSON.stringify(padded(0)), "utf8");
  const ev = padded(bytes - base);
  expect(Buffer.byteLength(JSON.stringify(ev), "utf8")).toBe(bytes);
  return ev;
}

/** The same request with a signature that does not verify (one hex digit changed). */
const forged = (ev: Event): Event => ({ ...ev, sig: flipHex(ev.sig, 77) });

describe("requests at every size we accept, with the wasm verifier active", () => {
  beforeAll(async () => {
    expect(await initFastVerify()).toBe(true);
    expect(activeVerifier()).toBe("wasm");
  });

  // [maxRequestBytes, size of the request, expected answer]
  const cases: Array<[number, number, "decided" | "too large"]> = [
    [65_536, 65_535, "decided"], // just below the default
    [65_536, MiB, "too large"], // 1 MB against the default
    [MiB, MiB - 1, "decided"], // just below the largest maxRequestBytes the config takes
    [MiB, MiB + 1, "too large"],
    [MiB, 950_000, "decided"], // where the wasm heap used to give out
  ];

  it.each(cases)("maxRequestBytes %i: a validly signed request of %i bytes is %s, its forged twin ignored", (maxRequestBytes, bytes, answer) => {
    const ctx = context(gate, { maxRequestBytes });
    const ev = requestOfBytes(bytes);
    const v = checkJobRequest(ev, ctx);
    if (answer === "decided") expect(v.ok).toBe(true);
    else expect(v).toMatchObject({ ok: false, answer: "error", reason: "invalid: request too large", abuse: false, customer: customer.pk });

    expect(checkJobRequest(forged(ev), ctx)).toEqual({ ok: false, answer: "ignore", reason: "invalid: bad id or signature" });
    const wrongId = { ...ev, tags: [...ev.tags.slice(1), ev.tags[0]!] };
    expect(checkJobRequest(wrongId, ctx)).toMatchObject({ ok: false, answer: "ignore", reason: "invalid: bad id or signature" });
  });

  it("both backends give the right verdict on large events, genuine or not", () => {
    for (const bytes of [400_000, 600_000, 945_000, MiB, 2 * MiB]) {
      const ev = requestOfBytes(bytes);
      for (const v of ["wasm", "pure"] as const) {
        expect(verifyEventWith(v, ev), `${v} ${bytes}`).toBe(true);
        expect(verifyEventWith(v, forged(ev)), `${v} forged ${bytes}`).toBe(false);
        expect(verifyEventWith(v, { ...ev, content: "changed" }), `${v} changed ${bytes}`).toBe(false);
      }
      expect(verifySignedEvent(ev)).toBe(true);
    }
  });
});
