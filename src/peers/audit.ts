// The auditor's view of the pool (SPEC §4): from the gate's public grant events alone,
// check every signature, the hash chain, the conservation of the totals and each
// customer's rolling 24 h budget. Pure: the caller fetches the events (fetchAuditEvents
// below does it from relays) and decides what to do with the report.
import type { Event } from "nostr-tools/pure";
import { totalsBalance, type Totals } from "../policy/pool.js";
import { isTier, type Tier } from "../policy/tiers.js";
import { GRANT_KIND, GRANT_NAMESPACE, parseGrantEvent, type ParsedGrant } from "../events/grant-event.js";
import { parsePoolStatus, POOL_STATUS_D, POOL_STATUS_KIND, type PoolStatus } from "../events/announce.js";
import { toVerifiedEvent } from "../events/verify.js";

export type AuditCheck = "signature" | "chain" | "totals" | "budget" | "format";

export interface AuditProblem {
  check: AuditCheck;
  detail: string;
}

export interface AuditReport {
  ok: boolean;
  grants: number;
  customers: number;
  problems: AuditProblem[];
  last?: { seq: number; totals: Totals };
  /** Where the budgets came from, or why the budget check did not run. */
  notes?: string[];
}

export interface AuditOptions {
  /** The events start at some later grant (fetched with --since): the chain may start above seq 1. */
  partial?: boolean;
}

const WINDOW_SEC = 86_400;
/** Bounds the paging loop whatever a relay answers. */
const MAX_PAGES = 10_000;
/** Problems listed per check before the rest are summarised, so a broken history cannot flood the report. */
const MAX_PROBLEMS_PER_CHECK = 50;
const ORDER: AuditCheck[] = ["signature", "format", "chain", "totals", "budget"];

class Problems {
  private byCheck = new Map<AuditCheck, string[]>();
  private dropped = new Map<AuditCheck, number>();
  add(check: AuditCheck, detail: string): void {
    const list = this.byCheck.get(check) ?? [];
    if (list.length >= MAX_PROBLEMS_PER_CHECK) this.dropped.set(check, (this.dropped.get(check) ?? 0) + 1);
    else list.push(detail);
    this.byCheck.set(check, list);
  }
  list(): AuditProblem[] {
    const out: AuditProblem[] = [];
    for (const check of ORDER) {
      for (const detail of this.byCheck.get(check) ?? []) out.push({ check, detail });
      const n = this.dropped.get(check);
      if (n) out.push({ check, detail: `… and ${n} more ${check} problems` });
    }
    return out;
  }
}

const short = (id: string) => `${id.slice(0, 12)}…`;

/**
 * Audits a gate's grant history. `events` may hold grant events (kind 1985) and pool
 * status events (kind 30078) in any order, duplicates included; anything else is ignored.
 * Budgets come from `budgetsMsats` when given, else from the newest valid pool status
 * event of the gate; with neither, the budget check is skipped and a note says so.
 */
