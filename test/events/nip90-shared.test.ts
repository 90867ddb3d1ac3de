// The gate and the relay plugin read NIP-90 tags with one reader (src/events/nip90-tags.ts):
// every case of one table runs through both, and their answers must agree.
import { describe, expect, it } from "vitest";
import type { Event } from "nostr-tools/pure";
import { checkJobRequest } from "../../src/events/job-request.js";
import { JobRequestPolicy } from "../../plugin/policies/job-request.js";
import { context, keys, NOW_SEC, requestTemplate, sign } from "./fixtures.js";
import { NIP90_CASES, type Nip90Case } from "./nip90-cases.js";

const gate = keys();
const customer = keys();
const ctx = context(gate);
const plugin = new JobRequestPolicy({
  kinds: new Set(ctx.priceMsatsByKind.keys()),
  maxRequestBytes: ctx.maxRequestBytes,
  maxRequestAgeSec: ctx.maxRequestAgeSec,
});

function eventFor(c: Nip90Case): Event {
  const base = requestTemplate(gate);
  const replaced = new Set((c.replace ?? []).map((t) => t[0]));
  const tags = base.tags.filter((t) => !replaced.has(t[0]) && !(c.remove ?? []).includes(t[0]!));
  tags.push(...(c.replace ?? []), ...(c.add ?? []));
  return sign({ ...base, tags }, customer);
}

describe("one NIP-90 tag reader for the gate and the plugin", () => {
  it("has a table that covers each disagreement the two readers used to have", () => {
    const names = NIP90_CASES.map((c) => c.name);
    expect(names).toEqual(expect.arrayContaining(["two bid tags", "an i tag without a type", "a bid above 10^15 msats that is still a safe integer"]));
    expect(NIP90_CASES.length).toBeGreaterThanOrEqual(30);
  });

  for (const c of NIP90_CASES) {
    it(`${c.name}: gate ${"ok" in c.gate ? "serves" : c.gate.answer}, relay ${c.plugin}s`, () => {
      const ev = eventFor(c);
      const v = checkJobRequest(ev, ctx);
      const p = plugin.call({ event: ev, sourceType: "IP4", sourceInfo: "192.0.2.1", nowMs: NOW_SEC * 1000 });

      if ("ok" in c.gate) expect(v, JSON.stringify(v.ok ? "" : v.reason)).toMatchObject({ ok: true });
      else expect(v).toMatchObject({ ok: false, ...c.gate });
      expect(p.action, p.msg).toBe(c.plugin);
      if (c.reason && !v.ok) expect(v.reason).toMatch(c.reason);
      if (c.reason && p.action === "reject") expect(p.msg).toMatch(c.reason);

      // The agreement itself, whatever the table says: what the gate serves, the relay
      // stores; what the gate calls malformed, the relay refuses with the same words.
      if (v.ok) expect(p.action).toBe("accept");
      if (!v.ok && v.answer === "error" && v.abuse) expect(p).toEqual({ action: "reject", msg: v.reason });
    });
  }
});
