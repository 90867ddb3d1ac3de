// The gate policy in-process, with an injected clock and an in-memory TierLookup (a
// fake that implements the real interface): exact rate-limit arithmetic over time,
// validation, pipeline semantics and the bounded line splitter.
import { finalizeEvent, generateSecretKey, getPublicKey, type Event } from "nostr-tools/pure";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import type { Tier } from "../../src/policy/tiers.js";
import { buildGatePolicy } from "../../plugin/gate-policy.js";
import { LineSplitter, type LineItem } from "../../plugin/line-splitter.js";
import { addressKey } from "../../plugin/policies/rate-limit.js";
import { PolicyPipeline, type Policy, type PolicyInput, type SourceType } from "../../plugin/policy.js";
import { CachedTierLookup, type TierInfo, type TierLookup } from "../../plugin/tier-lookup.js";
import { TokenBuckets } from "../../plugin/token-buckets.js";

class MemoryTiers implements TierLookup {
  readonly rows = new Map<string, TierInfo>();
  reads = 0;
  lookup(pubkey: string): TierInfo {
    this.reads++;
    return this.rows.get(pubkey) ?? { tier: "new", banned: false };
  }
  set(pubkey: string, tier: Tier, banned = false): void {
    this.rows.set(pubkey, { tier, banned });
  }
}

const T0 = 1_800_000_000_000;
const cfg = parseConfig(
  {
    jobs: { kinds: { "5050": { priceSats: 10 }, "5100": { priceSats: 1 } }, maxRequestAgeSec: 900, maxRequestBytes: 4096 },
    plugin: {
      perPubkeyPerMinute: { new: 6, established: 12, trusted: 60, elite: 600 },
      perIpPerMinute: 10,
      minTierForKinds: { "1": "established", "7": "new" },
    },
  },
  { env: {} },
);

function signed(kind: number, createdAtSec: number, tags: string[][] = [], content = ""): Event {
  const sk = generateSecretKey();
  return finalizeEvent({ kind, created_at: createdAtSec, tags, content }, sk);
}

function input(event: Event, nowMs: number, sourceType: SourceType = "IP4", sourceInfo = "192.0.2.1"): PolicyInput {
  return { event, nowMs, sourceType, sourceInfo };
}

function sameAuthor(sk: Uint8Array, kind: number, createdAtSec: number, i: number): Event {
  return finalizeEvent({ kind, created_at: createdAtSec, tags: [], content: String(i) }, sk);
}