export function auditGrants(events: Event[], gatePubkey: string, budgetsMsats?: Record<Tier, number>, opts: AuditOptions = {}): AuditReport {
  const problems = new Problems();
  const notes: string[] = [];
  const seen = new Set<string>();
  const grants: ParsedGrant[] = [];
  let status: { ev: Event; parsed: PoolStatus } | null = null;

  for (const raw of events) {
    const id = typeof raw?.id === "string" ? raw.id : "";
    if (seen.has(id)) continue;
    seen.add(id);
    const isGrant = raw?.kind === GRANT_KIND && raw.tags?.some?.((t) => t[0] === "L" && t[1] === GRANT_NAMESPACE);
    const isStatus = raw?.kind === POOL_STATUS_KIND && raw.tags?.some?.((t) => t[0] === "d" && t[1] === POOL_STATUS_D);
    if (!isGrant && !isStatus) continue;
    const what = isGrant ? "grant" : "pool status";
    // Verified on a fresh copy: nothing a relay sends can differ from what was checked.
    const ev = toVerifiedEvent(raw);
    if (!ev) {
      problems.add("signature", `${what} event ${short(id)}: id or signature does not verify`);
      continue;
    }
    if (ev.pubkey !== gatePubkey) {
      problems.add("signature", `${what} event ${short(id)} is signed by ${short(ev.pubkey)}, not the gate`);
      continue;
    }
    if (isStatus) {
      const parsed = parsePoolStatus(ev);
      if (typeof parsed === "string") problems.add("format", `pool status event ${short(id)}: ${parsed}`);
      else if (!status || ev.created_at > status.ev.created_at) status = { ev, parsed };
      continue;
    }
    const g = parseGrantEvent(ev);
    if (typeof g === "string") problems.add("format", `grant event ${short(id)}: ${g}`);
    else if (!isTier(g.tier)) problems.add("format", `grant event ${short(id)}: unknown tier ${JSON.stringify(g.tier.slice(0, 20))}`);
    else grants.push(g);
  }

  const chain = checkChain(grants, problems, opts.partial === true);
  checkTotals(chain, problems);
  if (status) {
    const s = status.parsed;
    if (!totalsBalance(s)) problems.add("totals", `pool status ${short(status.ev.id)}: initial + credited ≠ pool + pending + absorbed`);
  }
  const budgets = budgetsMsats ?? status?.parsed.budgetsMsats;
  if (budgets) {
    notes.push(budgetsMsats ? "budgets from the given configuration" : `budgets from the pool status event ${short(status!.ev.id)}`);
    checkBudgets(chain, budgets, problems, notes);
  } else {
    notes.push("budget check skipped: no pool status event and no budgets given");
  }

  const last = chain.at(-1);
  const list = problems.list();
  return {
    ok: list.length === 0,
    grants: grants.length,
    customers: new Set(grants.map((g) => g.pubkey)).size,
    problems: list,
    ...(last ? { last: { seq: last.seq, totals: last.totals } } : {}),
    notes,
  };
}

/** Orders grants by seq, reports gaps, duplicates and broken `prev` links; returns one grant per seq. */
function checkChain(grants: ParsedGrant[], problems: Problems, partial: boolean): ParsedGrant[] {
  const bySeq = new Map<number, ParsedGrant[]>();
  for (const g of grants) bySeq.set(g.seq, [...(bySeq.get(g.seq) ?? []), g]);
  const seqs = [...bySeq.keys()].sort((a, b) => a - b);
  if (seqs.length === 0) return [];
  const first = partial ? seqs[0]! : 1;
  const lastSeq = seqs.at(-1)!;
  let missing = 0;
  for (let s = first; s <= lastSeq; s++) {
    if (bySeq.has(s)) continue;
    missing++;
    if (missing <= MAX_PROBLEMS_PER_CHECK) problems.add("chain", `grant seq ${s} is missing (the chain jumps from ${s - 1} to a later grant)`);
  }
  if (missing > MAX_PROBLEMS_PER_CHECK) problems.add("chain", `${missing} grant seqs are missing in all`);

  const chain: ParsedGrant[] = [];
  for (const s of seqs) {
    const same = bySeq.get(s)!;
    if (same.length > 1) problems.add("chain", `grant seq ${s} appears ${same.length} times (${same.map((g) => short(g.event.id)).join(", ")})`);
    // The earliest of a duplicated seq stands in for the rest, so later checks still run.
    const g = [...same].sort((a, b) => a.event.created_at - b.event.created_at || (a.event.id < b.event.id ? -1 : 1))[0]!;
    const prev = bySeq.get(s - 1);
    if (s === 1 && g.prevEventId !== null) problems.add("chain", `grant seq 1 (${short(g.event.id)}) has a prev tag`);
    if (s > 1 && prev && !prev.some((p) => p.event.id === g.prevEventId))
      problems.add("chain", `grant seq ${s} (${short(g.event.id)}) names prev ${short(g.prevEventId ?? "none")}, not the id of seq ${s - 1}`);
    chain.push(g);
  }
  return chain;
}

