// The operator page (`GET /`): the money (invoices, earnings), the pool and its history,
// decisions over the last day, relay connections, recent grants and tier budgets, as one
// self-contained HTML document. No script and no external asset: the charts are SVG
// drawn here, the one style block is allowed by its hash in the Content-Security-Policy.
// Every value printed goes through `esc`. The page is a list of small section functions
// (SECTIONS): a new section is one more function and one more entry.
import { createHash } from "node:crypto";
import { nip19 } from "nostr-tools";
import type { RuntimeConfig } from "../config/load.js";
import type { GrantRecord, Ledger, Totals } from "../ledger/ledger.js";
import {
  HISTORY_MAX_ROWS,
  ReportStore,
  STORED_DECISIONS,
  type BalanceChange,
  type CountAndMsats,
  type HourBucket,
  type InvoiceFigures,
  type MoneyReport,
  type PoolMark,
} from "../ledger/report-store.js";
import { TIERS, type Tier } from "../policy/tiers.js";
import { formatSats } from "../util/money.js";
import { DECISION_OUTCOMES, type DecisionOutcome, type GateMetrics } from "./metrics.js";
import type { FloodStats } from "./flood-stats.js";
import { floodsSection } from "./page-floods.js";

/** Grants read for the balance chart (the newest ones); the table shows fewer. */
export const CHART_MAX_POINTS = HISTORY_MAX_ROWS;
export const RECENT_GRANTS = 20;

export interface BalancePoint {
  atMs: number;
  poolMsats: number;
  /** What the point is: "seed", the change ("reserved 10 sats (elite)", "credit +5 sats (operator)"…) or "now". */
  what: string;
}

export interface RelayState {
  relay: string;
  up: boolean;
}

export interface PageData {
  gatePubkey: string;
  nowMs: number;
  totals: Totals;
  balance: BalancePoint[];
  /** Credits and returns to the pool inside the chart's time range. */
  marks: PoolMark[];
  decisions24h: Record<string, number>;
  decisionsAll: Record<string, number>;
  decisionsSinceStart: Record<DecisionOutcome, number>;
  decisionsByHour: HourBucket[];
  money: MoneyReport;
  relays: RelayState[];
  recentGrants: GrantRecord[];
  budgetsMsats: Record<Tier, number>;
  pricesMsats: [number, number][];
  /** Customers' prepaid balances (SPEC §12): available plus held by open jobs. */
  balancesHeldMsats?: number;
  floods?: FloodStats;
}

const stores = new WeakMap<Ledger, ReportStore>();

function stepText(c: BalanceChange | null, isNow: boolean): string {
  if (!c) return isNow ? "now" : "seed";
  const amount = formatSats(Math.abs(c.deltaMsats));
  switch (c.what) {
    case "reserve":
      return `reserved ${amount} (${c.detail})`;
    case "credit":
      return `credit +${amount} (${c.detail})`;
    case "void":
      return `voided, ${amount} back: ${c.detail}`;
    case "expiry":
      return `expired, ${amount} back`;
    default:
      return `${amount} back (${c.detail})`;
  }
}

/** Everything the page shows, read with SELECTs only (the SQL lives in ReportStore). */
export async function loadPageData(ledger: Ledger, cfg: RuntimeConfig, metrics: GateMetrics, gatePubkey: string, nowMs: number): Promise<PageData> {
  let store = stores.get(ledger);
  if (!store) stores.set(ledger, (store = new ReportStore(ledger.db)));
  const r = store.pageReport(nowMs);
  const recentGrants = r.lastGrantSeq === 0 ? [] : ledger.grants({ afterSeq: Math.max(0, r.lastGrantSeq - RECENT_GRANTS), limit: RECENT_GRANTS }).reverse();
  const balance: BalancePoint[] = r.balance.map((s) => ({ atMs: s.atMs, poolMsats: s.poolMsats, what: stepText(s.change, s.atMs === nowMs) }));

  return {
    gatePubkey,
    nowMs,
    totals: r.totals,
    balance,
    marks: r.marks,
    decisions24h: r.decisions24h,
    decisionsAll: r.decisionsAll,
    decisionsSinceStart: await metrics.decisionCounts(),
    decisionsByHour: r.decisionsByHour,
    money: r.money,
    relays: await metrics.relayStates(),
    recentGrants,
    budgetsMsats: cfg.freeTier.budgetsMsats,
    pricesMsats: [...cfg.jobs.priceMsatsByKind.entries()].sort((a, b) => a[0] - b[0]),
    balancesHeldMsats: balancesHeld(ledger),
    floods: metrics.floodStats(),
  };
}

