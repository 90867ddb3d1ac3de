// SPEC §11 `http` and `exec` backends end to end: a customer's request on a real relay,
// the gate's decision, the backend (an HTTP server and programs in their own
// processes), and the gate's signed result or error, with the ledger exact.
import { readFileSync, rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmbeddedRelay, type EmbeddedRelay } from "../../src/peers/embedded-relay.js";
import { devPay } from "../../src/payments/dev.js";
import { finalizeEvent } from "nostr-tools/pure";
import { jobRequestTemplate } from "../../src/events/job-request.js";
import { decryptFrom } from "../../src/events/encryption.js";
import { getJob } from "../../src/ledger/job-store.js";
import { waitFor, type Gate, type Customer } from "../e2e/harness.js";
import { backendGate, customerOf, execCommand, startBackendServer, waitResult } from "./harness.js";
import type { ChildHandle } from "../helpers/service-process.js";

const PRICE_SATS = 2;

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("http and exec backends", () => {
  let relay: EmbeddedRelay;
  let server: ChildHandle & { url: string };
  let gate: Gate;
  let alice: Customer;

  beforeAll(async () => {
    relay = await startEmbeddedRelay();
    server = await startBackendServer();
    const http = (route: string) => ({ priceSats: PRICE_SATS, backend: { type: "http", url: `${server.url}${route}` } });
    const exec = (...args: string[]) => ({ priceSats: PRICE_SATS, backend: { type: "exec", command: execCommand(...args) } });
    gate = await backendGate(
      relay.url,
      {
        "5100": http("/ok"),
        "5101": http("/status"),
        "5102": http("/slow"),
        "5103": http("/oversize"),
        "5104": http("/garbage"),
        "5200": exec("ok"),
        "5201": exec("fail"),
        "5202": exec("sleep", gateTmpPidFile()),
        "5203": exec("oversize"),
        "5204": exec("garbage"),
      },
      { timeoutSec: 3 },
    );
    alice = await customerOf(gate, relay.url, "elite");
  });
  afterAll(async () => {
    alice?.close();
    await gate?.stop();
    gate?.tmp.remove();
    await server?.kill();
    await relay?.close();
    rmSync(gateTmpPidFile(), { force: true });
  });

  // The sleeping exec program writes its pid here (checked by the cancellation test).
  function gateTmpPidFile(): string {
    return `/tmp/dvm-gate-exec-sleep-${process.pid}.pids`;
  }

  async function expectVoided(kind: number, reasonPart: string): Promise<void> {
    const before = gate.ledger.totals();
    const req = alice.request(gate.pubkey, { kind, input: "hello" });
    await alice.publish(req);
    await alice.waitFeedback(req.id, "processing");
    const err = await alice.waitFeedback(req.id, "error", 10_000);
    expect(err.text).toContain(reasonPart);
    expect(gate.ledger.getRequest(req.id)!.state).toBe("failed");
    const after = gate.ledger.totals();
    expect(after.poolMsats).toBe(before.poolMsats);
    expect(after.pendingMsats).toBe(before.pendingMsats);
    expect(after.absorbedMsats).toBe(before.absorbedMsats);
    expect(gate.verify()).toEqual([]);
  }

  it("http: a 200 {content, costMsats} becomes the gate's signed result, and the cost settles the grant", async () => {
    const req = alice.request(gate.pubkey, { kind: 5100, input: "hello", tags: [["param", "cost", "1500"]] });
    await alice.publish(req);
    const result = await waitResult(relay.url, gate.pubkey, req);
    expect(result.content).toBe("http:olleh");
    expect(result.tags).toContainEqual(["e", req.id, relay.url]);
    expect(result.tags).toContainEqual(["p", alice.pubkey]);
    expect(result.tags).toContainEqual(["i", "hello", "text"]);
    expect(result.tags).toContainEqual(["amount", "1500"]);
    expect(JSON.parse(result.tags.find((t) => t[0] === "request")![1]!).id).toBe(req.id);
    const grant = gate.ledger.grants({ pubkey: alice.pubkey }).find((g) => g.requestId === req.id)!;
    expect(grant.absorbedMsats).toBe(1500);
    expect(gate.ledger.getRequest(req.id)!.state).toBe("done");
    expect(gate.verify()).toEqual([]);
  });

  it("a paid job runs once the payment's processing goes out, and the customer's payment is spent before the pool", async () => {
    const bob = await customerOf(gate, relay.url, "new");
    try {
      const req = bob.request(gate.pubkey, { kind: 5100, input: "paid", tags: [["param", "cost", "1200"]] });
      await bob.publish(req);
      const offer = await bob.waitFeedback(req.id, "payment-required");
      expect(getJob(gate.ledger.db, req.id)).toBeNull(); // no go signal yet, no job
      expect(devPay(gate.ledger.db, offer.bolt11!, Date.now()).status).toBe("paid");
      const result = await waitResult(relay.url, gate.pubkey, req);
      expect(result.content).toBe("http:diap");
      expect(gate.ledger.getRequest(req.id)!.state).toBe("done");
      expect(gate.ledger.grants({ pubkey: bob.pubkey })).toEqual([]); // the pool gave nothing
      expect(gate.verify()).toEqual([]);
    } finally {
      bob.close();
    }
  });

  it("http: a non-200 answer voids the job and the customer gets its status in the error", async () => {
    await expectVoided(5101, "http: HTTP 503: overloaded");
  });

  it("http: a backend that never answers is given up at the deadline", async () => {
    await expectVoided(5102, "timeout");
  });

  it("http: an answer over jobs.maxResultBytes is refused", async () => {
    await expectVoided(5103, "result too large");
  });

  it("http: an answer that is not {content} JSON is a failure", async () => {
    await expectVoided(5104, "not JSON");
  });

  it("exec: stdout of a zero exit is the result; the program got the job's JSON on stdin", async () => {
    const req = alice.request(gate.pubkey, { kind: 5200, input: "abc" });
    await alice.publish(req);
    const result = await waitResult(relay.url, gate.pubkey, req);
    expect(result.content).toBe("exec:cba:5200:elite");
    expect(result.tags.some((t) => t[0] === "amount")).toBe(false);
    const grant = gate.ledger.grants({ pubkey: alice.pubkey }).find((g) => g.requestId === req.id)!;
    expect(grant.absorbedMsats).toBe(PRICE_SATS * 1000);
  });

  it("an encrypted request: the backend gets the decrypted inputs, the customer an encrypted result in the same scheme", async () => {
    for (const scheme of ["nip44", "nip04"] as const) {
      const tpl = jobRequestTemplate(
        { kind: 5200, inputs: [["i", "secret words", "text"]], gatePubkey: gate.pubkey, encryption: scheme, createdAtSec: Math.floor(Date.now() / 1000) },
        alice.secretKey,
      );
      const req = finalizeEvent(tpl, alice.secretKey);
      await alice.publish(req);
      const result = await waitResult(relay.url, gate.pubkey, req);
      expect(result.tags).toContainEqual(["encrypted"]);
      expect(result.tags.some((t) => t[0] === "i")).toBe(false);
      expect(result.content).not.toContain("sdrow");
      const opened = decryptFrom(result.content, alice.secretKey, gate.pubkey);
      expect(opened).toEqual({ scheme, plaintext: "exec:sdrow terces:5200:elite" });
    }
  });

  it("exec: a non-zero exit voids the job with its stderr in the reason", async () => {
    await expectVoided(5201, "exec: exit 3: boom");
  });

  it("exec: a program still running at the deadline is killed and the job voided", async () => {
    await expectVoided(5202, "timeout");
    const pids = readFileSync(gateTmpPidFile(), "utf8").trim().split("\n").map(Number);
    expect(pids.length).toBe(1);
    await waitFor(() => !isAlive(pids[0]!), 5000, "the timed-out program to be gone");
  });

  it("exec: output over the limit kills the program and fails the job", async () => {
    await expectVoided(5203, "result too large");
  });

  it("exec: output that is not UTF-8 text is a failure", async () => {
    await expectVoided(5204, "not UTF-8");
  });
});
