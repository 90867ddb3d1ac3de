// `dvm-gate audit` end to end: real grant events (a real ledger signing with the gate's
// key) published to a real relay, fetched and checked by the real executable.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nip19 } from "nostr-tools";
import { generateSecretKey, type Event } from "nostr-tools/pure";
import { auditGrants, fetchAuditEvents } from "../../src/peers/audit.js";
import { startEmbeddedRelay, type EmbeddedRelay } from "../../src/peers/embedded-relay.js";
import { makeTmpDir } from "../helpers/tmp.js";
import { makeHistory, publishAll, resign, setTag, type History } from "./history.js";
import { startSloppyRelay } from "./sloppy-relay.js";
import { runDvmGate } from "./cli-run.js";

const tmp = makeTmpDir("dvm-gate-audit-cli-");
const relays: { close: () => Promise<void> }[] = [];
let n = 0;
let h: History;

const history = (opts?: Parameters<typeof makeHistory>[1]) => {
  const x = makeHistory(tmp.file(`ledger-${n++}.sqlite`), opts);
  x.ledger.close();
  return x;
};
const relayWith = async (events: Event[]): Promise<EmbeddedRelay> => {
  const r = await startEmbeddedRelay();
  relays.push(r);
  await publishAll(r.url, events);
  return r;
};
const audit = (url: string | string[], gate: string, ...more: string[]) =>
  runDvmGate(["audit", ...[url].flat().flatMap((u) => ["--relay", u]), "--gate", gate, ...more], { cwd: tmp.path });
const seqOf = (e: Event) => Number(e.tags.find((t) => t[0] === "seq")![1]);

beforeAll(() => {
  h = history();
});
afterAll(async () => {
  for (const r of relays) await r.close();
  tmp.remove();
});

