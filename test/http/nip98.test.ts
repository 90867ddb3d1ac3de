// NIP-98 checks on real signed kind 27235 events, one broken property at a time.
import { describe, expect, it } from "vitest";
import { finalizeEvent, generateSecretKey, getPublicKey } from "nostr-tools/pure";
import { getToken } from "nostr-tools/nip98";
import { checkNip98 } from "../../src/http/nip98.js";
import { authHeader, signAuthEvent } from "./harness.js";

const URL_ = "http://127.0.0.1:8080/estimate?kind=5050";
const NOW_MS = 1_750_000_000_000;
const NOW_SEC = NOW_MS / 1000;
const sk = generateSecretKey();
const pk = getPublicKey(sk);
const expected = { url: URL_, method: "GET", nowMs: NOW_MS };

async function reasonFor(header: string | undefined): Promise<string> {
  const r = await checkNip98(header, expected);
  if (r.ok) throw new Error("expected a refusal");
  return r.reason;
}

describe("checkNip98", () => {
  it("accepts a fresh event signed for this URL and method, and names its signer", async () => {
    const r = await checkNip98(authHeader(signAuthEvent(sk, { url: URL_, createdAtSec: NOW_SEC })), expected);
    expect(r).toMatchObject({ ok: true, pubkey: pk });
  });

  it("accepts a token made by nostr-tools' own getToken (lower-case method, scheme included)", async () => {
    const header = await getToken(URL_, "get", (e) => finalizeEvent(e, sk), true);
    const r = await checkNip98(header, { ...expected, nowMs: Date.now() });
    expect(r.ok).toBe(true);
  });

  it("accepts created_at up to 60 s either side and refuses 61 s", async () => {
    for (const skew of [-60, 60]) {
      expect((await checkNip98(authHeader(signAuthEvent(sk, { url: URL_, createdAtSec: NOW_SEC + skew })), expected)).ok).toBe(true);
    }
    for (const skew of [-61, 61, -3600]) {
      expect(await reasonFor(authHeader(signAuthEvent(sk, { url: URL_, createdAtSec: NOW_SEC + skew })))).toMatch(/created_at must be within 60 s/);
    }
  });

  it("refuses a missing header, another scheme and a token that is not base64 JSON", async () => {
    expect(await reasonFor(undefined)).toMatch(/missing Authorization/);
    expect(await reasonFor("")).toMatch(/missing Authorization/);
    expect(await reasonFor("Bearer abc")).toMatch(/scheme must be `Nostr`/);
    expect(await reasonFor("Nostr !!!not-base64!!!")).toMatch(/not base64 of a JSON Nostr event/);
    expect(await reasonFor(`Nostr ${Buffer.from("[1,2,3]").toString("base64")}`)).toMatch(/not base64 of a JSON/);
    expect(await reasonFor(`Nostr ${Buffer.from('{"kind":27235}').toString("base64")}`)).toMatch(/id or signature is invalid/);
    expect(await reasonFor(`Nostr ${"A".repeat(9000)}`)).toMatch(/longer than 8192/);
  });

  it("refuses a token for another URL, including another query string", async () => {
    expect(await reasonFor(authHeader(signAuthEvent(sk, { url: "http://127.0.0.1:8080/estimate?kind=5100", createdAtSec: NOW_SEC })))).toMatch(
      /u tag must be exactly http:\/\/127\.0\.0\.1:8080\/estimate\?kind=5050/,
    );
    expect(await reasonFor(authHeader(signAuthEvent(sk, { url: "https://127.0.0.1:8080/estimate?kind=5050", createdAtSec: NOW_SEC })))).toMatch(/u tag/);
  });

  it("refuses another method, a method tag without a value and another kind", async () => {
    expect(await reasonFor(authHeader(signAuthEvent(sk, { url: URL_, method: "POST", createdAtSec: NOW_SEC })))).toMatch(/method tag must be GET/);
    const noValue = finalizeEvent({ kind: 27235, created_at: NOW_SEC, tags: [["u", URL_], ["method"]], content: "" }, sk);
    expect(await reasonFor(authHeader(noValue))).toMatch(/method tag must be GET/);
    expect(await reasonFor(authHeader(signAuthEvent(sk, { url: URL_, kind: 1, createdAtSec: NOW_SEC })))).toMatch(/kind must be 27235/);
  });

  it("refuses a bad signature and an event changed after signing", async () => {
    const ev = signAuthEvent(sk, { url: URL_, createdAtSec: NOW_SEC });
    const flipped = ev.sig.slice(0, -1) + (ev.sig.endsWith("0") ? "1" : "0");
    expect(await reasonFor(authHeader({ ...ev, sig: flipped }))).toMatch(/signature is invalid/);
    // Someone else's valid event with our pubkey pasted in: the id no longer matches.
    const other = signAuthEvent(generateSecretKey(), { url: URL_, createdAtSec: NOW_SEC });
    expect(await reasonFor(authHeader({ ...other, pubkey: pk }))).toMatch(/signature is invalid/);
  });
});
