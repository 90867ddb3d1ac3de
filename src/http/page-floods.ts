// The operator page's floods section: what waits to be decided, what was shed unseen,
// what the invoice limits refused, and how fast decisions go (since this process started).
import { TIERS } from "../policy/tiers.js";
import type { FloodStats } from "./flood-stats.js";
import { esc } from "./page.js";

export function floodsSection(f: FloodStats): string {
  const rows = [...TIERS]
    .reverse()
    .map(
      (t) =>
        `<tr><td>${esc(t)}</td><td class="n">${esc(f.depths[t])}</td><td class="n">${esc(f.shed[t].full)}</td><td class="n">${esc(f.shed[t].stale)}</td></tr>`,
    )
    .join("\n");
  const lim = f.limited;
  return `<h2>Floods</h2>
<p class="sub">${esc(f.decisionsPerSecond.toFixed(1))} decisions/s over the last 10 s · invoices refused by a limit: ${esc(lim["open-invoices"].replied + lim["open-invoices"].silent)} over the open invoices per pubkey, ${esc(lim["new-tier-rate"].replied + lim["new-tier-rate"].silent)} over tier new's invoices a minute (${esc(lim["open-invoices"].replied + lim["new-tier-rate"].replied)} answered <code>rate-limited:</code>, the rest dropped silently)</p>
<table><thead><tr><th>tier</th><th class="n">waiting</th><th class="n">shed (queues full)</th><th class="n">shed (stale)</th></tr></thead>
<tbody>
${rows}
</tbody></table>`;
}