describe("rate limits over time (injected clock)", () => {
  it("refills one token every 60/allowance seconds, up to one minute's allowance and no more", () => {
    const tiers = new MemoryTiers();
    const policy = buildGatePolicy(cfg, tiers);
    const sk = generateSecretKey();
    let now = T0;
    const send = (i: number) => policy.call(input(sameAuthor(sk, 5050, Math.floor(now / 1000), i), now, "IP4", `198.51.100.${i % 200}`)).action;
    const first = Array.from({ length: 7 }, (_, i) => send(i));
    expect(first).toEqual([...Array(6).fill("accept"), "reject"]);
    now += 9_999; // one token every 10 s for `new` at 6/min
    expect(send(100)).toBe("reject");
    now += 1;
    expect(send(101)).toBe("accept");
    expect(send(102)).toBe("reject");
    now += 3_600_000; // an hour idle refills to the cap of 6, not 360
    expect(Array.from({ length: 7 }, (_, i) => send(200 + i))).toEqual([...Array(6).fill("accept"), "reject"]);
  });

  it("gives a pubkey the allowance of its tier at the moment, and counts only the gate's job kinds", () => {
    const tiers = new MemoryTiers();
    const policy = buildGatePolicy(cfg, tiers);
    const sk = generateSecretKey();
    tiers.set(getPublicKey(sk), "established");
    const sec = Math.floor(T0 / 1000);
    const acts = Array.from({ length: 13 }, (_, i) => policy.call(input(sameAuthor(sk, 5100, sec, i), T0, "IP4", `203.0.113.${i}`)).action);
    expect(acts.filter((a) => a === "accept").length).toBe(12);
    // Other DVMs' job kinds and ordinary events are not counted.
    for (let i = 0; i < 20; i++) expect(policy.call(input(sameAuthor(sk, 5999, sec, i), T0)).action).toBe("accept");
  });

  it("never lets more through than allowance + elapsed × rate, for random traffic (seeded)", () => {
    const seed = 20_240_601;
    let state = seed;
    const rand = () => (state = (state * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    const buckets = new TokenBuckets(1000);
    const perMinute = 30;
    const keys = ["a", "b", "c"];
    const taken = new Map<string, number>();
    let now = T0;
    for (let step = 0; step < 5000; step++) {
      now += Math.floor(rand() * 500);
      const key = keys[Math.floor(rand() * keys.length)]!;
      if (buckets.has(key, perMinute, now)) {
        buckets.take(key, perMinute, now);
        taken.set(key, (taken.get(key) ?? 0) + 1);
      }
    }
    const ceiling = perMinute + ((now - T0) * perMinute) / 60_000;
    for (const k of keys) expect(taken.get(k) ?? 0, `seed ${seed}, key ${k}`).toBeLessThanOrEqual(Math.floor(ceiling));
    // Busy keys got close to their ceiling: the limiter is not simply refusing.
    const busiest = Math.max(...keys.map((k) => taken.get(k) ?? 0));
    expect(busiest, `seed ${seed}`).toBeGreaterThan(ceiling * 0.8);
  });

  it("keeps at most maxKeys buckets, forgetting the least recently used", () => {
    const b = new TokenBuckets(3);
    for (const k of ["a", "b", "c"]) b.take(k, 1, T0);
    expect(b.has("a", 1, T0)).toBe(false);
    b.take("d", 1, T0); // evicts "a", the oldest
    expect(b.size).toBe(3);
    expect(b.has("a", 1, T0)).toBe(true);
    expect(b.has("b", 1, T0)).toBe(false);
  });

  it("does not let a clock that steps back drain or refill a bucket", () => {
    const b = new TokenBuckets(10);
    b.take("k", 1, T0);
    expect(b.has("k", 1, T0 - 120_000)).toBe(false);
    expect(b.has("k", 1, T0 + 60_000)).toBe(true);
  });

  it("spends no token on an event another limit refuses", () => {
    const tiers = new MemoryTiers();
    const policy = buildGatePolicy(cfg, tiers);
    const sec = Math.floor(T0 / 1000);
    // Ten fresh pubkeys use up the address; the eleventh is refused by the address limit.
    for (let i = 0; i < 10; i++) expect(policy.call(input(signed(5050, sec), T0, "IP4", "192.0.2.50")).action).toBe("accept");
    const sk = generateSecretKey();
    expect(policy.call(input(sameAuthor(sk, 5050, sec, 0), T0, "IP4", "192.0.2.50")).msg).toMatch(/at your address$/);
    // That refusal did not cost the pubkey: it still has its full 6 elsewhere.
    const acts = Array.from({ length: 7 }, (_, i) => policy.call(input(sameAuthor(sk, 5050, sec, i + 1), T0, "IP4", `192.0.2.${60 + i}`)).action);
    expect(acts).toEqual([...Array(6).fill("accept"), "reject"]);
  });
});

describe("tier cache", () => {
  it("serves an answer for less than its lifetime, then reads again, and stays within its size", () => {
    const inner = new MemoryTiers();
    const cache = new CachedTierLookup(inner, 1000, 2);
    inner.set("p1", "trusted");
    expect(cache.lookup("p1", T0).tier).toBe("trusted");
    inner.set("p1", "trusted", true);
    expect(cache.lookup("p1", T0 + 999).banned).toBe(false);
    expect(cache.lookup("p1", T0 + 1000).banned).toBe(true);
    // A clock stepping back does not extend an answer's life.
    inner.set("p1", "new");
    expect(cache.lookup("p1", T0 + 500).tier).toBe("new");
    inner.reads = 0;
    cache.lookup("p2", T0 + 500);
    cache.lookup("p3", T0 + 500); // evicts p1
    cache.lookup("p1", T0 + 501);
    expect(inner.reads).toBe(3);
  });

  it("reads every time with a lifetime of 0", () => {
    const inner = new MemoryTiers();
    const cache = new CachedTierLookup(inner, 0);
    for (let i = 0; i < 5; i++) cache.lookup("p", T0);
    expect(inner.reads).toBe(5);
  });
});

describe("address keys", () => {
  it("keys IPv4 by address and IPv6 by its /64, with mapped IPv4 as IPv4", () => {
    expect(addressKey("192.0.2.7")).toBe("192.0.2.7");
    expect(addressKey("2001:db8:0:7::1")).toBe("2001:db8:0:7::/64");
    expect(addressKey("2001:0db8:0000:0007:ffff::2")).toBe("2001:db8:0:7::/64");
    expect(addressKey("::ffff:192.0.2.9")).toBe("192.0.2.9");
    expect(addressKey("::1")).toBe("0:0:0:0::/64");
    expect(addressKey("")).toBeNull();
  });
});

describe("job-request validation", () => {
  const tiers = new MemoryTiers();
  const policy = buildGatePolicy(cfg, tiers);
  const nowSec = Math.floor(T0 / 1000);
  const verdict = (ev: Event, source: SourceType = "IP4") => policy.call(input(ev, T0, source, `192.0.2.${Math.floor(Math.random() * 250)}`));

  it("accepts the NIP-90 shapes the gate reads", () => {
    const tags = [
      ["i", "https://example.com/a.mp3", "url"],
      ["i", "a".repeat(64), "event", "wss://relay.example"],
      ["i", "b".repeat(64), "job", "wss://relay.example", "marker"],
      ["output", "text/plain"],
      ["param", "lang", "en", "extra"],
      ["bid", "21000"],
      ["relays", "wss://relay.example"],
      ["p", "c".repeat(64)],
      ["expiration", String(nowSec + 60)],
      ["encrypted"],
    ];
    expect(verdict(signed(5050, nowSec, tags))).toEqual({ action: "accept", msg: "" });
  });

  it("refuses each malformed tag with invalid: and a reason", () => {
    const bad: [string[], RegExp][] = [
      [["i"], /i tag needs data/],
      [["i", "", "text"], /i tag needs data/],
      [["i", "x"], /i tag needs a type/],
      [["i", "x", "text", "r", "m", "extra"], /i tag has more than data, type, relay and marker/],
      [["bid", ""], /bid must be a whole number of millisats/],
      [["bid", "1e9"], /bid must be a whole number of millisats/],
      [["bid", "99999999999999999"], /bid must be a whole number of millisats/],
      [["bid", "1000000000000001"], /bid must be a whole number of millisats/],
      [["output", ""], /output tag needs a mime type/],
      [["param", "", "v"], /param tag needs a key and a value/],
      [["expiration", "soon"], /expiration tag is not a unix time/],
      [["expiration", String(nowSec)], /expired \(NIP-40\)/],
    ];
    for (const [tag, msg] of bad) {
      const r = verdict(signed(5050, nowSec, [tag]));
      expect(r.action, JSON.stringify(tag)).toBe("reject");
      expect(r.msg, JSON.stringify(tag)).toMatch(/^invalid: /);
      expect(r.msg, JSON.stringify(tag)).toMatch(msg);
    }
    const nonString = { ...signed(5050, nowSec), tags: [["bid", 5]] } as unknown as Event;
    expect(verdict(nonString).msg).toBe("invalid: tags must be arrays of strings");
  });

  it("bounds size and the created_at window at the edges", () => {
    expect(verdict(signed(5050, nowSec + 60)).action).toBe("accept");
    expect(verdict(signed(5050, nowSec + 61)).msg).toBe("invalid: created_at is more than 60 s in the future");
    expect(verdict(signed(5050, nowSec - 900)).action).toBe("accept");
    expect(verdict(signed(5050, nowSec - 901)).msg).toBe("invalid: job request is older than 900 s");
    const big = signed(5050, nowSec, [], "x".repeat(4096));
    expect(verdict(big).msg).toMatch(/^invalid: job request is \d+ bytes, over this relay's limit of 4096$/);
    // Not the gate's kind: not its size limit either.
    expect(verdict(signed(5200, nowSec, [["bid", "x"]], "x".repeat(8192))).action).toBe("accept");
  });

  it("takes stale requests from sync sources but still refuses expired ones", () => {
    expect(verdict(signed(5050, nowSec - 86_400), "Sync").action).toBe("accept");
    expect(verdict(signed(5050, nowSec, [["expiration", String(nowSec - 1)]]), "Stream").msg).toMatch(/expired/);
  });
});

describe("pipeline", () => {
  const ev = signed(1, 1);
  const fixed = (name: string, action: "accept" | "reject", msg = ""): Policy & { calls: number } => ({
    name,
    calls: 0,
    call() {
      this.calls++;
      return { action, msg };
    },
  });

  it("stops at the first reject and returns it", () => {
    const a = fixed("a", "accept");
    const b = fixed("b", "reject", "blocked: b");
    const c = fixed("c", "reject", "blocked: c");
    expect(new PolicyPipeline([a, b, c]).call(input(ev, T0))).toEqual({ action: "reject", msg: "blocked: b" });
    expect([a.calls, b.calls, c.calls]).toEqual([1, 1, 0]);
  });

  it("turns a throwing policy into error: internal error, reports it, and serves the next event", () => {
    const seen: string[] = [];
    let fail = true;
    const flaky: Policy = {
      name: "flaky",
      call: () => {
        if (fail) throw new Error("disk on fire");
        return { action: "accept", msg: "" };
      },
    };
    const p = new PolicyPipeline([flaky], (err, name) => seen.push(`${name}: ${(err as Error).message}`));
    expect(p.call(input(ev, T0))).toEqual({ action: "reject", msg: "error: internal error" });
    fail = false;
    expect(p.call(input(ev, T0))).toEqual({ action: "accept", msg: "" });
    expect(seen).toEqual(["flaky: disk on fire"]);
  });

  it("blocks banned pubkeys for every kind and restricts configured kinds by tier, reading the tier once per event", () => {
    const tiers = new MemoryTiers();
    const policy = buildGatePolicy(cfg, tiers);
    const sk = generateSecretKey();
    const pk = getPublicKey(sk);
    const nowSec = Math.floor(T0 / 1000);
    expect(policy.call(input(sameAuthor(sk, 1, nowSec, 0), T0)).msg).toBe(
      "restricted: kind 1 needs trust tier established or above on this relay; this pubkey is new",
    );
    // A minimum of `new` restricts nothing.
    expect(policy.call(input(sameAuthor(sk, 7, nowSec, 0), T0)).action).toBe("accept");
    tiers.set(pk, "established");
    tiers.reads = 0;
    expect(policy.call(input(sameAuthor(sk, 5050, nowSec, 1), T0)).action).toBe("accept");
    expect(tiers.reads).toBe(1);
    tiers.set(pk, "elite", true);
    for (const kind of [0, 1, 5050, 30023])
      expect(policy.call(input(sameAuthor(sk, kind, nowSec, kind), T0 + 1)).msg).toBe("blocked: this pubkey is banned by the relay operator");
  });
});

describe("line splitter", () => {
  const collect = (max: number, chunks: Buffer[]) => {
    const items: LineItem[] = [];
    const s = new LineSplitter(max, (i) => items.push(i));
    for (const c of chunks) s.push(c);
    s.end();
    return items;
  };

  it("joins lines split across chunks, splits chunks holding several lines, and keeps multi-byte characters whole", () => {
    const text = '{"a":"héllo ✓"}\n{"b":2}\n{"c":3}';
    const bytes = Buffer.from(text);
    for (let cut = 1; cut < bytes.length; cut += 3) {
      const items = collect(1000, [bytes.subarray(0, cut), bytes.subarray(cut)]);
      expect(items).toEqual([
        { kind: "line", text: '{"a":"héllo ✓"}' },
        { kind: "line", text: '{"b":2}' },
        { kind: "line", text: '{"c":3}' },
      ]);
    }
  });

  it("reports an over-long line as oversize with its event id, found even across chunk edges, and recovers", () => {
    const id = "d".repeat(64);
    const line = Buffer.from(`{"event":{"content":"${"z".repeat(5000)}","created_at":1,"id":"${id}"},"type":"new"}\n{"ok":1}\n`);
    for (const chunkSize of [7, 64, 1000, 5020]) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < line.length; i += chunkSize) chunks.push(line.subarray(i, i + chunkSize));
      const items = collect(1024, chunks);
      expect(items).toEqual([
        { kind: "oversize", bytes: line.indexOf(10), eventId: id },
        { kind: "line", text: '{"ok":1}' },
      ]);
    }
  });
});
