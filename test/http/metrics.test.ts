// GateMetrics on its own: a private registry per instance and bounded label values.
import { describe, expect, it } from "vitest";
import { register as globalRegistry } from "prom-client";
import { GateMetrics, MAX_RELAY_LABELS } from "../../src/http/metrics.js";

function relayLabels(text: string, metric: string): Set<string> {
  const out = new Set<string>();
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${metric}{`)) continue;
    const m = /relay="([^"]*)"/.exec(line);
    if (m) out.add(m[1]!);
  }
  return out;
}

describe("GateMetrics", () => {
  it("keeps its metrics in its own registry: two instances count apart, the global registry stays empty", async () => {
    const a = new GateMetrics();
    const b = new GateMetrics();
    a.decision("partial");
    a.decision("partial");
    b.decision("partial");
    expect((await a.decisionCounts()).partial).toBe(2);
    expect((await b.decisionCounts()).partial).toBe(1);
    expect(await globalRegistry.metrics()).not.toContain("dvm_gate_");
  });

  it(`labels at most ${MAX_RELAY_LABELS} distinct relays and counts the rest as "other"`, async () => {
    const m = new GateMetrics();
    for (let i = 0; i < MAX_RELAY_LABELS + 10; i++) {
      m.replyPublished(`wss://relay${i}.example`, i % 2 === 0);
      m.relayConnected(`wss://relay${i}.example`, true);
    }
    m.replyPublished("wss://relay0.example", true); // an early relay keeps its own label
    const text = await m.registry.metrics();
    const replies = relayLabels(text, "dvm_gate_replies_published_total");
    expect(replies.size).toBe(MAX_RELAY_LABELS + 1);
    expect(replies.has("other")).toBe(true);
    expect(replies.has(`wss://relay${MAX_RELAY_LABELS}.example`)).toBe(false);
    expect(text).toContain('dvm_gate_replies_published_total{relay="wss://relay0.example",result="ok"} 2');
    expect(relayLabels(text, "dvm_gate_relay_connected").size).toBe(MAX_RELAY_LABELS + 1);
  });

  it("sets the pool gauges in msats and refuses a non-integer grant", async () => {
    const m = new GateMetrics();
    m.setPool({ initialMsats: 5, creditedMsats: 6, absorbedMsats: 7, pendingMsats: 1, poolMsats: 3 });
    const text = await m.registry.metrics();
    expect(text).toContain("dvm_gate_pool_balance_msats 3\n");
    expect(text).toContain("dvm_gate_pool_credited_msats 6\n");
    expect(() => m.grant(1.5)).toThrow(/whole number/);
  });

  it("adds Node process metrics only when asked", async () => {
    expect(await new GateMetrics().registry.metrics()).not.toContain("dvm_gate_process_cpu");
    expect(await new GateMetrics({ processMetrics: true }).registry.metrics()).toContain("dvm_gate_process_cpu_user_seconds_total");
  });
});