/** Conservation on every grant, and totals that only move the way grants and credits move them. */
function checkTotals(chain: ParsedGrant[], problems: Problems): void {
  let before: ParsedGrant | null = null;
  for (const g of chain) {
    const t = g.totals;
    if (!totalsBalance(t))
      problems.add(
        "totals",
        `grant seq ${g.seq}: initial ${t.initialMsats} + credited ${t.creditedMsats} ≠ pool ${t.poolMsats} + pending ${t.pendingMsats} + absorbed ${t.absorbedMsats}`,
      );
    if (before) {
      const b = before.totals;
      if (t.initialMsats !== b.initialMsats) problems.add("totals", `grant seq ${g.seq}: initial changed from ${b.initialMsats} to ${t.initialMsats}`);
      if (t.creditedMsats < b.creditedMsats) problems.add("totals", `grant seq ${g.seq}: credited fell from ${b.creditedMsats} to ${t.creditedMsats}`);
      if (t.absorbedMsats - b.absorbedMsats < g.absorbedMsats)
        problems.add(
          "totals",
          `grant seq ${g.seq}: absorbed total grew by ${t.absorbedMsats - b.absorbedMsats} since seq ${before.seq}, less than this grant's ${g.absorbedMsats}`,
        );
    } else if (t.absorbedMsats < g.absorbedMsats) {
      problems.add("totals", `grant seq ${g.seq}: absorbed total ${t.absorbedMsats} is below this grant's ${g.absorbedMsats}`);
    }
    before = g;
  }
}

/**
 * Per customer, the absorbed msats of grants in any rolling 24 h window stay within the
 * budget of the tier named in the window's latest grant. The window is counted from each
 * grant's `decided` time, exactly as `dvm-gate verify` counts it from the reservation's
 * decision: a job decided at 10:00 and settled at 11:00 was charged to the budget at
 * 10:00. The audit sees only what was absorbed (never more than the ledger counted),
 * and `decided` is whole seconds (floored), so it never flags what verify passes.
 * Grants from gates older than the `decided` tag fall back to their created_at.
 */
function checkBudgets(chain: ParsedGrant[], budgets: Record<Tier, number>, problems: Problems, notes: string[]): void {
  const decidedSec = (g: ParsedGrant) => g.decidedSec ?? g.event.created_at;
  const undated = chain.filter((g) => g.decidedSec === null).length;
  if (undated > 0) notes.push(`${undated} grants have no decided tag: their budget window is counted from created_at`);
  const byCustomer = new Map<string, ParsedGrant[]>();
  for (const g of chain) byCustomer.set(g.pubkey, [...(byCustomer.get(g.pubkey) ?? []), g]);
  for (const [pubkey, list] of byCustomer) {
    list.sort((a, b) => decidedSec(a) - decidedSec(b) || a.seq - b.seq);
    let start = 0;
    let sumMsats = 0;
    for (const g of list) {
      sumMsats += g.absorbedMsats;
      while (decidedSec(list[start]!) <= decidedSec(g) - WINDOW_SEC) sumMsats -= list[start++]!.absorbedMsats;
      const budget = budgets[g.tier as Tier];
      if (sumMsats > budget)
        problems.add(
          "budget",
          `customer ${short(pubkey)} absorbed ${sumMsats} msats in the 24 h up to grant seq ${g.seq}, over the ${g.tier} budget of ${budget} msats`,
        );
    }
  }
}

// ---- fetching from relays ---------------------------------------------------------

export interface FetchAuditOptions {
  relayUrls: string[];
  gatePubkey: string;
  sinceSec?: number;
  /** Events per page (the relay may send fewer). */
  pageSize?: number;
  /** Hard cap on grant events fetched per relay. */
  maxEvents?: number;
  /** Per page and per connection. */
  timeoutMs?: number;
}

