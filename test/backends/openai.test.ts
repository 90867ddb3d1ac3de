// SPEC §11 `openai` backend against an OpenAI-compatible server written for the tests
// (its own process, the real chat-completions shapes with `usage`): the decision
// reserves the upper estimate, `usage` settles it and the rest returns to the pool to
// the msat; `max_tokens` above the cap is capped; an error status and a stalled answer fail.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmbeddedRelay, type EmbeddedRelay } from "../../src/peers/embedded-relay.js";
import { PROMPT_OVERHEAD_TOKENS } from "../../src/policy/token-pricing.js";
import type { Customer, Gate } from "../e2e/harness.js";
import type { ChildHandle } from "../helpers/service-process.js";
import { backendGate, customerOf, serverStats, startBackendServer, waitResult } from "./harness.js";

describe("openai backend", () => {
  let relay: EmbeddedRelay;
  let server: ChildHandle & { url: string };
  let gate: Gate;
  let alice: Customer;

  beforeAll(async () => {
    relay = await startEmbeddedRelay();
    server = await startBackendServer();
    const backend = {
      type: "openai",
      baseUrl: `${server.url}/v1`,
      model: "test-model",
      maxOutputTokens: 100,
      inputSatsPer1kTokens: 1,
      outputSatsPer1kTokens: 2,
    };
    gate = await backendGate(relay.url, { "5050": { priceSats: 1, backend } }, { timeoutSec: 3 });
    alice = await customerOf(gate, relay.url, "elite");
  });
  afterAll(async () => {
    alice?.close();
    await gate?.stop();
    gate?.tmp.remove();
    await server?.kill();
    await relay?.close();
  });

  it("reserves the upper estimate, settles from usage, and returns the difference to the pool", async () => {
    const before = gate.ledger.totals();
    const input = "hello big world"; // 15 bytes
    const req = alice.request(gate.pubkey, {
      input,
      tags: [
        ["param", "max_tokens", "5000"],
        ["param", "temperature", "7"],
      ],
    });
    await alice.publish(req);
    const processing = await alice.waitFeedback(req.id, "processing");
    // 1 sat base + 1 msat per input token (bytes + overhead) + 2 msats per output token (capped at 100).
    const estimate = 1000 + (15 + PROMPT_OVERHEAD_TOKENS) * 1 + 100 * 2;
    expect(processing.freeTier?.absorbedMsats).toBe(estimate);

    const result = await waitResult(relay.url, gate.pubkey, req);
    expect(result.content).toBe("llm:dlrow gib olleh");
    // The server counted 3 words + 7 = 10 prompt tokens and answered 9 completion tokens.
    const cost = 1000 + 10 * 1 + 9 * 2;
    expect(result.tags).toContainEqual(["amount", String(cost)]);
    const grant = gate.ledger.grants({ pubkey: alice.pubkey }).find((g) => g.requestId === req.id)!;
    expect(grant.absorbedMsats).toBe(cost);
    const after = gate.ledger.totals();
    expect(after.poolMsats).toBe(before.poolMsats - cost);
    expect(after.pendingMsats).toBe(before.pendingMsats);
    expect(after.absorbedMsats).toBe(before.absorbedMsats + cost);

    const { lastChat } = await serverStats(server.url);
    expect(lastChat).toMatchObject({ model: "test-model", max_tokens: 100, temperature: 2, messages: [{ role: "user", content: input }] });
    expect(gate.verify()).toEqual([]);
  });

  it("/estimate reports the same upper estimate the decision reserves", async () => {
    const { startHttpServer } = await import("../../src/http/server.js");
    const { createBackends } = await import("../../src/backends/index.js");
    const { pino } = await import("pino");
    const { authHeader, signAuthEvent } = await import("../http/harness.js");
    const { GateMetrics } = await import("../../src/http/metrics.js");
    const built = createBackends(gate.cfg, { secretKey: gate.secretKey, chargeUnitMsats: 1 });
    const http = await startHttpServer({
      cfg: { ...gate.cfg, http: { ...gate.cfg.http, port: 0 } },
      ledger: gate.ledger,
      log: pino({ level: "silent" }),
      metrics: new GateMetrics(),
      gatePubkey: gate.pubkey,
      priceOf: built.priceOf,
    });
    try {
      const url = `${http.url}/estimate?kind=5050&input=${encodeURIComponent("hello big world")}&max_tokens=5000`;
      const res = await fetch(url, { headers: { authorization: authHeader(signAuthEvent(alice.secretKey, { url })) } });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { priceMsats: number; decision: string; absorbMsats: number };
      expect(body).toMatchObject({ priceMsats: 1000 + (15 + PROMPT_OVERHEAD_TOKENS) + 200, decision: "free" });
    } finally {
      await http.close();
      await built.close();
    }
  });

  it("an error status fails the job with the server's message, and the reservation returns whole", async () => {
    const before = gate.ledger.totals();
    const req = alice.request(gate.pubkey, { input: "please fail" });
    await alice.publish(req);
    const err = await alice.waitFeedback(req.id, "error");
    expect(err.text).toContain("openai: HTTP 500: the model crashed");
    expect(gate.ledger.totals()).toEqual(before);
  });

  it("a server that stalls is given up at the deadline", async () => {
    const before = gate.ledger.totals();
    const req = alice.request(gate.pubkey, { input: "please stall" });
    await alice.publish(req);
    const err = await alice.waitFeedback(req.id, "error", 10_000);
    expect(err.text).toContain("timeout");
    expect(gate.ledger.totals()).toEqual(before);
    expect(gate.verify()).toEqual([]);
  });
});
