// `dvm-gate request` (the customer) and the demo worker, end to end over a real relay:
// a scripted gate signs the feedback, the real demo worker answers the go signal, and
// the real executable publishes the request and prints what comes back.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { nip19 } from "nostr-tools";
import { AbstractRelay } from "nostr-tools/abstract-relay";
import { finalizeEvent, generateSecretKey, getPublicKey, verifyEvent, type Event } from "nostr-tools/pure";
import { WebSocket } from "ws";
import { pino } from "pino";
import { startEmbeddedRelay, type EmbeddedRelay } from "../../src/peers/embedded-relay.js";
import { startDemoWorker, DEMO_PREFIX, demoOutput } from "../../src/peers/demo-worker.js";
import { signJobRequest } from "../../src/events/job-request.js";
import { makeTmpDir } from "../helpers/tmp.js";
import { runDvmGate } from "../audit/cli-run.js";
import { startScriptedGate, type ScriptedGate } from "./scripted-gate.js";

const tmp = makeTmpDir("dvm-gate-request-");
const log = pino({ level: "silent" });
const BOLT11 = "lnbcrt100n1pjtestinvoicexyz";
let relay: EmbeddedRelay;
let gate: ScriptedGate;
let worker: { close(): Promise<void> };

beforeAll(async () => {
  relay = await startEmbeddedRelay();
  gate = await startScriptedGate(relay.url, (tags) => {
    const input = tags.find((t) => t[0] === "i")?.[1] ?? "";
    if (input === "pay me") return [{ status: "payment-required", info: "pay to run this job", amountMsats: 10_000, bolt11: BOLT11 }];
    if (input === "silence") return [];
    if (input === "fail") return [{ status: "error", info: "invalid: the gate does not like this input" }];
    return [{ status: "processing", info: "free: paid by the generosity pool", freeTier: ["free", "10000", "0"] }];
  });
  // The demo's worker holds the gate's own key (the default worker is the gate).
  worker = await startDemoWorker({ relayUrls: [relay.url], secretKey: gate.secretKey, gatePubkey: gate.pubkey, kinds: [5050], log });
});
afterAll(async () => {
  await worker.close();
  gate.close();
  await relay.close();
  tmp.remove();
});

const request = (...args: string[]) => runDvmGate(["request", "--relay", relay.url, "--gate", nip19.npubEncode(gate.pubkey), ...args], { cwd: tmp.path });
const jsonLines = (s: string) =>
  s
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, any>);

