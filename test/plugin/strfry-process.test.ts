// The strfry plugin as strfry runs it: the executable, spawned with DVM_GATE_CONFIG,
// fed strfry-format lines one at a time on stdin, answers read from stdout.
import { writeFileSync } from "node:fs";
import { finalizeEvent, generateSecretKey, getPublicKey, type Event } from "nostr-tools/pure";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ledgerSettings } from "../../src/cli/context.js";
import { parseConfig } from "../../src/config/load.js";
import { Ledger } from "../../src/ledger/ledger.js";
import { makeTmpDir, type TmpDir } from "../helpers/tmp.js";
import { spawnGatePlugin, strfryLine, type StrfryAnswer, type StrfryPluginProcess } from "../helpers/strfry-plugin-process.js";

type StrfryAnswerLike = Pick<StrfryAnswer, "action" | "msg">;

const JOB_KIND = 5050;
const RESTRICTED_KIND = 30023;
const nowSec = () => Math.floor(Date.now() / 1000);
const NO_CACHE = { DVM_GATE_PLUGIN_CACHE_MS: "0" };

function gateConfig(dbPath: string) {
  return {
    database: { path: dbPath, synchronous: "NORMAL" },
    jobs: { kinds: { [String(JOB_KIND)]: { priceSats: 10 } }, maxRequestAgeSec: 900, maxRequestBytes: 65_536 },
    plugin: {
      // Refill is one token per 20 s for `new`: no test here runs long enough to see one.
      perPubkeyPerMinute: { new: 3, established: 6, trusted: 100, elite: 1000 },
      perIpPerMinute: 5,
      minTierForKinds: { [String(RESTRICTED_KIND)]: "trusted" },
      abuseReportSec: 1,
    },
    log: { level: "info" },
  };
}

interface Fixture {
  tmp: TmpDir;
  configPath: string;
  ledger: Ledger;
}

function makeFixture(): Fixture {
  const tmp = makeTmpDir("dvm-gate-plugin-");
  const configPath = tmp.file("dvm-gate.json");
  const raw = gateConfig(tmp.file("gate.sqlite"));
  writeFileSync(configPath, JSON.stringify(raw));
  const cfg = parseConfig(raw, { baseDir: tmp.path, sourcePath: configPath, env: {} });
  const ledger = Ledger.open(cfg.database.path, ledgerSettings(cfg), { nowMs: Date.now(), synchronous: "NORMAL" });
  return { tmp, configPath, ledger };
}

function user() {
  const sk = generateSecretKey();
  return { sk, pubkey: getPublicKey(sk) };
}

function jobRequest(sk: Uint8Array, opts: { createdAtSec?: number; tags?: string[][]; content?: string; kind?: number } = {}): Event {
  return finalizeEvent(
    {
      kind: opts.kind ?? JOB_KIND,
      created_at: opts.createdAtSec ?? nowSec(),
      tags: opts.tags ?? [
        ["i", "what is a DVM?", "text"],
        ["param", "model", "small"],
        ["bid", "10000"],
      ],
      content: opts.content ?? "",
    },
    sk,
  );
}

function note(sk: Uint8Array, kind = 1): Event {
  return finalizeEvent({ kind, created_at: nowSec(), tags: [], content: "hello" }, sk);
}