describe("dvm-gate audit", () => {
  it("passes an honest history fetched from a relay (npub, text output)", async () => {
    const r = await relayWith([...h.grants, h.poolStatus]);
    const out = await audit(r.url, nip19.npubEncode(h.gatePubkey));
    expect(out.stderr).toBe("");
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/grants 6, customers 4/);
    expect(out.stdout).toMatch(/last grant seq 6:/);
    expect(out.stdout).toMatch(/audit passed/);
  });

  it("prints the report as JSON, merging and deduplicating two relays", async () => {
    const a = await relayWith([...h.grants.slice(0, 4), h.poolStatus]);
    const b = await relayWith(h.grants.slice(2));
    const out = await audit([a.url, b.url], h.gatePubkey, "--json");
    expect(out.code).toBe(0);
    const report = JSON.parse(out.stdout);
    expect(report).toMatchObject({ ok: true, grants: 6, customers: 4, problems: [], last: { seq: 6 } });
  });

  it("pages through a history longer than a page, including more grants in one second than a page holds", async () => {
    // 30 grants about 3 per second, then 12 in one second; pages of 5.
    const jobs = [
      ...Array.from({ length: 30 }, (_, i) => ({ tier: "elite" as const, who: i % 4, priceSats: 1, atMs: 1_750_000_000_000 + i * 300 })),
      ...Array.from({ length: 12 }, (_, i) => ({ tier: "elite" as const, who: i % 4, priceSats: 1, atMs: 1_750_000_100_000 + i })),
    ];
    const big = history({ jobs });
    const r = await relayWith([...big.grants, big.poolStatus]);
    const fetched = await fetchAuditEvents({ relayUrls: [r.url], gatePubkey: big.gatePubkey, pageSize: 5 });
    expect(fetched.truncated).toBe(false);
    expect(fetched.events).toHaveLength(43);
    expect(auditGrants(fetched.events, big.gatePubkey)).toMatchObject({ ok: true, grants: 42, last: { seq: 42 } });
    const out = await audit(r.url, big.gatePubkey, "--json");
    expect(JSON.parse(out.stdout)).toMatchObject({ ok: true, grants: 42 });
  });

  it("fails naming the chain when a grant is missing from the relay", async () => {
    const r = await relayWith([...h.grants.filter((e) => seqOf(e) !== 4), h.poolStatus]);
    const out = await audit(r.url, h.gatePubkey);
    expect(out.code).toBe(1);
    expect(out.stdout).toMatch(/FAIL chain: grant seq 4 is missing/);
    expect(out.stdout).toMatch(/audit FAILED: chain$/m);
  });

  it("fails naming the totals when the gate signed a wrong total", async () => {
    const last = h.grants.at(-1)!;
    const t = last.tags.find((x) => x[0] === "totals")!.slice(1);
    const wrong = resign(last, h.gateSk, (tags) => setTag(tags, "totals", [t[0]!, String(Number(t[1]) + 1), t[2]!, t[3]!, t[4]!]));
    const r = await relayWith([...h.grants.slice(0, -1), wrong, h.poolStatus]);
    const out = await audit(r.url, h.gatePubkey, "--json");
    expect(out.code).toBe(1);
    const report = JSON.parse(out.stdout);
    expect(report.problems.map((p: { check: string }) => p.check)).toEqual(["totals"]);
  });

  it("fails naming the signature when a relay serves a forged grant", async () => {
    const victim = h.grants[1]!;
    const forged: Event = { ...victim, tags: setTag(victim.tags, "absorbed", ["999"]) };
    const sloppy = await startSloppyRelay([...h.grants.filter((e) => e !== victim), forged, h.poolStatus]);
    relays.push(sloppy);
    const out = await audit(sloppy.url, h.gatePubkey);
    expect(out.code).toBe(1);
    expect(out.stdout).toMatch(/FAIL signature: grant event [0-9a-f]{12}…: id or signature does not verify/);
  });

  it("fails naming the signature when a relay serves a grant signed by another key", async () => {
    const foreign = resign(h.grants[3]!, generateSecretKey(), (t) => t);
    const sloppy = await startSloppyRelay([...h.grants.filter((e) => e !== h.grants[3]), foreign, h.poolStatus]);
    relays.push(sloppy);
    const out = await audit(sloppy.url, h.gatePubkey, "--json");
    expect(out.code).toBe(1);
    const report = JSON.parse(out.stdout);
    expect(report.problems[0]).toMatchObject({ check: "signature" });
    expect(report.problems[0].detail).toMatch(/not the gate/);
  });

  it("does not count another key's grant events published to an honest relay", async () => {
    const impostor = resign(h.grants[2]!, generateSecretKey(), (tags) => setTag(tags, "absorbed", ["1"]));
    const r = await relayWith([...h.grants, h.poolStatus, impostor]);
    const out = await audit(r.url, h.gatePubkey, "--json");
    expect(JSON.parse(out.stdout)).toMatchObject({ ok: true, grants: 6 });
  });

  it("fails naming the budget when a customer got more than the published budget", async () => {
    const over = history({ statusBudgetsSats: { new: 0, established: 50, trusted: 200, elite: 25 } });
    const r = await relayWith([...over.grants, over.poolStatus]);
    const out = await audit(r.url, over.gatePubkey);
    expect(out.code).toBe(1);
    expect(out.stdout).toMatch(/FAIL budget: customer [0-9a-f]{12}… absorbed 30000 msats .* over the elite budget of 25000 msats/);
  });

  it("answers bad input with one line and exit 2", async () => {
    const r = await relayWith([]);
    const cases: [string[], RegExp][] = [
      [["audit", "--relay", r.url, "--gate", "npub1nope"], /--gate: not a pubkey/],
      [["audit", "--relay", "http://example.com", "--gate", h.gatePubkey], /--relay expects a ws:\/\/ or wss:\/\/ URL/],
      [["audit", "--gate", h.gatePubkey], /missing --relay/],
      [["audit", "--relay", r.url], /missing --gate/],
      [
        ["audit", "--relay", r.url, "--gate", h.gatePubkey, "--since", "yesterday"],
        /--since \(unix time\): expected a whole number of seconds from 0 to 99999999999, got "yesterday"/,
      ],
      [["audit", "--relay", "ws://127.0.0.1:1", "--gate", h.gatePubkey], /cannot connect to ws:\/\/127\.0\.0\.1:1/],
    ];
    for (const [args, msg] of cases) {
      const out = await runDvmGate(args, { cwd: tmp.path });
      expect(out.code, args.join(" ")).toBe(2);
      expect(out.stderr.trim().split("\n")).toHaveLength(1);
      expect(out.stderr).toMatch(msg);
      expect(out.stdout).toBe("");
    }
  });
});
