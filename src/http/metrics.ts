// Prometheus metrics of the gate, in a registry of our own: several gates (or tests)
// in one process never share counters, and nothing leaks into prom-client's global one.
// Label values are bounded: outcomes are a fixed set, relays are capped, routes are
// the known paths, so a hostile or misconfigured input cannot blow up cardinality.
import { collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";
import type { Totals } from "../ledger/ledger.js";
import { TIERS, type Tier } from "../policy/tiers.js";
import type { InvoiceLimit } from "../policy/invoice-limits.js";
import { DecisionRate, type FloodStats } from "./flood-stats.js";

export const DECISION_OUTCOMES = ["free", "partial", "gate", "blocked", "error", "ignored"] as const;
export type DecisionOutcome = (typeof DECISION_OUTCOMES)[number];

/** Distinct relay label values before further relays are counted as "other". */
export const MAX_RELAY_LABELS = 32;
export const OTHER_LABEL = "other";

export const HTTP_ROUTES = ["/", "/healthz", "/metrics", "/estimate"] as const;
const STATUS_CLASSES = ["2xx", "3xx", "4xx", "5xx"] as const;

export interface GateMetricsOptions {
  /** Node process metrics (CPU, memory, event loop) in the same registry. */
  processMetrics?: boolean;
}

export class GateMetrics {
  readonly registry: Registry;
  private readonly decisions: Counter<"outcome">;
  private readonly replies: Counter<"relay" | "result">;
  private readonly grants: Counter;
  private readonly absorbed: Counter;
  private readonly poolGauges: Record<keyof Totals, Gauge>;
  private readonly relayUp: Gauge<"relay">;
  private readonly httpRequests: Counter<"route" | "status">;
  private readonly relayLabels = new Set<string>();
  private readonly shed: Counter<"tier" | "reason">;
  private readonly limited: Counter<"limit" | "answer">;
  private readonly rate = new DecisionRate();
  private depths: () => Record<Tier, number> = () => Object.fromEntries(TIERS.map((t) => [t, 0])) as Record<Tier, number>;
  private readonly shedCounts = Object.fromEntries(TIERS.map((t) => [t, { full: 0, stale: 0 }])) as FloodStats["shed"];
  private readonly limitedCounts: FloodStats["limited"] = { "open-invoices": { replied: 0, silent: 0 }, "new-tier-rate": { replied: 0, silent: 0 } };

  constructor(opts: GateMetricsOptions = {}) {
    const registry = new Registry();
    this.registry = registry;
    const registers = [registry];
    this.decisions = new Counter({
      name: "dvm_gate_decisions_total",
      help: "Job requests by outcome: free, partial, gate, blocked, error (answered with error feedback), ignored (dropped silently).",
      labelNames: ["outcome"],
      registers,
    });
    // Every outcome shows up at 0 from the start, so rate() and absent() behave.
    for (const o of DECISION_OUTCOMES) this.decisions.inc({ outcome: o }, 0);
    this.replies = new Counter({
      name: "dvm_gate_replies_published_total",
      help: `Reply events sent to relays, by relay (at most ${MAX_RELAY_LABELS} distinct, then "${OTHER_LABEL}") and result (ok, failed).`,
      labelNames: ["relay", "result"],
      registers,
    });
    this.grants = new Counter({ name: "dvm_gate_grants_total", help: "Posted reservations that absorbed msats (grant events).", registers });
    this.absorbed = new Counter({ name: "dvm_gate_grant_absorbed_msats_total", help: "Msats absorbed by the pool in grants since start.", registers });
    const gauge = (name: string, help: string) => new Gauge({ name, help, registers });
    this.poolGauges = {
      initialMsats: gauge("dvm_gate_pool_initial_msats", "Msats the pool was seeded with."),
      creditedMsats: gauge("dvm_gate_pool_credited_msats", "Msats credited to the pool since seeding (operator and paid jobs)."),
      absorbedMsats: gauge("dvm_gate_pool_absorbed_msats", "Msats the pool has given away in posted reservations."),
      pendingMsats: gauge("dvm_gate_pool_pending_msats", "Msats held by pending reservations."),
      poolMsats: gauge("dvm_gate_pool_balance_msats", "Msats available to new reservations."),
    };
    this.relayUp = new Gauge({
      name: "dvm_gate_relay_connected",
      help: `1 while the relay connection is up, 0 while down (at most ${MAX_RELAY_LABELS} distinct relays, then "${OTHER_LABEL}").`,
      labelNames: ["relay"],
      registers,
    });
    this.httpRequests = new Counter({
      name: "dvm_gate_http_requests_total",
      help: "HTTP requests by route (known paths, else other) and status class.",
      labelNames: ["route", "status"],
      registers,
    });
    // Floods (docs/OPERATIONS.md): what waits, what is shed unseen, what the invoice limits refused.
    const self = this;
    new Gauge({
      name: "dvm_gate_intake_queue_depth",
      help: "Job requests waiting to be decided, by the tier their pubkey claims (signature not checked yet).",
      labelNames: ["tier"],
      registers,
      collect() {
        const d = self.depths();
        for (const t of TIERS) this.set({ tier: t }, d[t]);
      },
    });
    this.shed = new Counter({
      name: "dvm_gate_intake_shed_total",
      help: "Job requests dropped undecided, by tier and reason: full (queues full, dropped before any signature check) or stale (waited longer than intake.maxWaitMs).",
      labelNames: ["tier", "reason"],
      registers,
      // Brought up to shedCounts when read: a flood sheds thousands a second, and a labelled
      // inc (hashing its labels) for each was a measurable share of what a shed request costs.
      collect() {
        for (const t of TIERS)
          for (const r of ["full", "stale"] as const) {
            const delta = self.shedCounts[t][r] - shedReported[t][r];
            if (delta > 0) this.inc({ tier: t, reason: r }, delta);
            shedReported[t][r] = self.shedCounts[t][r];
          }
      },
    });
    const shedReported = structuredClone(this.shedCounts);
    for (const t of TIERS) for (const r of ["full", "stale"]) this.shed.inc({ tier: t, reason: r }, 0);
    this.limited = new Counter({
      name: "dvm_gate_invoice_limited_total",
      help: "Requests refused an invoice by a limit (SPEC §6), by limit (open-invoices, new-tier-rate) and answer (replied: rate-limited error sent; silent: dropped).",
      labelNames: ["limit", "answer"],
      registers,
    });
    for (const l of ["open-invoices", "new-tier-rate"]) for (const a of ["replied", "silent"]) this.limited.inc({ limit: l, answer: a }, 0);
    new Gauge({
      name: "dvm_gate_decisions_per_second",
      help: "Job requests decided per second (any outcome but ignored, and invoice-limit refusals), over the last 10 s.",
      registers,
      collect() {
        this.set(self.rate.perSecond(Date.now()));
      },
    });
    if (opts.processMetrics) collectDefaultMetrics({ register: registry, prefix: "dvm_gate_" });
  }

  decision(outcome: DecisionOutcome): void {
    if (!(DECISION_OUTCOMES as readonly string[]).includes(outcome)) throw new Error(`invariant: unknown decision outcome ${String(outcome)}`);
    this.decisions.inc({ outcome });
    if (outcome !== "ignored") this.rate.add(Date.now());
  }

  watchIntake(depths: () => Record<Tier, number>): void {
    this.depths = depths;
  }

  shedRequest(tier: Tier, why: "full" | "stale"): void {
    this.shedCounts[tier][why]++;
  }

  invoiceLimited(limit: InvoiceLimit, replied: boolean): void {
    this.limited.inc({ limit, answer: replied ? "replied" : "silent" });
    this.limitedCounts[limit][replied ? "replied" : "silent"]++;
    this.rate.add(Date.now());
  }

  /** The floods section of the operator page, since this process started. */
  floodStats(): FloodStats {
    return {
      depths: this.depths(),
      shed: structuredClone(this.shedCounts),
      limited: structuredClone(this.limitedCounts),
      decisionsPerSecond: this.rate.perSecond(Date.now()),
    };
  }

  replyPublished(relay: string, ok: boolean): void {
    this.replies.inc({ relay: this.relayLabel(relay), result: ok ? "ok" : "failed" });
  }

  grant(absorbedMsats: number): void {
    if (!Number.isSafeInteger(absorbedMsats) || absorbedMsats < 0)
      throw new Error(`invariant: absorbed msats must be a whole number ≥ 0, got ${absorbedMsats}`);
    this.grants.inc();
    this.absorbed.inc(absorbedMsats);
  }

  setPool(t: Totals): void {
    for (const key of Object.keys(this.poolGauges) as (keyof Totals)[]) this.poolGauges[key].set(t[key]);
  }

  relayConnected(relay: string, up: boolean): void {
    this.relayUp.set({ relay: this.relayLabel(relay) }, up ? 1 : 0);
  }

  httpRequest(path: string, statusCode: number): void {
    const route = (HTTP_ROUTES as readonly string[]).includes(path) ? path : OTHER_LABEL;
    const status = STATUS_CLASSES[Math.floor(statusCode / 100) - 2] ?? "5xx";
    this.httpRequests.inc({ route, status });
  }

  /** Requests per outcome since this process started (for the operator page). */
  async decisionCounts(): Promise<Record<DecisionOutcome, number>> {
    const out = Object.fromEntries(DECISION_OUTCOMES.map((o) => [o, 0])) as Record<DecisionOutcome, number>;
    for (const v of (await this.decisions.get()).values) {
      const o = v.labels.outcome;
      if (typeof o === "string" && o in out) out[o as DecisionOutcome] = v.value;
    }
    return out;
  }

  /** Each relay's connection as last reported by the service (for the operator page). */
  async relayStates(): Promise<{ relay: string; up: boolean }[]> {
    return (await this.relayUp.get()).values
      .filter((v) => typeof v.labels.relay === "string")
      .map((v) => ({ relay: String(v.labels.relay), up: v.value === 1 }))
      .sort((a, b) => a.relay.localeCompare(b.relay));
  }

  /** Relay URLs as labels: the first MAX_RELAY_LABELS distinct ones, then "other". */
  private relayLabel(relay: string): string {
    const label = String(relay).slice(0, 200);
    if (this.relayLabels.has(label)) return label;
    if (this.relayLabels.size >= MAX_RELAY_LABELS) return OTHER_LABEL;
    this.relayLabels.add(label);
    return label;
  }
}
