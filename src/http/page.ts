// The operator page (`GET /`): pool balance over time, decisions by outcome, recent
// grants and tier budgets, as one self-contained HTML document. No script and no
// external asset: the chart is SVG drawn here, the one style block is allowed by its
// hash in the Content-Security-Policy. Every value printed goes through `esc`.
import { createHash } from "node:crypto";
import { nip19 } from "nostr-tools";
import type { RuntimeConfig } from "../config/load.js";
import type { GrantRecord, Ledger, Totals } from "../ledger/ledger.js";
import { TIERS, type Tier } from "../policy/tiers.js";
import { formatSats } from "../util/money.js";
import { DECISION_OUTCOMES, type DecisionOutcome, type GateMetrics } from "./metrics.js";

/** Grants read for the balance chart (the newest ones); the table shows fewer. */
export const CHART_MAX_POINTS = 500;
export const RECENT_GRANTS = 20;
const DAY_MS = 86_400_000;

export interface BalancePoint {
  atMs: number;
  poolMsats: number;
  /** What the point is: "seed", "grant #n" or "now". */
  what: string;
}

export interface PageData {
  gatePubkey: string;
  nowMs: number;
  totals: Totals;
  balance: BalancePoint[];
  decisions24h: Record<string, number>;
  decisionsAll: Record<string, number>;
  decisionsSinceStart: Record<DecisionOutcome, number>;
  recentGrants: GrantRecord[];
  budgetsMsats: Record<Tier, number>;
  pricesMsats: [number, number][];
  /** Customers' prepaid balances (SPEC §12): available plus held by open jobs. */
  balancesHeldMsats?: number;
}

/** Everything the page shows, read with SELECTs only. */
export async function loadPageData(ledger: Ledger, cfg: RuntimeConfig, metrics: GateMetrics, gatePubkey: string, nowMs: number): Promise<PageData> {
  const read = ledger.db.transaction(() => {
    const totals = ledger.totals();
    const lastSeq = (ledger.db.prepare("SELECT COALESCE(MAX(seq), 0) AS n FROM grants").get() as { n: number }).n;
    const grants = lastSeq === 0 ? [] : ledger.grants({ afterSeq: Math.max(0, lastSeq - CHART_MAX_POINTS), limit: CHART_MAX_POINTS });
    const seed = ledger.db.prepare("SELECT initial_msats, seeded_at_ms FROM pool WHERE id = 1").get() as
      | { initial_msats: number; seeded_at_ms: number }
      | undefined;
    const byDecision = (sinceMs: number) =>
      Object.fromEntries(
        (
          ledger.db.prepare("SELECT decision, COUNT(*) AS n FROM requests WHERE created_at_ms > ? GROUP BY decision").all(sinceMs) as {
            decision: string;
            n: number;
          }[]
        ).map((r) => [r.decision, r.n]),
      );
    const bt = ledger.balances.totals();
    return { balancesHeldMsats: bt.balanceMsats + bt.heldMsats, totals, grants, seed, decisions24h: byDecision(nowMs - DAY_MS), decisionsAll: byDecision(-1) };
  })();

  const balance: BalancePoint[] = [];
  // The seed point only belongs on the chart when the chart starts at the first grant.
  if (read.seed && (read.grants[0]?.seq ?? 1) === 1) balance.push({ atMs: read.seed.seeded_at_ms, poolMsats: read.seed.initial_msats, what: "seed" });
  for (const g of read.grants) balance.push({ atMs: g.createdAtMs, poolMsats: g.totals.poolMsats, what: `grant #${g.seq}` });
  balance.push({ atMs: nowMs, poolMsats: read.totals.poolMsats, what: "now" });
  // A step line needs time order; processes sharing the file may have clocks a little apart.
  balance.sort((a, b) => a.atMs - b.atMs);

  return {
    gatePubkey,
    nowMs,
    totals: read.totals,
    balance,
    decisions24h: read.decisions24h,
    decisionsAll: read.decisionsAll,
    decisionsSinceStart: await metrics.decisionCounts(),
    recentGrants: read.grants.slice(-RECENT_GRANTS).reverse(),
    budgetsMsats: cfg.freeTier.budgetsMsats,
    pricesMsats: [...cfg.jobs.priceMsatsByKind.entries()].sort((a, b) => a[0] - b[0]),
    balancesHeldMsats: read.balancesHeldMsats,
  };
}