export class RelayFetchError extends Error {
  override name = "RelayFetchError";
}

/**
 * Every grant event by the gate (paged backwards with `until`, deduplicated by id) and
 * its pool status events, from each relay. Events are returned unverified: a relay that
 * serves forged or foreign events must show up in the audit, not vanish before it.
 */
export async function fetchAuditEvents(opts: FetchAuditOptions): Promise<{ events: Event[]; truncated: boolean }> {
  const { AbstractRelay } = await import("nostr-tools/abstract-relay");
  const { websocketImplementation } = await import("../relay/ws.js");
  const pageSize = opts.pageSize ?? 500;
  const maxEvents = opts.maxEvents ?? 200_000;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const byId = new Map<string, Event>();
  let truncated = false;

  for (const url of opts.relayUrls) {
    const relay = new AbstractRelay(url, { verifyEvent: () => true, websocketImplementation });
    try {
      await relay.connect({ timeout: timeoutMs }).catch((err: unknown) => {
        throw new RelayFetchError(`cannot connect to ${url}: ${String((err as Error)?.message ?? err)}`);
      });
      const query = (filter: Record<string, unknown>) =>
        new Promise<Event[]>((resolve, reject) => {
          const got: Event[] = [];
          const timer = setTimeout(() => {
            sub.close();
            reject(new RelayFetchError(`${url} did not finish answering within ${timeoutMs} ms`));
          }, timeoutMs);
          const sub = relay.subscribe([filter as never], {
            onevent: (e) => got.push(e),
            oninvalidevent: (e) => got.push(e as Event),
            oneose: () => {
              clearTimeout(timer);
              sub.close();
              resolve(got);
            },
            onclose: (reason) => {
              clearTimeout(timer);
              if (reason.startsWith("closed by caller")) return;
              reject(new RelayFetchError(`${url} closed the query: ${reason}`));
            },
            eoseTimeout: timeoutMs,
          });
        });

      for (const e of await query({ kinds: [POOL_STATUS_KIND], authors: [opts.gatePubkey], "#d": [POOL_STATUS_D], limit: 10 })) byId.set(e.id, e);

      const keep = (page: Event[]) => {
        let fresh = 0;
        for (const e of page) {
          if (typeof e?.id !== "string" || byId.has(e.id)) continue;
          byId.set(e.id, e);
          fresh++;
        }
        return fresh;
      };
      const grantFilter = {
        kinds: [GRANT_KIND],
        authors: [opts.gatePubkey],
        "#L": [GRANT_NAMESPACE],
        ...(opts.sinceSec !== undefined ? { since: opts.sinceSec } : {}),
      };
      let until: number | undefined;
      let fetched = 0;
      for (let pages = 0; pages < MAX_PAGES; pages++) {
        const page = await query({ ...grantFilter, limit: pageSize, ...(until !== undefined ? { until } : {}) });
        if (page.length === 0) break;
        let oldest = Number.POSITIVE_INFINITY;
        for (const e of page) if (typeof e?.created_at === "number") oldest = Math.min(oldest, e.created_at);
        const fresh = keep(page);
        fetched += fresh;
        if (fetched >= maxEvents) {
          truncated = true;
          break;
        }
        if (!Number.isFinite(oldest)) break;
        // `until` is inclusive, so each page overlaps the last by one second and nothing
        // sharing the boundary second is lost. A full page inside one second cannot move
        // on by time: fetch that second alone, then step below it.
        if (oldest === until) {
          fetched += keep(await query({ ...grantFilter, since: oldest, until: oldest, limit: maxEvents }));
          until = oldest - 1;
          continue;
        }
        if (fresh === 0) break;
        until = oldest;
      }
    } finally {
      relay.close();
    }
  }
  return { events: [...byId.values()], truncated };
}