describe("dvm-gate request", () => {
  it("publishes a signed request for the gate and prints the free decision and the demo result (--json)", async () => {
    const out = await request("--input", "hello world", "--param", "model=tiny", "--bid", "25", "--json");
    expect(out.stderr).toBe("");
    expect(out.code).toBe(0);
    const [req, ...replies] = jsonLines(out.stdout);
    expect(req).toMatchObject({ type: "request", kind: 5050, gate: gate.pubkey, throwawayKey: true });
    expect(replies.map((r) => r.type)).toEqual(["feedback", "result"]);
    expect(replies[0]).toMatchObject({ status: "processing", freeTier: { label: "free", absorbedMsats: 10_000, chargeMsats: 0 }, pubkey: gate.pubkey });
    expect(replies[1]).toMatchObject({ status: "result", kind: 6050, content: demoOutput(["hello world"]) });
    expect(replies[1]!.content).toBe(DEMO_PREFIX + "dlrow olleh");

    const seen = gate.requests.find((r) => r.event.id === req!.id)!;
    expect(verifyEvent(seen.event)).toBe(true);
    expect(seen.event.pubkey).toBe(req!.customer);
    expect(seen.event.tags).toEqual(
      expect.arrayContaining([
        ["i", "hello world", "text"],
        ["param", "model", "tiny"],
        ["bid", "25000"],
        ["p", gate.pubkey],
        ["relays", relay.url],
      ]),
    );
  });

  it("stops at the invoice with --until-status and prints the bolt11 on its own line", async () => {
    const out = await request("--input", "pay me", "--until-status", "payment-required", "--wait", "10");
    expect(out.code).toBe(0);
    const lines = out.stdout.split("\n");
    expect(lines).toContain(BOLT11);
    expect(out.stdout).toMatch(/^payment-required: pay to run this job$/m);
    expect(out.stdout).toMatch(/amount: 10000 msats/);
  });

  it("stops at an error status by default and exits 0 (the reply was delivered)", async () => {
    const out = await request("--input", "fail", "--json", "--wait", "10");
    expect(out.code).toBe(0);
    expect(jsonLines(out.stdout).at(-1)).toMatchObject({ type: "feedback", status: "error", statusInfo: "invalid: the gate does not like this input" });
  });

  for (const scheme of ["nip04", "nip44"] as const)
    it(`encrypts the job to the gate with ${scheme} and decrypts the replies`, async () => {
      const sk = generateSecretKey();
      const out = await request("--input", "secret text", "--encrypt", scheme, "--key", nip19.nsecEncode(sk), "--json", "--wait", "10");
      expect(out.code).toBe(0);
      const [req, fb, result] = jsonLines(out.stdout);
      expect(req).toMatchObject({ customer: getPublicKey(sk), throwawayKey: false });
      const seen = gate.requests.find((r) => r.event.id === req!.id)!;
      expect(seen.scheme).toBe(scheme);
      expect(seen.event.tags.some((t) => t[0] === "i")).toBe(false);
      expect(seen.jobTags).toEqual([["i", "secret text", "text"]]);
      expect(fb).toMatchObject({ type: "feedback", status: "processing", encrypted: true });
      expect(result).toMatchObject({ type: "result", encrypted: true, content: demoOutput(["secret text"]) });
    });

  it("addresses the demo's gate when there is no config file and no --gate", async () => {
    const demoDir = tmp.file("demo-cwd");
    mkdirSync(join(demoDir, "data"), { recursive: true });
    writeFileSync(join(demoDir, "data", "gate-key.hex"), Buffer.from(gate.secretKey).toString("hex") + "\n");
    const out = await runDvmGate(["request", "--relay", relay.url, "--input", "demo default", "--json", "--wait", "10"], { cwd: demoDir });
    expect(out.code).toBe(0);
    const [req] = jsonLines(out.stdout);
    expect(req).toMatchObject({ gate: gate.pubkey });
    expect(gate.requests.some((r) => r.event.id === req!.id)).toBe(true);
  });

  it("exits 1 naming the wait when nothing arrives in time", async () => {
    const out = await request("--input", "silence", "--wait", "1");
    expect(out.code).toBe(1);
    expect(out.stderr.trim()).toBe("dvm-gate: waited 1 s without a result, error or success (0 replies)");
  });

  it("exits 1 with the relay's own message when the relay refuses the request", async () => {
    const strict = await startEmbeddedRelay({
      plugins: [{ beforeHandleEvent: (e: Event) => ({ canHandle: e.kind !== 5050, message: "blocked: no jobs here" }) } as never],
    });
    try {
      const out = await runDvmGate(["request", "--relay", strict.url, "--gate", gate.pubkey, "--input", "x"], { cwd: tmp.path });
      expect(out.code).toBe(1);
      expect(out.stderr.trim().split("\n")).toHaveLength(1);
      expect(out.stderr).toMatch(/refused the request: blocked: no jobs here/);
    } finally {
      await strict.close();
    }
  });

  it("exits 1 with one line when the relay cannot be reached", async () => {
    const out = await runDvmGate(["request", "--relay", "ws://127.0.0.1:1", "--gate", gate.pubkey, "--input", "x"], { cwd: tmp.path });
    expect(out.code).toBe(1);
    expect(out.stderr.trim()).toMatch(/^dvm-gate: cannot connect to ws:\/\/127\.0\.0\.1:1/);
  });

  it("answers bad input with one line and exit 2, publishing nothing", async () => {
    const before = gate.requests.length;
    const cases: [string[], RegExp][] = [
      [["--gate", "npub1nope"], /--gate: not a pubkey/],
      [["--kind", "42"], /--kind: expected a whole number from 5000 to 5999, got "42"/],
      [["--param", "novalue"], /--param expects K=V/],
      [["--encrypt", "rot13"], /--encrypt expects nip04 or nip44/],
      [["--wait", "0"], /--wait: expected a whole number from 1 to 3600, got "0"/],
      [["--until-status", "done"], /--until-status expects a comma-separated list/],
      [["--bid", "1.5"], /--bid: expected a whole number of sats from 0 to 1000000000000, got "1.5"/],
      [["--key", "nsec1bad"], /--key expects an nsec or 64 hex/],
      [["--relay", "https://relay.example.com"], /--relay expects a ws:\/\/ or wss:\/\/ URL/],
    ];
    for (const [args, msg] of cases) {
      const out = await request("--input", "x", ...args);
      expect(out.code, args.join(" ")).toBe(2);
      expect(out.stderr.trim().split("\n")).toHaveLength(1);
      expect(out.stderr).toMatch(msg);
    }
    const noGate = await runDvmGate(["request", "--relay", relay.url], { cwd: tmp.path });
    expect(noGate.code).toBe(2);
    expect(noGate.stderr).toMatch(/no gate: pass --gate/);
    const cfgPath = tmp.file("no-relays.json");
    writeFileSync(cfgPath, JSON.stringify({ nostr: { relays: [] } }));
    const noRelay = await runDvmGate(["request", "--config", cfgPath, "--gate", gate.pubkey], { cwd: tmp.path });
    expect(noRelay.code).toBe(2);
    expect(noRelay.stderr).toMatch(/no relay: pass --relay/);
    expect(gate.requests.length).toBe(before);
  });
});