describe("strfry plugin process", () => {
  let fx: Fixture;
  let plugin: StrfryPluginProcess;
  let sent = 0;
  const ask = (line: string) => {
    sent++;
    return plugin.ask(line);
  };

  beforeAll(async () => {
    fx = makeFixture();
    // No tier cache: these tests change tiers and bans between consecutive events.
    plugin = spawnGatePlugin(fx.configPath, NO_CACHE);
  });

  afterAll(async () => {
    await plugin?.stop();
    fx?.ledger.close();
    fx?.tmp.remove();
  });

  it("accepts a well-formed job request and an ordinary note from a live client, echoing the id", async () => {
    const a = user();
    const req = jobRequest(a.sk);
    expect(await ask(strfryLine(req, "IP4", "10.0.0.1"))).toEqual({ id: req.id, action: "accept", msg: "" });
    const n = note(a.sk);
    expect(await ask(strfryLine(n, "IP6", "2001:db8::1"))).toEqual({ id: n.id, action: "accept", msg: "" });
  });

  it("answers garbage, a missing event, a non-object, an unknown type and a bad sourceType with a reject", async () => {
    const ev = note(user().sk);
    expect(await ask("this is not json")).toEqual({ id: "", action: "reject", msg: "invalid: input line is not JSON" });
    expect(await ask('{"type":"new","receivedAt":1,"sourceType":"IP4","sourceInfo":"10.0.0.2"}')).toEqual({
      id: "",
      action: "reject",
      msg: "invalid: request has no event",
    });
    expect(await ask("[1,2,3]")).toEqual({ id: "", action: "reject", msg: "invalid: input is not a JSON object" });
    expect(await ask('{"type":"new","event":{"id":"zz"}')).toMatchObject({ id: "", action: "reject" });
    const unknownType = await ask(JSON.stringify({ type: "old", event: ev, sourceType: "IP4", sourceInfo: "10.0.0.2" }));
    expect(unknownType).toEqual({ id: ev.id, action: "reject", msg: 'invalid: unknown request type "old"' });
    const badSource = await ask(JSON.stringify({ type: "new", event: ev, sourceType: "Carrier-Pigeon", sourceInfo: "" }));
    expect(badSource).toMatchObject({ id: ev.id, action: "reject" });
    expect(badSource.msg).toMatch(/^invalid: unknown sourceType/);
    const noPubkey = { ...ev, pubkey: 42 };
    expect(await ask(strfryLine(noPubkey))).toEqual({ id: ev.id, action: "reject", msg: "invalid: event pubkey must be 64 lowercase hex characters" });
  });

  it("sends no answer to an old strfry's lookback replay, and the next answer belongs to the next request", async () => {
    const old = note(user().sk);
    const next = note(user().sk);
    plugin.write(JSON.stringify({ type: "lookback", event: old, receivedAt: 1, sourceType: "IP4", sourceInfo: "10.0.0.3" }) + "\n");
    expect(await ask(strfryLine(next))).toEqual({ id: next.id, action: "accept", msg: "" });
  });

  it("rejects a 1 MiB job request for size, and a line beyond the plugin's line limit without holding it", async () => {
    const a = user();
    const big = jobRequest(a.sk, { content: "x".repeat(1_048_576) });
    const bigAnswer = await ask(strfryLine(big, "IP4", "10.0.0.4"));
    expect(bigAnswer).toMatchObject({ id: big.id, action: "reject" });
    expect(bigAnswer.msg).toMatch(/^invalid: job request is 10\d{5} bytes, over this relay's limit of 65536$/);

    const huge = note(a.sk);
    const hugeLine = strfryLine({ ...huge, content: "y".repeat(3 * 1_048_576) }, "IP4", "10.0.0.4");
    const hugeAnswer = await ask(hugeLine);
    expect(hugeAnswer).toMatchObject({ id: huge.id, action: "reject" });
    expect(hugeAnswer.msg).toMatch(/^invalid: event is 3\d{6} bytes, over this relay's limit of 2097152$/);

    const after = note(a.sk);
    expect(await ask(strfryLine(after))).toEqual({ id: after.id, action: "accept", msg: "" });
  });

  it("rejects malformed job-request tags, stale or future created_at and NIP-40 expired requests with invalid:", async () => {
    const { sk } = user();
    const cases: [Event, RegExp][] = [
      [jobRequest(sk, { tags: [["i", "x", "carrier-pigeon"]] }), /^invalid: i tag type must be url, event, job or text/],
      [jobRequest(sk, { tags: [["i", "not-an-id", "event"]] }), /^invalid: i tag of type event needs an event id$/],
      [jobRequest(sk, { tags: [["bid", "10.5"]] }), /^invalid: bid must be a whole number of millisats/],
      [jobRequest(sk, { tags: [["bid", "-3"]] }), /^invalid: bid must be a whole number of millisats/],
      [jobRequest(sk, { tags: [["param", "model"]] }), /^invalid: param tag needs a key and a value/],
      [jobRequest(sk, { tags: [["expiration", String(nowSec() - 10)]] }), /^invalid: job request has expired \(NIP-40\)$/],
      [jobRequest(sk, { createdAtSec: nowSec() + 600 }), /^invalid: created_at is more than 60 s in the future$/],
      [jobRequest(sk, { createdAtSec: nowSec() - 3600 }), /^invalid: job request is older than 900 s$/],
    ];
    for (const [ev, msg] of cases) {
      const a = await ask(strfryLine(ev, "IP4", "10.0.0.5"));
      expect(a.id).toBe(ev.id);
      expect(a.action).toBe("reject");
      expect(a.msg).toMatch(msg);
    }
  });

  it("takes history from Import, Stream and Sync sources without rate limits or freshness, but still validates shape and bans", async () => {
    const a = user();
    for (const source of ["Import", "Stream", "Sync", "Stored"] as const) {
      const stale = jobRequest(a.sk, { createdAtSec: nowSec() - 86_400 });
      expect(await ask(strfryLine(stale, source, "wss://other.example"))).toEqual({ id: stale.id, action: "accept", msg: "" });
    }
    // Ten requests in a burst from one `new` pubkey: three would be the live limit.
    for (let i = 0; i < 10; i++) {
      const r = jobRequest(a.sk, { content: `burst ${i}` });
      expect((await ask(strfryLine(r, "Stream", "wss://other.example"))).action).toBe("accept");
    }
    const bad = jobRequest(a.sk, { tags: [["bid", "lots"]] });
    expect((await ask(strfryLine(bad, "Sync", "wss://other.example"))).msg).toMatch(/^invalid: bid must be a whole number of millisats/);
    const banned = user();
    fx.ledger.setBanned(banned.pubkey, true, "spam", Date.now());
    for (const source of ["Import", "Stream", "Sync"] as const) {
      const ev = note(banned.sk);
      expect(await ask(strfryLine(ev, source, ""))).toEqual({ id: ev.id, action: "reject", msg: "blocked: this pubkey is banned by the relay operator" });
    }
  });

  it("blocks a pubkey banned after the plugin started, on its very next event, and lets it back in when unbanned", async () => {
    const a = user();
    const before = note(a.sk);
    expect((await ask(strfryLine(before))).action).toBe("accept");
    fx.ledger.setBanned(a.pubkey, true, "spam", Date.now());
    const req = jobRequest(a.sk);
    expect(await ask(strfryLine(req))).toEqual({ id: req.id, action: "reject", msg: "blocked: this pubkey is banned by the relay operator" });
    fx.ledger.setBanned(a.pubkey, false, null, Date.now());
    const again = note(a.sk);
    expect((await ask(strfryLine(again))).action).toBe("accept");
  });

  it("restricts writes of a configured kind to pubkeys of the minimum tier", async () => {
    const a = user();
    const article = note(a.sk, RESTRICTED_KIND);
    expect(await ask(strfryLine(article))).toEqual({
      id: article.id,
      action: "reject",
      msg: `restricted: kind ${RESTRICTED_KIND} needs trust tier trusted or above on this relay; this pubkey is new`,
    });
    fx.ledger.setTier(a.pubkey, "established", Date.now());
    expect((await ask(strfryLine(note(a.sk, RESTRICTED_KIND)))).msg).toMatch(/this pubkey is established$/);
    fx.ledger.setTier(a.pubkey, "trusted", Date.now());
    const ok = note(a.sk, RESTRICTED_KIND);
    expect(await ask(strfryLine(ok))).toEqual({ id: ok.id, action: "accept", msg: "" });
  });

  it("rate-limits job requests per pubkey with an allowance that grows with tier", async () => {
    const fresh = user();
    const results: string[] = [];
    for (let i = 0; i < 4; i++) results.push((await ask(strfryLine(jobRequest(fresh.sk, { content: String(i) }), "IP4", `10.1.0.${i}`))).action);
    expect(results).toEqual(["accept", "accept", "accept", "reject"]);
    const limited = await ask(strfryLine(jobRequest(fresh.sk, { content: "again" }), "IP4", "10.1.0.9"));
    expect(limited.msg).toBe("rate-limited: at most 3 job requests per minute for trust tier new");
    // Ordinary notes are not job requests and are not counted.
    expect((await ask(strfryLine(note(fresh.sk)))).action).toBe("accept");

    const known = user();
    fx.ledger.setTier(known.pubkey, "established", Date.now());
    const knownResults: string[] = [];
    for (let i = 0; i < 7; i++) knownResults.push((await ask(strfryLine(jobRequest(known.sk, { content: String(i) }), "IP4", `10.2.0.${i}`))).action);
    expect(knownResults).toEqual([...Array(6).fill("accept"), "reject"]);

    // SPEC §5: violations cost trust, written by the plugin off its hot path: one abuse
    // per pubkey per round (abuseReportSec 1 here), however many events it sent.
    const scoreOf = (pk: string) => fx.ledger.identity(pk, Date.now()).score;
    for (let waited = 0; waited < 8000 && (scoreOf(fresh.pubkey) === 0 || scoreOf(known.pubkey) === 0); waited += 100)
      await new Promise((r) => setTimeout(r, 100));
    expect(scoreOf(fresh.pubkey)).toBe(-5);
    expect(scoreOf(known.pubkey)).toBe(-5);
  });

  it("rate-limits job requests from new pubkeys per address (IPv6 by /64), but not trusted pubkeys", async () => {
    const actions: string[] = [];
    for (let i = 0; i < 6; i++) actions.push((await ask(strfryLine(jobRequest(user().sk), "IP4", "10.3.0.1"))).action);
    expect(actions).toEqual([...Array(5).fill("accept"), "reject"]);
    const msg = (await ask(strfryLine(jobRequest(user().sk), "IP4", "10.3.0.1"))).msg;
    expect(msg).toBe("rate-limited: at most 5 job requests per minute from new pubkeys at your address");
    expect((await ask(strfryLine(jobRequest(user().sk), "IP4", "10.3.0.2"))).action).toBe("accept");
    const trusted = user();
    fx.ledger.setTier(trusted.pubkey, "trusted", Date.now());
    expect((await ask(strfryLine(jobRequest(trusted.sk), "IP4", "10.3.0.1"))).action).toBe("accept");
    // An address limit may be a neighbour's doing: it costs the pubkey no trust.
    const neighbour = user();
    expect((await ask(strfryLine(jobRequest(neighbour.sk), "IP4", "10.3.0.1"))).msg).toMatch(/at your address/);
    // The control: a pubkey over its own allowance after that, which does cost trust.
    // The reporter writes everything collected in one round, so once the control's
    // penalty is in, a penalty for the neighbour would be too.
    const control = user();
    fx.ledger.setTier(control.pubkey, "established", Date.now());
    const controlResults: string[] = [];
    for (let i = 0; i < 7; i++) controlResults.push((await ask(strfryLine(jobRequest(control.sk, { content: `c${i}` }), "IP4", `10.4.0.${i}`))).action);
    expect(controlResults.at(-1)).toBe("reject");
    const scoreOf = (pk: string) => fx.ledger.identity(pk, Date.now()).score;
    for (let waited = 0; waited < 8000 && scoreOf(control.pubkey) === 0; waited += 100) await new Promise((r) => setTimeout(r, 100));
    expect(scoreOf(control.pubkey)).toBe(-5);
    expect(scoreOf(neighbour.pubkey)).toBe(0);

    const v6: string[] = [];
    for (let i = 1; i <= 6; i++) v6.push((await ask(strfryLine(jobRequest(user().sk), "IP6", `2001:db8:0:7::${i.toString(16)}`))).action);
    expect(v6).toEqual([...Array(5).fill("accept"), "reject"]);
    expect((await ask(strfryLine(jobRequest(user().sk), "IP6", "2001:db8:0:8::1"))).action).toBe("accept");
  });

  it("wrote exactly one JSON answer line per request line on stdout, and logs only on stderr", () => {
    // Blank lines and lookback get no answer and were not counted in `sent`.
    expect(plugin.stdoutLines.length).toBe(sent);
    for (const line of plugin.stdoutLines) {
      const a = JSON.parse(line) as Record<string, unknown>;
      expect(Object.keys(a).sort()).toEqual(["action", "id", "msg"]);
      expect(["accept", "reject", "shadowReject"]).toContain(a.action);
    }
    expect(plugin.stderr).toMatch(/"name":"dvm-gate-plugin"/);
  });

  it("exits 0 on SIGTERM", async () => {
    expect(await plugin.stop()).toBe(0);
  });
});

describe("strfry plugin process, failing closed", () => {
  const fixtures: Fixture[] = [];
  const plugins: StrfryPluginProcess[] = [];
  afterAll(async () => {
    for (const p of plugins) await p.stop();
    for (const f of fixtures) {
      f.ledger.close();
      f.tmp.remove();
    }
  });

  it("answers an internal error with reject and error: internal error, logs it on stderr, and keeps serving", async () => {
    const fx = makeFixture();
    fixtures.push(fx);
    const plugin = spawnGatePlugin(fx.configPath, NO_CACHE);
    plugins.push(plugin);
    const a = user();
    expect((await plugin.ask(strfryLine(note(a.sk)))).action).toBe("accept");
    // The operator's database loses the table the plugin reads: a real fault, not a fake.
    fx.ledger.db.exec("ALTER TABLE identities RENAME TO identities_moved");
    const broken = note(a.sk);
    expect(await plugin.ask(strfryLine(broken))).toEqual({ id: broken.id, action: "reject", msg: "error: internal error" });
    expect(await plugin.ask("still not json")).toEqual({ id: "", action: "reject", msg: "invalid: input line is not JSON" });
    fx.ledger.db.exec("ALTER TABLE identities_moved RENAME TO identities");
    const healed = note(a.sk);
    expect(await plugin.ask(strfryLine(healed))).toEqual({ id: healed.id, action: "accept", msg: "" });
    expect(plugin.stderr).toMatch(/policy failed; event rejected/);
    expect(plugin.stderr).toMatch(/no such table: identities/);
    for (const line of plugin.stdoutLines) expect(line).not.toMatch(/stack|SqliteError|no such table/);
  });

  it("rejects with a clear error while the database does not exist, and serves once the service creates it", async () => {
    const fx = makeFixture();
    fixtures.push(fx);
    const missingDb = fx.tmp.file("later/gate.sqlite");
    const raw = { ...gateConfig(missingDb) };
    const configPath = fx.tmp.file("later.json");
    writeFileSync(configPath, JSON.stringify(raw));
    const plugin = spawnGatePlugin(configPath);
    plugins.push(plugin);
    const { sk } = user();
    const ev = note(sk);
    expect(await plugin.ask(strfryLine(ev))).toEqual({ id: ev.id, action: "reject", msg: "error: dvm-gate database not available" });
    expect(plugin.stderr).toMatch(/does not exist yet/);

    const cfg = parseConfig(raw, { baseDir: fx.tmp.path, sourcePath: configPath, env: {} });
    const later = Ledger.open(missingDb, ledgerSettings(cfg), { nowMs: Date.now(), synchronous: "NORMAL" });
    try {
      // The plugin retries opening about once a second; bounded wait, not a timing assertion.
      let last = "";
      for (let i = 0; i < 40 && last !== "accept"; i++) {
        last = (await plugin.ask(strfryLine(note(sk)))).action;
        if (last !== "accept") await new Promise((r) => setTimeout(r, 100));
      }
      expect(last).toBe("accept");
    } finally {
      later.close();
    }
  });

  it("applies a ban within its tier cache's lifetime when the cache is on (the default)", async () => {
    const fx = makeFixture();
    fixtures.push(fx);
    const plugin = spawnGatePlugin(fx.configPath, { DVM_GATE_PLUGIN_CACHE_MS: "200" });
    plugins.push(plugin);
    const a = user();
    expect((await plugin.ask(strfryLine(note(a.sk)))).action).toBe("accept");
    fx.ledger.setBanned(a.pubkey, true, "spam", Date.now());
    // Bounded wait well past the 200 ms lifetime; asserts the outcome, not the timing.
    let last: StrfryAnswerLike = { action: "accept" };
    for (let i = 0; i < 50 && last.action === "accept"; i++) {
      last = await plugin.ask(strfryLine(note(a.sk)));
      if (last.action === "accept") await new Promise((r) => setTimeout(r, 50));
    }
    expect(last.msg).toBe("blocked: this pubkey is banned by the relay operator");
    expect(plugin.stderr).toMatch(/at most every 200 ms per pubkey/);
  });

  it("refuses to guess when DVM_GATE_PLUGIN_CACHE_MS is not a number of milliseconds", async () => {
    const fx = makeFixture();
    fixtures.push(fx);
    const plugin = spawnGatePlugin(fx.configPath, { DVM_GATE_PLUGIN_CACHE_MS: "1s" });
    plugins.push(plugin);
    const ev = note(user().sk);
    expect(await plugin.ask(strfryLine(ev))).toEqual({ id: ev.id, action: "reject", msg: "error: dvm-gate plugin is misconfigured" });
    expect(plugin.stderr).toMatch(/DVM_GATE_PLUGIN_CACHE_MS: expected whole milliseconds/);
  });

  it("rejects every event with a clear error when its config is invalid, and stays up", async () => {
    const fx = makeFixture();
    fixtures.push(fx);
    const configPath = fx.tmp.file("bad.json");
    writeFileSync(configPath, JSON.stringify({ jobs: { kinds: { "1": { priceSats: 1 } } } }));
    const plugin = spawnGatePlugin(configPath);
    plugins.push(plugin);
    for (let i = 0; i < 2; i++) {
      const ev = note(user().sk);
      expect(await plugin.ask(strfryLine(ev))).toEqual({ id: ev.id, action: "reject", msg: "error: dvm-gate plugin is misconfigured" });
    }
    expect(plugin.stderr).toMatch(/jobs\.kinds/);
    expect(plugin.child.exitCode).toBeNull();
  });
});
