import { describe, expect, it } from "vitest";
import { GateMetrics } from "../../src/http/metrics.js";
import { DecisionRate } from "../../src/http/flood-stats.js";
import { floodsSection } from "../../src/http/page-floods.js";

describe("flood metrics", () => {
  it("exports queue depth and shed per tier, invoice limits hit and decisions per second", async () => {
    const m = new GateMetrics();
    m.watchIntake(() => ({ new: 7, established: 0, trusted: 1, elite: 2 }));
    m.shedRequest("new", "full");
    m.shedRequest("new", "full");
    m.shedRequest("elite", "stale");
    m.invoiceLimited("open-invoices", true);
    m.invoiceLimited("new-tier-rate", false);
    const text = await m.registry.metrics();
    expect(text).toContain('dvm_gate_intake_queue_depth{tier="new"} 7');
    expect(text).toContain('dvm_gate_intake_queue_depth{tier="elite"} 2');
    expect(text).toContain('dvm_gate_intake_shed_total{tier="new",reason="full"} 2');
    expect(text).toContain('dvm_gate_intake_shed_total{tier="elite",reason="stale"} 1');
    expect(text).toContain('dvm_gate_invoice_limited_total{limit="open-invoices",answer="replied"} 1');
    expect(text).toContain('dvm_gate_invoice_limited_total{limit="new-tier-rate",answer="silent"} 1');
    expect(text).toMatch(/^dvm_gate_decisions_per_second \d/m);
    const f = m.floodStats();
    expect(f.shed.new.full).toBe(2);
    const html = floodsSection(f);
    expect(html).toContain("<h2>Floods</h2>");
    expect(html).toMatch(/<td>new<\/td><td class="n">7<\/td><td class="n">2<\/td>/);
  });

  it("counts decisions per second over the last full seconds of its window", () => {
    const r = new DecisionRate(10);
    const t0 = 1_000_000_000;
    for (let s = 0; s < 10; s++) for (let i = 0; i < 5; i++) r.add(t0 + s * 1000 + i);
    // The current second (still filling) is left out.
    expect(r.perSecond(t0 + 9_500)).toBe(4.5);
    expect(r.perSecond(t0 + 10_000)).toBe(5);
    expect(r.perSecond(t0 + 30_000)).toBe(0);
  });
});