function balancesHeld(ledger: Ledger): number {
  const b = ledger.balances.totals();
  return b.balanceMsats + b.heldMsats;
}

export const PAGE_CSS = `
body{font:15px/1.5 system-ui,sans-serif;margin:1.5rem auto;max-width:64rem;padding:0 1rem;color:#1d2430;background:#fbfbfd}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d8dce4;padding-bottom:.2rem}
.sub{color:#5b6575;margin-top:.3rem}table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #e6e9ef}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
th{font-weight:600;color:#3b4455}code{font-size:.92em}.cards{display:flex;gap:.8rem;flex-wrap:wrap}
.card{background:#fff;border:1px solid #e1e5ec;border-radius:6px;padding:.5rem .9rem;min-width:8rem}
.card b{display:block;font-size:1.2rem;font-variant-numeric:tabular-nums}.card.money{border-color:#9fd3b0;background:#f3fbf5}
svg{background:#fff;border:1px solid #e1e5ec;border-radius:6px;max-width:100%;height:auto;display:block}
.empty{color:#5b6575;font-style:italic}.up{color:#1f7a3f;font-weight:600}.down{color:#b3261e;font-weight:600}`;

/** The Content-Security-Policy that lets exactly the page's own style block run. */
export const PAGE_CSP = [
  "default-src 'none'",
  `style-src 'sha256-${createHash("sha256").update(PAGE_CSS, "utf8").digest("base64")}'`,
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

export function esc(v: unknown): string {
  return String(v).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

function isoTime(ms: number): string {
  return Number.isFinite(ms)
    ? new Date(ms)
        .toISOString()
        .replace("T", " ")
        .replace(/\.\d{3}Z$/, "Z")
    : "?";
}

function shortNpub(pubkey: string): string {
  try {
    const npub = nip19.npubEncode(pubkey);
    return `${npub.slice(0, 12)}…${npub.slice(-6)}`;
  } catch {
    return pubkey.slice(0, 12);
  }
}

function shortId(id: string | null): string {
  return id === null ? "unsigned" : `${id.slice(0, 8)}…`;
}

/** The page, top to bottom. One function per section: adding a section is one entry. */
export const SECTIONS: ((d: PageData) => string)[] = [
  moneySection,
  poolSection,
  decisionsSection,
  relaysSection,
  grantsSection,
  budgetsSection,
  (d) => (d.floods ? floodsSection(d.floods) : ""),
];

export function renderPage(d: PageData): string {
  let npub = d.gatePubkey;
  try {
    npub = nip19.npubEncode(d.gatePubkey);
  } catch {
    // not a hex key: shown as given (escaped)
  }
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="refresh" content="30"><title>dvm-gate</title><style>${PAGE_CSS}</style></head>
<body>
<h1>dvm-gate</h1>
<p class="sub">gate <code>${esc(npub)}</code> · ${esc(isoTime(d.nowMs))} · refreshes every 30 s</p>
${SECTIONS.map((s) => s(d)).join("\n")}
</body></html>
`;
}

function card(label: string, msats: number, id?: string, cls = ""): string {
  return `<div class="card${cls ? ` ${cls}` : ""}">${esc(label)}<b${id ? ` id="${esc(id)}"` : ""}>${esc(formatSats(msats))}</b></div>`;
}

function countText(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

// ---- money -------------------------------------------------------------------------

const INVOICE_ROWS: [keyof InvoiceFigures, string][] = [
  ["issued", "issued"],
  ["paid", "paid"],
  ["expired", "expired unpaid"],
  ["unpaid", "open, not paid yet"],
];

function moneySection(d: PageData): string {
  const m = d.money;
  const cell = (f: CountAndMsats, id: string) =>
    `<td class="n" id="${id}-count">${esc(f.count)}</td><td class="n" id="${id}-sats">${esc(formatSats(f.msats))}</td>`;
  const rows = INVOICE_ROWS.map(
    ([k, label]) => `<tr><td>${esc(label)}</td>${cell(m.invoices24h[k], `invoices-${k}-24h`)}${cell(m.invoicesAll[k], `invoices-${k}-all`)}</tr>`,
  ).join("\n");
  return `<h2>Money</h2>
<div class="cards">
${card("earned, last 24 h", m.earned24h.msats, "earned-24h", "money")}${card("earned, all time", m.earnedAll.msats, "earned-all", "money")}${d.balancesHeldMsats !== undefined ? card("customer balances held", d.balancesHeldMsats, "balances-held") : ""}
</div>
<p class="sub">Earned: what customers paid for jobs that were done (${esc(countText(m.earnedAll.count, "paid job"))} all time, ${esc(countText(m.earned24h.count, "paid job"))} finished in the last 24 h).</p>
<table><thead><tr><th>invoices</th><th class="n">last 24 h</th><th class="n">sats</th><th class="n">all time</th><th class="n">sats</th></tr></thead>
<tbody>
${rows}
</tbody></table>
<p class="sub">By when the invoice was issued. Issued = paid + expired unpaid + open.</p>`;
}

// ---- pool --------------------------------------------------------------------------

function poolSection(d: PageData): string {
  const t = d.totals;
  return `<h2>Pool</h2>
<div class="cards">
${card("pool", t.poolMsats, "pool-balance")}${card("pending", t.pendingMsats)}${card("absorbed", t.absorbedMsats)}${card("credited", t.creditedMsats, "pool-credited")}${card("initial", t.initialMsats)}
</div>
<h2>Pool balance over time</h2>
${balanceChart(d.balance, d.marks)}`;
}

const CHART = { w: 960, h: 320, left: 96, right: 24, top: 20, bottom: 64 };
const COLORS = { line: "#2a6fdb", axis: "#9aa3b2", grid: "#edf0f4", text: "#4a5466", credit: "#1f9d55", back: "#e07b00" };

function timeLabel(ms: number, spanMs: number): string {
  const iso = new Date(ms).toISOString();
  return spanMs <= 36 * 3_600_000 ? iso.slice(11, 16) : spanMs <= 90 * 86_400_000 ? `${iso.slice(5, 10)} ${iso.slice(11, 16)}` : iso.slice(0, 10);
}

/** `n` round steps from lo to hi (at least 1 apart), for axis ticks. */
function ticks(lo: number, hi: number, n: number, unit: number): number[] {
  const span = Math.max(unit, hi - lo);
  const raw = span / n;
  const mag = 10 ** Math.floor(Math.log10(raw / unit)) * unit;
  const step = Math.max(unit, [1, 2, 5, 10].map((k) => k * mag).find((s) => s >= raw) ?? 10 * mag);
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) out.push(v);
  return out;
}

/**
 * A step line: the balance holds between points and jumps at each one. Credits and
 * returns to the pool (voids, expiries) are marked where they happened.
 */
export function balanceChart(points: BalancePoint[], marks: PoolMark[] = []): string {
  if (points.length === 0) return `<p class="empty">no data</p>`;
  const minT = Math.min(...points.map((p) => p.atMs));
  const maxT = Math.max(...points.map((p) => p.atMs));
  // The axis spans what the balance did, not 0..max: a pool of 10,000 sats losing
  // 10 sats a job would otherwise draw a flat line. The labels say where it starts.
  const values = points.map((p) => p.poolMsats);
  const spread = Math.max(...values) - Math.min(...values);
  const padMsats = Math.max(1, Math.ceil(spread / 10_000)) * 1000; // a tenth of the spread, in whole sats
  const minV = Math.max(0, Math.floor(Math.min(...values) / 1000) * 1000 - padMsats);
  const maxV = Math.ceil(Math.max(...values) / 1000) * 1000 + padMsats;
  const plotW = CHART.w - CHART.left - CHART.right;
  const plotH = CHART.h - CHART.top - CHART.bottom;
  const x = (ms: number) => CHART.left + (maxT === minT ? plotW : ((ms - minT) / (maxT - minT)) * plotW);
  const y = (msats: number) => CHART.top + plotH - ((msats - minV) / (maxV - minV)) * plotH;
  const f = (n: number) => n.toFixed(1);
  const axisY = CHART.top + plotH;
  const line: string[] = [];
  points.forEach((p, i) => {
    if (i > 0) line.push(`${f(x(p.atMs))},${f(y(points[i - 1]!.poolMsats))}`);
    line.push(`${f(x(p.atMs))},${f(y(p.poolMsats))}`);
  });
  const dots = points
    .map(
      (p) =>
        `<circle cx="${f(x(p.atMs))}" cy="${f(y(p.poolMsats))}" r="2.5" fill="${COLORS.line}"><title>${esc(`${p.what} · ${isoTime(p.atMs)} · ${formatSats(p.poolMsats)}`)}</title></circle>`,
    )
    .join("");
  const yTicks = ticks(minV, maxV, 6, 1000)
    .map(
      (v) =>
        `<line x1="${CHART.left}" y1="${f(y(v))}" x2="${CHART.w - CHART.right}" y2="${f(y(v))}" stroke="${COLORS.grid}"/>` +
        `<text x="${CHART.left - 6}" y="${f(y(v) + 4)}" text-anchor="end" font-size="12" fill="${COLORS.text}">${esc(formatSats(v))}</text>`,
    )
    .join("\n");
  const span = maxT - minT;
  const xTickTimes = span === 0 ? [maxT] : [0, 0.25, 0.5, 0.75, 1].map((k) => minT + Math.round(k * span));
  const xTicks = xTickTimes
    .map(
      (t, i) =>
        `<line x1="${f(x(t))}" y1="${axisY}" x2="${f(x(t))}" y2="${axisY + 5}" stroke="${COLORS.axis}"/>` +
        `<text x="${f(x(t))}" y="${axisY + 19}" text-anchor="${i === 0 && span > 0 ? "start" : i === xTickTimes.length - 1 ? "end" : "middle"}" font-size="12" fill="${COLORS.text}">${esc(timeLabel(t, span))}</text>`,
    )
    .join("\n");
  const inRange = marks.filter((m) => m.atMs >= minT && m.atMs <= maxT);
  const markShapes = inRange
    .map((m) => {
      const mx = x(m.atMs);
      const title = `<title>${esc(`${m.what === "credit" ? `credit (${m.detail})` : m.what === "void" ? `voided: ${m.detail}` : "expired reservation"} · ${isoTime(m.atMs)} · ${m.what === "credit" ? "+" : "returned "}${formatSats(m.amountMsats)}`)}</title>`;
      const guide = `<line x1="${f(mx)}" y1="${CHART.top}" x2="${f(mx)}" y2="${axisY}" stroke="${m.what === "credit" ? COLORS.credit : COLORS.back}" stroke-dasharray="3 3" stroke-width="1"/>`;
      const shape =
        m.what === "credit"
          ? `<path class="mark-credit" d="M${f(mx)},${axisY - 12} l6,10 h-12 z" fill="${COLORS.credit}">${title}</path>`
          : `<path class="mark-return" d="M${f(mx)},${axisY - 2} l6,-10 h-12 z" fill="${COLORS.back}">${title}</path>`;
      return guide + shape;
    })
    .join("\n");
  const credits = inRange.filter((m) => m.what === "credit").length;
  const returns = inRange.length - credits;
  const legendY = CHART.h - 12;
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${CHART.w} ${CHART.h}" width="${CHART.w}" height="${CHART.h}" role="img" aria-label="pool balance over time">
${yTicks}
<line x1="${CHART.left}" y1="${axisY}" x2="${CHART.w - CHART.right}" y2="${axisY}" stroke="${COLORS.axis}"/>
<line x1="${CHART.left}" y1="${CHART.top}" x2="${CHART.left}" y2="${axisY}" stroke="${COLORS.axis}"/>
${xTicks}
<text x="16" y="${f(CHART.top + plotH / 2)}" transform="rotate(-90 16 ${f(CHART.top + plotH / 2)})" text-anchor="middle" font-size="12" fill="${COLORS.text}">pool balance (sats)</text>
<text x="${f(CHART.left + plotW / 2)}" y="${axisY + 36}" text-anchor="middle" font-size="12" fill="${COLORS.text}">time (UTC), ${esc(isoTime(minT).slice(0, 10))}${isoTime(maxT).slice(0, 10) !== isoTime(minT).slice(0, 10) ? ` to ${esc(isoTime(maxT).slice(0, 10))}` : ""}</text>
${markShapes}
<polyline points="${line.join(" ")}" fill="none" stroke="${COLORS.line}" stroke-width="2"/>
${dots}
<line x1="${CHART.left}" y1="${legendY - 4}" x2="${CHART.left + 22}" y2="${legendY - 4}" stroke="${COLORS.line}" stroke-width="2"/>
<text x="${CHART.left + 28}" y="${legendY}" font-size="12" fill="${COLORS.text}">pool balance</text>
<path d="M${CHART.left + 136},${legendY - 10} l6,10 h-12 z" fill="${COLORS.credit}"/>
<text x="${CHART.left + 148}" y="${legendY}" font-size="12" fill="${COLORS.text}" id="chart-credits">${esc(countText(credits, "credit"))}</text>
<path d="M${CHART.left + 256},${legendY} l6,-10 h-12 z" fill="${COLORS.back}"/>
<text x="${CHART.left + 268}" y="${legendY}" font-size="12" fill="${COLORS.text}" id="chart-returns">${esc(countText(returns, "void or expiry", "voids and expiries"))} (back to the pool)</text>
</svg>
<p class="sub">Every change of the balance (the last ${CHART_MAX_POINTS} at most): each reservation takes its amount, a void or expiry gives back what was not used, a credit adds; hover a point for what it was.</p>`;
}

// ---- decisions ---------------------------------------------------------------------

const DECISION_COLORS: Record<(typeof STORED_DECISIONS)[number], string> = { free: "#1f9d55", partial: "#3f8fcf", gate: "#e0a526", blocked: "#c8372d" };

function decisionsSection(d: PageData): string {
  return `<h2>Decisions per hour</h2>
${decisionsChart(d.decisionsByHour)}
<h2>Decisions by outcome</h2>
${decisionsTable(d)}`;
}

/** Stacked bars, one per hour: free, partial, gate and blocked requests decided in it. */
export function decisionsChart(buckets: HourBucket[]): string {
  const C = { w: 960, h: 260, left: 64, right: 24, top: 16, bottom: 64 };
  const plotW = C.w - C.left - C.right;
  const plotH = C.h - C.top - C.bottom;
  const axisY = C.top + plotH;
  const totalOf = (b: HourBucket) => STORED_DECISIONS.reduce((n, k) => n + b.counts[k], 0);
  const max = Math.max(1, ...buckets.map(totalOf));
  const yTicks = ticks(0, max, 4, 1);
  const top = Math.max(max, yTicks.at(-1) ?? max);
  const y = (n: number) => axisY - (n / top) * plotH;
  const slot = plotW / Math.max(1, buckets.length);
  const f = (n: number) => n.toFixed(1);
  const bars = buckets
    .map((b, i) => {
      let acc = 0;
      const bx = C.left + i * slot + slot * 0.15;
      return STORED_DECISIONS.filter((k) => b.counts[k] > 0)
        .map((k) => {
          const y0 = y(acc);
          acc += b.counts[k];
          return `<rect x="${f(bx)}" y="${f(y(acc))}" width="${f(slot * 0.7)}" height="${f(y0 - y(acc))}" fill="${DECISION_COLORS[k]}"><title>${esc(`${isoTime(b.startMs)} + 1 h: ${b.counts[k]} ${k}`)}</title></rect>`;
        })
        .join("");
    })
    .join("\n");
  const grid = yTicks
    .map(
      (v) =>
        `<line x1="${C.left}" y1="${f(y(v))}" x2="${C.w - C.right}" y2="${f(y(v))}" stroke="${COLORS.grid}"/>` +
        `<text x="${C.left - 6}" y="${f(y(v) + 4)}" text-anchor="end" font-size="12" fill="${COLORS.text}">${v}</text>`,
    )
    .join("\n");
  const xLabels = buckets
    .map((b, i) =>
      i % 3 === 0
        ? `<text x="${f(C.left + i * slot)}" y="${axisY + 17}" font-size="12" fill="${COLORS.text}">${esc(new Date(b.startMs).toISOString().slice(11, 16))}</text>`
        : "",
    )
    .join("");
  const sums = Object.fromEntries(STORED_DECISIONS.map((k) => [k, buckets.reduce((n, b) => n + b.counts[k], 0)]));
  const legend = STORED_DECISIONS.map(
    (k, i) =>
      `<rect x="${C.left + i * 130}" y="${C.h - 20}" width="12" height="12" fill="${DECISION_COLORS[k]}"/>` +
      `<text x="${C.left + i * 130 + 17}" y="${C.h - 10}" font-size="12" fill="${COLORS.text}" id="chart-decisions-${k}">${esc(`${k} ${sums[k]}`)}</text>`,
  ).join("\n");
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${C.w} ${C.h}" width="${C.w}" height="${C.h}" role="img" aria-label="decisions per hour">
${grid}
<line x1="${C.left}" y1="${axisY}" x2="${C.w - C.right}" y2="${axisY}" stroke="${COLORS.axis}"/>
<line x1="${C.left}" y1="${C.top}" x2="${C.left}" y2="${axisY}" stroke="${COLORS.axis}"/>
<text x="14" y="${f(C.top + plotH / 2)}" transform="rotate(-90 14 ${f(C.top + plotH / 2)})" text-anchor="middle" font-size="12" fill="${COLORS.text}">requests per hour</text>
${bars}
${xLabels}
<text x="${f(C.left + plotW / 2)}" y="${axisY + 34}" text-anchor="middle" font-size="12" fill="${COLORS.text}">hour (UTC), the last 24 hours</text>
${legend}
</svg>`;
}

function decisionsTable(d: PageData): string {
  const rows = DECISION_OUTCOMES.map((o) => {
    const stored = o === "error" || o === "ignored" ? null : o;
    const cell = (m: Record<string, number>, id: string) =>
      `<td class="n"${stored === null ? "" : ` id="${id}"`}>${stored === null ? "–" : esc(m[stored] ?? 0)}</td>`;
    return `<tr><td>${esc(o)}</td>${cell(d.decisions24h, `decisions-${o}-24h`)}${cell(d.decisionsAll, `decisions-${o}-all`)}<td class="n">${esc(d.decisionsSinceStart[o])}</td></tr>`;
  }).join("\n");
  return `<table><thead><tr><th>outcome</th><th class="n">last 24 h</th><th class="n">all time</th><th class="n">since start</th></tr></thead>
<tbody>
${rows}
</tbody></table>
<p class="sub">Last 24 h and all time count decided requests in the ledger; since start counts this process's intake, including requests answered with an error and requests ignored.</p>`;
}

// ---- relays ------------------------------------------------------------------------

function relaysSection(d: PageData): string {
  if (d.relays.length === 0) return `<h2>Relays</h2>\n<p class="empty" id="relays-none">no relay connection reported yet</p>`;
  const up = d.relays.filter((r) => r.up).length;
  const rows = d.relays
    .map((r) => `<tr><td><code>${esc(r.relay)}</code></td><td class="${r.up ? "up" : "down"}">${r.up ? "● connected" : "○ down"}</td></tr>`)
    .join("\n");
  return `<h2>Relays</h2>
<p class="sub" id="relays-summary">${esc(`${up} of ${d.relays.length} connected`)}</p>
<table><thead><tr><th>relay</th><th>connection</th></tr></thead><tbody>
${rows}
</tbody></table>`;
}

// ---- grants and budgets ------------------------------------------------------------

function grantsSection(d: PageData): string {
  return `<h2>Recent grants</h2>\n${grantsTable(d.recentGrants)}`;
}

function budgetsSection(d: PageData): string {
  return `<h2>Tier budgets</h2>\n${budgetsTable(d)}`;
}

function grantsTable(grants: GrantRecord[]): string {
  if (grants.length === 0) return `<p class="empty">no grants yet</p>`;
  const rows = grants
    .map(
      (g) =>
        `<tr><td class="n">${esc(g.seq)}</td><td>${esc(isoTime(g.createdAtMs))}</td><td><code title="${esc(g.pubkey)}">${esc(shortNpub(g.pubkey))}</code></td>` +
        `<td>${esc(g.label)}</td><td class="n">${esc(formatSats(g.absorbedMsats))}</td><td class="n">${esc(formatSats(g.chargedMsats))}</td>` +
        `<td>${esc(g.tier)}</td><td><code title="${esc(g.eventId ?? "")}">${esc(shortId(g.eventId))}</code></td></tr>`,
    )
    .join("\n");
  return `<table><thead><tr><th class="n">seq</th><th>time (UTC)</th><th>customer</th><th>label</th><th class="n">absorbed</th><th class="n">charged</th><th>tier</th><th>event</th></tr></thead>
<tbody>
${rows}
</tbody></table>`;
}

function budgetsTable(d: PageData): string {
  const tiers = TIERS.map((t) => `<tr><td>${esc(t)}</td><td class="n">${esc(formatSats(d.budgetsMsats[t]))}/day</td></tr>`).join("\n");
  const prices = d.pricesMsats.map(([k, p]) => `<tr><td>kind ${esc(k)}</td><td class="n">${esc(formatSats(p))}</td></tr>`).join("\n");
  return `<table><thead><tr><th>tier</th><th class="n">free budget</th></tr></thead><tbody>
${tiers}
</tbody></table>
<h2>Job prices</h2>
<table><thead><tr><th>job</th><th class="n">price</th></tr></thead><tbody>
${prices}
</tbody></table>`;
}
