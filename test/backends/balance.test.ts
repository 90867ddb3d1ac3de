// SPEC §11 with §12: a job paid from a prepaid balance, run by the gate's own backend. A
// customer of tier `new` (no free tier) with a balance sends a job → `processing` with
// the `balance` tag → the backend (an HTTP server in its own process) runs it → the
// result; the balance is spent exactly the price and the pool gets only its credit share.
// The backend failing (an error status, or no answer by the deadline) gives the debit
// back to the balance, to the msat, never to the pool, and asks for no refund by hand.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pino } from "pino";
import { startEmbeddedRelay, type EmbeddedRelay } from "../../src/peers/embedded-relay.js";
import { getJob } from "../../src/ledger/job-store.js";
import type { ChildHandle } from "../helpers/service-process.js";
import { SAT, waitFor, type Customer, type Gate } from "../e2e/harness.js";
import { finalizeEvent } from "nostr-tools/pure";
import { backendGate, customerOf, startBackendServer, waitResult } from "./harness.js";

const PRICE_SATS = 3;
const DEPOSIT_MSATS = 20 * SAT;
const POOL_CREDIT_PCT = 10; // backendGate's freeTier.poolCreditPct

describe("a balance-paid job through a backend", () => {
  let relay: EmbeddedRelay;
  let server: ChildHandle & { url: string };
  let gate: Gate;
  let carol: Customer;
  const logLines: { level: number; msg: string }[] = [];

  beforeAll(async () => {
    relay = await startEmbeddedRelay();
    server = await startBackendServer();
    const http = (route: string) => ({ priceSats: PRICE_SATS, backend: { type: "http", url: `${server.url}${route}` } });
    const log = pino({ level: "info" }, { write: (line: string) => void logLines.push(JSON.parse(line) as { level: number; msg: string }) });
    gate = await backendGate(relay.url, { "5100": http("/ok"), "5101": http("/status"), "5102": http("/slow") }, { timeoutSec: 3, log });
    carol = await customerOf(gate, relay.url, "new");
    gate.ledger.deposit({ pubkey: carol.pubkey, amountMsats: DEPOSIT_MSATS, source: "operator", ref: null, note: "test", overCap: "refuse" }, gate.nowMs());
  });
  afterAll(async () => {
    carol?.close();
    await gate?.stop();
    gate?.tmp.remove();
    await server?.kill();
    await relay?.close();
  });

  it("processing with the balance tag, the backend's result, the balance spent exactly the price, the pool only credited its share", async () => {
    const before = gate.ledger.totals();
    const was = gate.ledger.balance(carol.pubkey);
    // The backend reports a cost below the price: the customer still pays the price (SPEC §12), the pool absorbs nothing.
    const req = carol.request(gate.pubkey, { kind: 5100, input: "prepaid", tags: [["param", "cost", "1000"]] });
    await carol.publish(req);
    const fb = await carol.waitFeedback(req.id, "processing");
    expect(fb.balanceMsats).toBe(was.balanceMsats - PRICE_SATS * SAT);
    expect(fb.bolt11).toBeNull();
    expect(fb.freeTier).toBeNull();
    const result = await waitResult(relay.url, gate.pubkey, req);
    expect(result.content).toBe("http:diaperp");
    expect(getJob(gate.ledger.db, req.id)?.state).toBe("done");
    expect(gate.ledger.getRequest(req.id)).toMatchObject({ state: "done", paidMsats: PRICE_SATS * SAT, absorbMsats: 0 });
    expect(gate.ledger.balance(carol.pubkey)).toMatchObject({
      balanceMsats: was.balanceMsats - PRICE_SATS * SAT,
      heldMsats: 0,
      spentMsats: was.spentMsats + PRICE_SATS * SAT,
      depositedMsats: DEPOSIT_MSATS,
    });
    const credit = (PRICE_SATS * SAT * POOL_CREDIT_PCT) / 100;
    expect(gate.ledger.totals()).toEqual({
      ...before,
      creditedMsats: before.creditedMsats + credit,
      poolMsats: before.poolMsats + credit,
    });
    expect(gate.ledger.grants({ pubkey: carol.pubkey })).toEqual([]);
    expect(gate.verify()).toEqual([]);
  });

  async function expectRefunded(kind: number, reasonPart: string): Promise<void> {
    const before = gate.ledger.totals();
    const was = gate.ledger.balance(carol.pubkey);
    const req = carol.request(gate.pubkey, { kind, input: "prepaid" });
    await carol.publish(req);
    const fb = await carol.waitFeedback(req.id, "processing");
    expect(fb.balanceMsats).toBe(was.balanceMsats - PRICE_SATS * SAT);
    const err = await carol.waitFeedback(req.id, "error", 10_000);
    expect(err.text).toContain(reasonPart);
    expect(getJob(gate.ledger.db, req.id)?.state).toBe("failed");
    expect(gate.ledger.getRequest(req.id)!.state).toBe("failed");
    // Back in the balance to the msat; the pool exactly as it was (no credit share, nothing absorbed).
    expect(gate.ledger.balance(carol.pubkey)).toEqual(was);
    expect(gate.ledger.totals()).toEqual(before);
    // The ledger refunded it: no "refund the customer by hand" for the operator.
    expect(logLines.filter((l) => l.msg.includes("by hand"))).toEqual([]);
    expect(logLines.some((l) => l.msg === "balance debit refunded to the balance")).toBe(true);
    expect(gate.verify()).toEqual([]);
  }

  it("the backend's error status: the debit goes back to the balance, never to the pool", async () => {
    await expectRefunded(5101, "http: HTTP 503");
  });

  it("the backend not answering by the deadline: the debit goes back to the balance, never to the pool", async () => {
    await expectRefunded(5102, "timeout");
  });

  it("the customer's deletion while the backend runs: cancelled, the debit back in the balance", async () => {
    const before = gate.ledger.totals();
    const was = gate.ledger.balance(carol.pubkey);
    const req = carol.request(gate.pubkey, { kind: 5102, input: "changed my mind" });
    await carol.publish(req);
    await waitFor(() => getJob(gate.ledger.db, req.id)?.state === "running", 5000, "the job running");
    expect(gate.ledger.balance(carol.pubkey).heldMsats).toBe(PRICE_SATS * SAT);
    await carol.publish(finalizeEvent({ kind: 5, created_at: Math.floor(Date.now() / 1000), tags: [["e", req.id]], content: "" }, carol.secretKey));
    await waitFor(() => getJob(gate.ledger.db, req.id)?.state === "cancelled", 5000, "the job cancelled");
    expect(gate.ledger.balance(carol.pubkey)).toEqual(was);
    expect(gate.ledger.totals()).toEqual(before);
    expect(logLines.filter((l) => l.msg.includes("by hand"))).toEqual([]);
    expect(gate.verify()).toEqual([]);
  });
});