export const PAGE_CSS = `
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#1d2430;background:#fbfbfd}
h1{font-size:1.4rem;margin-bottom:.2rem}h2{font-size:1.1rem;margin-top:2rem;border-bottom:1px solid #d8dce4}
.sub{color:#5b6575;margin-top:0}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.25rem .6rem;border-bottom:1px solid #e6e9ef}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:.92em}.cards{display:flex;gap:1rem;flex-wrap:wrap}.card{background:#fff;border:1px solid #e1e5ec;border-radius:6px;padding:.6rem .9rem}
.card b{display:block;font-size:1.15rem}svg{background:#fff;border:1px solid #e1e5ec;border-radius:6px;max-width:100%;height:auto}
.empty{color:#5b6575;font-style:italic}`;

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
  return Number.isFinite(ms) ? new Date(ms).toISOString().replace("T", " ").replace(/\.\d{3}Z$/, "Z") : "?";
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

export function renderPage(d: PageData): string {
  const t = d.totals;
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
<div class="cards">
${card("pool", t.poolMsats)}${card("pending", t.pendingMsats)}${card("absorbed", t.absorbedMsats)}${card("credited", t.creditedMsats)}${card("initial", t.initialMsats)}${d.balancesHeldMsats !== undefined ? card("customer balances", d.balancesHeldMsats) : ""}
</div>
<h2>Pool balance over time</h2>
${balanceChart(d.balance)}
<h2>Decisions by outcome</h2>
${decisionsTable(d)}
<h2>Recent grants</h2>
${grantsTable(d.recentGrants)}
<h2>Tier budgets</h2>
${budgetsTable(d)}
</body></html>
`;
}

function card(label: string, msats: number): string {
  return `<div class="card">${esc(label)}<b>${esc(formatSats(msats))}</b></div>`;
}

const CHART = { w: 720, h: 240, left: 80, right: 16, top: 16, bottom: 36 };

/** A step line: the balance holds between points and jumps at each one. */
export function balanceChart(points: BalancePoint[]): string {
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
  const line: string[] = [];
  points.forEach((p, i) => {
    if (i > 0) line.push(`${f(x(p.atMs))},${f(y(points[i - 1]!.poolMsats))}`);
    line.push(`${f(x(p.atMs))},${f(y(p.poolMsats))}`);
  });
  const dots = points
    .map((p) => `<circle cx="${f(x(p.atMs))}" cy="${f(y(p.poolMsats))}" r="2.5" fill="#2a6fdb"><title>${esc(`${p.what} · ${isoTime(p.atMs)} · ${formatSats(p.poolMsats)}`)}</title></circle>`)
    .join("");
  const axisY = CHART.top + plotH;
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${CHART.w} ${CHART.h}" width="${CHART.w}" height="${CHART.h}" role="img" aria-label="pool balance over time">
<line x1="${CHART.left}" y1="${axisY}" x2="${CHART.w - CHART.right}" y2="${axisY}" stroke="#9aa3b2"/>
<line x1="${CHART.left}" y1="${CHART.top}" x2="${CHART.left}" y2="${axisY}" stroke="#9aa3b2"/>
<text x="${CHART.left - 6}" y="${CHART.top + 4}" text-anchor="end" font-size="11" fill="#5b6575">${esc(formatSats(maxV))}</text>
<text x="${CHART.left - 6}" y="${axisY}" text-anchor="end" font-size="11" fill="#5b6575">${esc(formatSats(minV))}</text>
<text x="${CHART.left}" y="${CHART.h - 10}" font-size="11" fill="#5b6575">${esc(isoTime(minT))}</text>
<text x="${CHART.w - CHART.right}" y="${CHART.h - 10}" text-anchor="end" font-size="11" fill="#5b6575">${esc(isoTime(maxT))}</text>
<polyline points="${line.join(" ")}" fill="none" stroke="#2a6fdb" stroke-width="2"/>
${dots}
</svg>
<p class="sub">Balance after each grant (the last ${CHART_MAX_POINTS} at most) and now; credits, voids and expiries show up at the next point.</p>`;
}

function decisionsTable(d: PageData): string {
  const rows = DECISION_OUTCOMES.map((o) => {
    const stored = o === "error" || o === "ignored" ? null : o;
    const cell = (m: Record<string, number>) => `<td class="n">${stored === null ? "–" : esc(m[stored] ?? 0)}</td>`;
    return `<tr><td>${esc(o)}</td>${cell(d.decisions24h)}${cell(d.decisionsAll)}<td class="n">${esc(d.decisionsSinceStart[o])}</td></tr>`;
  }).join("\n");
  return `<table><thead><tr><th>outcome</th><th class="n">last 24 h</th><th class="n">all time</th><th class="n">since start</th></tr></thead>
<tbody>
${rows}
</tbody></table>
<p class="sub">Last 24 h and all time count decided requests in the ledger; since start counts this process's intake, including requests answered with an error and requests ignored.</p>`;
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