describe("demo worker", () => {
  let conn: AbstractRelay;
  const results: Event[] = [];
  beforeAll(async () => {
    conn = new AbstractRelay(relay.url, { verifyEvent, websocketImplementation: WebSocket as never });
    await conn.connect({ timeout: 5000 });
    conn.subscribe([{ kinds: [6050, 6100] }], { onevent: (e) => results.push(e) });
  });
  afterAll(() => conn.close());

  const until = async (cond: () => boolean, ms = 10_000) => {
    for (let t = 0; t < ms && !cond(); t += 50) await new Promise((r) => setTimeout(r, 50));
    return cond();
  };
  const processing = (requestId: string, customer: string, sk: Uint8Array = gate.secretKey) =>
    finalizeEvent(
      {
        kind: 7000,
        created_at: Math.floor(Date.now() / 1000),
        tags: [
          ["status", "processing", "go"],
          ["e", requestId],
          ["p", customer],
        ],
        content: "",
      },
      sk,
    );

  it("answers the gate's processing feedback once with a signed NIP-90 result", async () => {
    const customerSk = generateSecretKey();
    const req = signJobRequest(
      { kind: 5050, gatePubkey: gate.pubkey, inputs: [["i", "abc", "text"]], createdAtSec: Math.floor(Date.now() / 1000) },
      customerSk,
    );
    // The scripted gate sees a request with input "abc" and answers processing itself;
    // a second, hand-published go signal for the same request must not be answered again.
    await conn.publish(req);
    expect(await until(() => results.some((r) => r.tags.some((t) => t[0] === "e" && t[1] === req.id)))).toBe(true);
    await conn.publish(processing(req.id, req.pubkey));
    // The control: a go signal sent after the repeated one. The worker judges each go
    // signal as it arrives, in the relay's order, so once the control is answered the
    // repeat was judged too.
    const control = signJobRequest(
      { kind: 5050, gatePubkey: getPublicKey(generateSecretKey()), inputs: [["i", "ctl", "text"]], createdAtSec: Math.floor(Date.now() / 1000) },
      customerSk,
    );
    await conn.publish(control);
    await conn.publish(processing(control.id, control.pubkey));
    expect(await until(() => results.some((r) => r.tags.some((t) => t[0] === "e" && t[1] === control.id)))).toBe(true);
    const mine = results.filter((r) => r.tags.some((t) => t[0] === "e" && t[1] === req.id));
    expect(mine).toHaveLength(1);
    const res = mine[0]!;
    expect(verifyEvent(res)).toBe(true);
    expect(res.pubkey).toBe(gate.pubkey);
    expect(res.kind).toBe(6050);
    expect(res.content).toBe(DEMO_PREFIX + "cba");
    expect(res.tags).toEqual(
      expect.arrayContaining([
        ["p", req.pubkey],
        ["i", "abc", "text"],
      ]),
    );
    expect(JSON.parse(res.tags.find((t) => t[0] === "request")![1]!)).toEqual(JSON.parse(JSON.stringify(req)));
    expect(res.tags.find((t) => t[0] === "e")?.[1]).toBe(req.id);
  });

  it("ignores processing feedback signed by anyone but the gate, and kinds it does not serve", async () => {
    const customerSk = generateSecretKey();
    const otherGate = generateSecretKey();
    // Addressed to another gate, so the scripted gate stays silent; only hand-made go signals.
    const req = signJobRequest(
      { kind: 5050, gatePubkey: getPublicKey(otherGate), inputs: [["i", "zzz", "text"]], createdAtSec: Math.floor(Date.now() / 1000) },
      customerSk,
    );
    const req5100 = signJobRequest(
      { kind: 5100, gatePubkey: gate.pubkey, inputs: [["i", "img", "text"]], createdAtSec: Math.floor(Date.now() / 1000) },
      customerSk,
    );
    await conn.publish(req);
    await conn.publish(req5100);
    await conn.publish(processing(req.id, req.pubkey, otherGate));
    await conn.publish(processing(req5100.id, req5100.pubkey));
    // The control: the real gate's go signal for another request, sent after the two
    // that must be ignored; once it is answered, those two were judged.
    const control = signJobRequest(
      { kind: 5050, gatePubkey: getPublicKey(otherGate), inputs: [["i", "ctl", "text"]], createdAtSec: Math.floor(Date.now() / 1000) },
      customerSk,
    );
    await conn.publish(control);
    await conn.publish(processing(control.id, control.pubkey));
    expect(await until(() => results.some((r) => r.tags.some((t) => t[0] === "e" && t[1] === control.id)))).toBe(true);
    expect(results.some((r) => r.tags.some((t) => t[0] === "e" && (t[1] === req.id || t[1] === req5100.id)))).toBe(false);
    // And the real gate's go signal for the first request is answered.
    await conn.publish(processing(req.id, req.pubkey));
    expect(await until(() => results.some((r) => r.tags.some((t) => t[0] === "e" && t[1] === req.id)))).toBe(true);
    expect(results.some((r) => r.tags.some((t) => t[0] === "e" && t[1] === req5100.id))).toBe(false);
  });

  it("restarted, does not answer again the go signals its start-up look-back replays", async () => {
    const answeredBefore = new Set(results.flatMap((r) => r.tags.filter((t) => t[0] === "e").map((t) => t[1]!)));
    expect(answeredBefore.size).toBeGreaterThan(0);
    // A restart of `start`: the same key, the same relay, go signals of the last minute replayed.
    await worker.close();
    worker = await startDemoWorker({ relayUrls: [relay.url], secretKey: gate.secretKey, gatePubkey: gate.pubkey, kinds: [5050], log });
    // The control: a go signal after the replayed ones, answered by the new worker.
    const customerSk = generateSecretKey();
    const control = signJobRequest(
      { kind: 5050, gatePubkey: getPublicKey(generateSecretKey()), inputs: [["i", "ctl2", "text"]], createdAtSec: Math.floor(Date.now() / 1000) },
      customerSk,
    );
    await conn.publish(control);
    await conn.publish(processing(control.id, control.pubkey));
    expect(await until(() => results.some((r) => r.tags.some((t) => t[0] === "e" && t[1] === control.id)))).toBe(true);
    for (const id of answeredBefore)
      expect(
        results.filter((r) => r.tags.some((t) => t[0] === "e" && t[1] === id)),
        id,
      ).toHaveLength(1);
  });
});
