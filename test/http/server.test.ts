// The HTTP server end to end: a real ledger on a temp SQLite file, the real server on
// 127.0.0.1:0, global fetch, NIP-98 tokens signed with real keys.
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nip19 } from "nostr-tools";
import { pino } from "pino";
import { generateSecretKey, getPublicKey } from "nostr-tools/pure";
import { grantSigner } from "../../src/events/grant-event.js";
import { startHttpServer } from "../../src/http/server.js";
import { authHeader, hex64, SAT, signAuthEvent, snapshotTables, startHarness, type Harness } from "./harness.js";

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.stop();
});

// Response bodies have several shapes; the assertions below are what check them.
async function json(res: Response): Promise<any> {
  return res.json();
}

function nowSec(): number {
  return Math.floor(Date.now() / 1000);
}

/** GET /estimate with a token signed by `sk` for exactly the URL requested. */
async function estimateAs(sk: Uint8Array, query: string): Promise<Response> {
  const url = `${h.server.url}/estimate${query}`;
  return fetch(url, { headers: { authorization: authHeader(signAuthEvent(sk, { url })) } });
}

describe("GET /healthz", () => {
  it("answers ok with the pool totals", async () => {
    const res = await fetch(`${h.server.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({
      ok: true,
      pool: { initialMsats: 10_000 * SAT, creditedMsats: 0, absorbedMsats: 0, pendingMsats: 0, poolMsats: 10_000 * SAT },
    });
  });
});

describe("routing", () => {
  it("answers an unknown path with 404 JSON and another method with 405", async () => {
    const missing = await fetch(`${h.server.url}/nope?x=1`);
    expect(missing.status).toBe(404);
    expect((await json(missing)).error).toMatch(/no such endpoint/);
    for (const method of ["POST", "DELETE", "PUT"]) {
      const res = await fetch(`${h.server.url}/healthz`, { method });
      expect(res.status).toBe(405);
      expect(res.headers.get("allow")).toBe("GET");
      expect((await json(res)).error).toMatch(new RegExp(`method ${method} not allowed`));
    }
  });

  it("refuses to start on a port that is taken, with one clear message", async () => {
    const port = Number(new URL(h.server.url).port);
    const cfg = { ...h.cfg, http: { ...h.cfg.http, port } };
    await expect(startHttpServer({ cfg, ledger: h.ledger, log: pino({ level: "silent" }), metrics: h.metrics, gatePubkey: h.gatePubkey })).rejects.toThrow(
      `http: cannot listen on 127.0.0.1:${port}: EADDRINUSE`,
    );
  });
});

describe("GET /metrics", () => {
  it("exposes our counters and gauges with their values, pool gauges read at scrape time", async () => {
    h.metrics.decision("free");
    h.metrics.decision("free");
    h.metrics.decision("gate");
    h.metrics.replyPublished("ws://relay.one", true);
    h.metrics.replyPublished("ws://relay.one", false);
    h.metrics.grant(7 * SAT);
    h.metrics.relayConnected("ws://relay.one", true);
    h.metrics.relayConnected("ws://relay.two", false);
    const res = await fetch(`${h.server.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const value = (series: string) => {
      const line = text.split("\n").find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    expect(value('dvm_gate_decisions_total{outcome="free"}')).toBe(2);
    expect(value('dvm_gate_decisions_total{outcome="gate"}')).toBe(1);
    expect(value('dvm_gate_decisions_total{outcome="ignored"}')).toBe(0);
    expect(value('dvm_gate_replies_published_total{relay="ws://relay.one",result="ok"}')).toBe(1);
    expect(value('dvm_gate_replies_published_total{relay="ws://relay.one",result="failed"}')).toBe(1);
    expect(value("dvm_gate_grants_total")).toBe(1);
    expect(value("dvm_gate_grant_absorbed_msats_total")).toBe(7000);
    expect(value('dvm_gate_relay_connected{relay="ws://relay.one"}')).toBe(1);
    expect(value('dvm_gate_relay_connected{relay="ws://relay.two"}')).toBe(0);
    const t = h.ledger.totals();
    expect(value("dvm_gate_pool_balance_msats")).toBe(t.poolMsats);
    expect(value("dvm_gate_pool_initial_msats")).toBe(10_000 * SAT);
    expect(value("dvm_gate_pool_pending_msats")).toBe(t.pendingMsats);
    expect(value('dvm_gate_http_requests_total{route="/healthz",status="2xx"}')).toBeGreaterThanOrEqual(1);
  });
});

describe("GET /estimate", () => {
  const elite = generateSecretKey();
  const established = generateSecretKey();
  const newcomer = generateSecretKey();
  const banned = generateSecretKey();

  beforeAll(() => {
    const now = Date.now();
    h.ledger.setTier(getPublicKey(elite), "elite", now);
    h.ledger.setTier(getPublicKey(established), "established", now);
    h.ledger.setBanned(getPublicKey(banned), true, "test", now);
  });

  it("refuses a request without Authorization with 401 JSON", async () => {
    const res = await fetch(`${h.server.url}/estimate?kind=5050`);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe("Nostr");
    expect((await json(res)).error).toMatch(/^unauthorized: missing Authorization header/);
  });

  it("refuses tokens for another URL, another method, a stale one and a bad signature with 401", async () => {
    const url = `${h.server.url}/estimate?kind=5050`;
    const cases: [string, string, RegExp][] = [
      ["other URL", authHeader(signAuthEvent(elite, { url: `${h.server.url}/estimate?kind=5100` })), /u tag must be exactly/],
      ["other method", authHeader(signAuthEvent(elite, { url, method: "POST" })), /method tag must be GET/],
      ["stale", authHeader(signAuthEvent(elite, { url, createdAtSec: nowSec() - 600 })), /created_at must be within 60 s/],
      ["bad signature", authHeader({ ...signAuthEvent(elite, { url }), content: "changed after signing" }), /id or signature is invalid/],
    ];
    for (const [name, authorization, reason] of cases) {
      const res = await fetch(url, { headers: { authorization } });
      expect(res.status, name).toBe(401);
      const body = await json(res);
      expect(body.error, name).toMatch(reason);
      expect(JSON.stringify(body), name).not.toMatch(/\n\s+at /);
    }
  });

  it("estimates free for an elite pubkey, gate for a new one, partial past a budget, blocked for a ban — and writes nothing", async () => {
    const before = snapshotTables(h.ledger);
    const pool = h.ledger.totals().poolMsats;

    const free = await estimateAs(elite, "?kind=5050");
    expect(free.status).toBe(200);
    expect(await json(free)).toEqual({
      kind: 5050,
      pubkey: getPublicKey(elite),
      priceMsats: 10 * SAT,
      tier: "elite",
      budgetMsats: 1000 * SAT,
      usedMsats: 0,
      poolMsats: pool,
      pendingCount: 0,
      maxPendingPerPubkey: 3,
      balanceMsats: 0,
      fromBalanceMsats: 0,
      decision: "free",
      absorbMsats: 10 * SAT,
      chargeMsats: 0,
    });

    const gate = await json(await estimateAs(newcomer, "?kind=5050"));
    expect(gate).toMatchObject({ tier: "new", budgetMsats: 0, decision: "gate", absorbMsats: 0, chargeMsats: 10 * SAT, reason: "no_budget" });

    const partial = await json(await estimateAs(established, "?kind=5100"));
    expect(partial).toMatchObject({ tier: "established", priceMsats: 100 * SAT, decision: "partial", absorbMsats: 50 * SAT, chargeMsats: 50 * SAT });

    const blocked = await json(await estimateAs(banned, "?kind=5050"));
    expect(blocked).toMatchObject({ decision: "blocked", absorbMsats: 0, chargeMsats: 0, reason: "blocked" });

    // The same estimate twice gives the same answer: nothing was reserved the first time.
    expect((await json(await estimateAs(elite, "?kind=5050"))).decision).toBe("free");
    expect(snapshotTables(h.ledger)).toEqual(before);
  });

  it("counts the customer's spending: partial once a real reservation used most of the budget", async () => {
    const sk = generateSecretKey();
    const pk = getPublicKey(sk);
    const now = Date.now();
    h.ledger.setTier(pk, "established", now); // 50 sats/day
    const d = h.ledger.decide({ requestId: hex64(0xe57), pubkey: pk, kind: 5050, priceMsats: 45 * SAT }, now);
    expect(d.request.decision).toBe("free");
    const est = await json(await estimateAs(sk, "?kind=5050"));
    expect(est).toMatchObject({ usedMsats: 45 * SAT, pendingCount: 1, decision: "partial", absorbMsats: 5 * SAT, chargeMsats: 5 * SAT });
    h.ledger.fail(hex64(0xe57), "test cleanup", Date.now());
  });

  it("answers an unknown, missing or repeated kind with 400 and a clear message", async () => {
    const unknown = await estimateAs(elite, "?kind=5999");
    expect(unknown.status).toBe(400);
    expect((await json(unknown)).error).toBe("kind 5999 is not served here; served job kinds: 5050, 5100");
    const missing = await estimateAs(elite, "");
    expect(missing.status).toBe(400);
    expect((await json(missing)).error).toMatch(/query parameter kind is required/);
    const repeated = await estimateAs(elite, "?kind=5050&kind=5100");
    expect(repeated.status).toBe(400);
    const junk = await estimateAs(elite, "?kind=50x");
    expect((await json(junk)).error).toBe('kind must be a whole number, got "50x"');
  });
});

describe("GET /estimate behind a proxy (publicBaseUrl)", () => {
  it("checks the u tag against the public base URL, not the Host header", async () => {
    const cfg = { ...h.cfg, http: { ...h.cfg.http, port: 0 } };
    const proxied = await startHttpServer({
      cfg,
      ledger: h.ledger,
      log: pino({ level: "silent" }),
      metrics: h.metrics,
      gatePubkey: h.gatePubkey,
      publicBaseUrl: "https://gate.example.com/",
    });
    try {
      const sk = generateSecretKey();
      const path = "/estimate?kind=5050";
      const publicToken = authHeader(signAuthEvent(sk, { url: `https://gate.example.com${path}` }));
      const ok = await fetch(`${proxied.url}${path}`, { headers: { authorization: publicToken } });
      expect(ok.status).toBe(200);
      expect((await json(ok)).pubkey).toBe(getPublicKey(sk));
      const hostToken = authHeader(signAuthEvent(sk, { url: `${proxied.url}${path}` }));
      const refused = await fetch(`${proxied.url}${path}`, { headers: { authorization: hostToken } });
      expect(refused.status).toBe(401);
      expect((await json(refused)).error).toContain("u tag must be exactly https://gate.example.com/estimate?kind=5050");
    } finally {
      await proxied.close();
    }
  });
});

describe("GET / (operator page)", () => {
  it("shows a settled job's grant row, decision counts and budgets, under a hash-pinned CSP", async () => {
    h.setGrantSigner(grantSigner(h.gateSecretKey));
    const customer = getPublicKey(generateSecretKey());
    const now = Date.now();
    h.ledger.setTier(customer, "trusted", now);
    const requestId = hex64(0x9a9e);
    expect(h.ledger.decide({ requestId, pubkey: customer, kind: 5050, priceMsats: 10 * SAT }, now).request.decision).toBe("free");
    const settled = h.ledger.settle(requestId, {}, now + 1000);
    if (settled.status !== "posted" || !settled.grant?.eventId) throw new Error("expected a signed grant");

    const res = await fetch(`${h.server.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const html = await res.text();
    const npub = nip19.npubEncode(customer);
    const row = html.split("\n").find((l) => l.includes(`${npub.slice(0, 12)}…${npub.slice(-6)}`));
    expect(row).toBeDefined();
    expect(row).toContain(`<td class="n">${settled.grant.seq}</td>`);
    expect(row).toContain("<td>free</td>");
    expect(row).toContain('<td class="n">10 sats</td>');
    expect(row).toContain("<td>trusted</td>");
    expect(row).toContain(`${settled.grant.eventId.slice(0, 8)}…`);
    expect(html).toContain(nip19.npubEncode(h.gatePubkey));
    expect(html).toMatch(/<tr><td>elite<\/td><td class="n">1000 sats\/day<\/td><\/tr>/);
    expect(html).toMatch(/<polyline points="[^"]+"/);
    expect(html).toContain("reserved 10 sats (trusted)");
    // Decisions from the ledger: this test's free request at least; error/ignored only since start.
    expect(html).toMatch(/<tr><td>free<\/td><td class="n"[^>]*>[1-9]\d*<\/td><td class="n"[^>]*>[1-9]\d*<\/td><td class="n">2<\/td><\/tr>/);

    const style = /<style>([\s\S]*?)<\/style>/.exec(html)?.[1] ?? "";
    const hash = createHash("sha256").update(style, "utf8").digest("base64");
    expect(res.headers.get("content-security-policy")).toContain(`style-src 'sha256-${hash}'`);
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(html).not.toMatch(/<script|src=|href=/i);
  });

  it("escapes a hostile string stored in the ledger", async () => {
    const hostile = `"><script>alert(1)</script><img src=x onerror=alert(2)>`;
    // A signer that implements the interface but returns a hostile event id.
    h.setGrantSigner(() => ({ id: hostile, json: "{}" }));
    const customer = getPublicKey(generateSecretKey());
    const now = Date.now();
    h.ledger.setTier(customer, "elite", now);
    const requestId = hex64(0xbad);
    h.ledger.decide({ requestId, pubkey: customer, kind: 5050, priceMsats: 10 * SAT }, now);
    const settled = h.ledger.settle(requestId, {}, now + 1000);
    expect(settled.status === "posted" && settled.grant?.eventId).toBe(hostile);
    h.setGrantSigner(grantSigner(h.gateSecretKey));

    const html = await (await fetch(`${h.server.url}/`)).text();
    expect(html).not.toContain("<script");
    expect(html).not.toContain("<img");
    expect(html).toContain("&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;");
  });
});

describe("when the database stops answering", () => {
  it("healthz and metrics answer 503 without a stack trace and the error is logged", async () => {
    const own = await startHarness();
    try {
      own.ledger.close();
      const health = await fetch(`${own.server.url}/healthz`);
      expect(health.status).toBe(503);
      const body = await health.text();
      expect(JSON.parse(body)).toEqual({ ok: false, error: "database unavailable" });
      const metrics = await fetch(`${own.server.url}/metrics`);
      expect(metrics.status).toBe(503);
      const page = await fetch(`${own.server.url}/`);
      expect(page.status).toBe(500);
      const pageBody = await page.text();
      expect(JSON.parse(pageBody)).toEqual({ error: "internal error" });
      expect(body + pageBody).not.toMatch(/\bat .*\.(ts|js):\d+/);
      const logged = own.logLines();
      expect(logged.some((l) => l.msg === "healthz: database did not answer" && l.level === 40)).toBe(true);
      expect(logged.some((l) => l.msg === "http: request failed" && l.level === 50 && l.path === "/")).toBe(true);
    } finally {
      await own.stop();
    }
  });
});
