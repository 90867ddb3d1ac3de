// Web-of-trust floors (SPEC §5): signed events from keys the operator chose lift a
// customer to at least a configured tier. Two sources:
//  - NIP-02 contact lists (kind 3) of the anchors: every followed pubkey gets `followFloor`;
//  - NIP-85 trusted assertions (kind 30382, d = subject, `rank` 0–100) by the rank
//    provider: the best `rankFloors` entry whose minRank the rank reaches.
// Nothing a customer signs about themselves counts: only the anchors' and the
// provider's own events are read, and an anchor's or provider's own key is never lifted
// by its own list.
import type { Filter } from "nostr-tools/filter";
import { SafePool } from "../relay/safe-pool.js";
import { Contacts } from "nostr-tools/kinds";
import { verifyEvent, type Event } from "nostr-tools/pure";
import type { Logger } from "pino";
import type { RuntimeConfig, TrustSettings } from "../config/load.js";
import type { Ledger } from "../ledger/ledger.js";
import { maxTier, type Tier } from "../policy/tiers.js";
import { HEX64 } from "../util/hex.js";

export const CONTACTS_KIND = Contacts;
export const TRUSTED_ASSERTION_KIND = 30382;
/** Upper bound on pubkeys lifted from one refresh (a contact list can be huge). */
export const MAX_WOT_FLOORS = 200_000;

type WotSettings = TrustSettings["wot"];

function verified(ev: Event): boolean {
  // nostr-tools caches its verdict on the object under a symbol, and object spread
  // copies symbols too: rebuild the event from its fields so the signature is checked.
  const { id, pubkey, created_at, kind, tags, content, sig } = ev;
  return verifyEvent({ id, pubkey, created_at, kind, tags, content, sig });
}

/** Keeps, per (author, d-tag or kind), only the newest event, as replaceable events work. */
function newestPerAddress(events: Event[]): Event[] {
  const best = new Map<string, Event>();
  for (const ev of events) {
    const d = ev.kind === TRUSTED_ASSERTION_KIND ? (ev.tags.find((t) => t[0] === "d")?.[1] ?? "") : "";
    const key = `${ev.pubkey}:${ev.kind}:${d}`;
    const prev = best.get(key);
    if (!prev || ev.created_at > prev.created_at || (ev.created_at === prev.created_at && ev.id < prev.id)) best.set(key, ev);
  }
  return [...best.values()];
}

/** Pure: the floors these events justify under `settings`. Events that fail verification are ignored. */
export function computeWotFloors(events: Event[], settings: WotSettings): Map<string, Tier> {
  const anchors = new Set(settings.anchors);
  const floors = new Map<string, Tier>();
  const lift = (pk: string, tier: Tier) => {
    if (floors.size >= MAX_WOT_FLOORS && !floors.has(pk)) return;
    floors.set(pk, maxTier(tier, floors.get(pk)));
  };
  const rankFloors = [...settings.rankFloors].sort((a, b) => b.minRank - a.minRank);
  for (const ev of newestPerAddress(events.filter(verified))) {
    if (ev.kind === CONTACTS_KIND && anchors.has(ev.pubkey)) {
      for (const t of ev.tags) if (t[0] === "p" && typeof t[1] === "string" && HEX64.test(t[1]) && t[1] !== ev.pubkey) lift(t[1], settings.followFloor);
    } else if (ev.kind === TRUSTED_ASSERTION_KIND && settings.rankProvider && ev.pubkey === settings.rankProvider) {
      const subject = ev.tags.find((t) => t[0] === "d")?.[1];
      const rankText = ev.tags.find((t) => t[0] === "rank")?.[1];
      if (!subject || !HEX64.test(subject) || subject === ev.pubkey || !rankText || !/^\d{1,3}$/.test(rankText)) continue;
      const rank = Number(rankText);
      if (rank > 100) continue;
      const floor = rankFloors.find((f) => rank >= f.minRank);
      if (floor) lift(subject, floor.tier);
    }
  }
  return floors;
}

export function wotFilters(settings: WotSettings): Filter[] {
  const filters: Filter[] = [];
  if (settings.anchors.length) filters.push({ kinds: [CONTACTS_KIND], authors: settings.anchors });
  if (settings.rankProvider && settings.rankFloors.length) filters.push({ kinds: [TRUSTED_ASSERTION_KIND], authors: [settings.rankProvider] });
  return filters;
}

/**
 * Fetches the anchors' and provider's events from `relays` (network, outside any
 * transaction), then replaces the cached floors in one transaction.
 */
export async function refreshWotFloors(
  ledger: Ledger,
  relays: string[],
  settings: WotSettings,
  nowMs: () => number,
  opts: { maxWaitMs?: number } = {},
): Promise<{ events: number; floors: number; set: number; cleared: number } | { skipped: string } | null> {
  const filters = wotFilters(settings);
  if (filters.length === 0 || relays.length === 0) return null;
  // Signatures are checked in computeWotFloors, on fresh copies; the pool need not.
  const pool = new SafePool({ maxWaitForConnection: opts.maxWaitMs ?? 5_000 });
  try {
    const events: Event[] = [];
    for (const f of filters) events.push(...(await pool.querySync(relays, f, { maxWait: opts.maxWaitMs ?? 5_000 })));
    // An unreachable relay answers with nothing: replacing the floors with what came
    // back would lower every vouched-for customer's tier. Refresh only on a full answer.
    const missing = settings.anchors.filter((a) => !events.some((e) => e.kind === CONTACTS_KIND && e.pubkey === a));
    if (missing.length > 0) return { skipped: `no contact list from ${missing.length} of ${settings.anchors.length} anchors` };
    if (settings.rankProvider && settings.rankFloors.length && !events.some((e) => e.kind === TRUSTED_ASSERTION_KIND))
      return { skipped: "no rank assertions from the provider" };
    const floors = computeWotFloors(events, settings);
    const changed = ledger.replaceWotFloors(floors, "web of trust", nowMs());
    return { events: events.length, floors: floors.size, ...changed };
  } finally {
    pool.close(relays);
  }
}

/**
 * Refreshes the floors at start and every `trust.wot.refreshSec` while the service runs.
 * Returns null when no anchor or rank provider is configured. A failed refresh keeps
 * the floors already cached (logged), so a relay outage never lowers anyone's tier.
 */
export function startWotRefresh(ledger: Ledger, cfg: RuntimeConfig, log: Logger, nowMs: () => number): { stop: () => Promise<void> } | null {
  const settings = cfg.trust.wot;
  if (wotFilters(settings).length === 0 || cfg.nostr.relays.length === 0) return null;
  let running: Promise<void> = Promise.resolve();
  const once = () => {
    running = refreshWotFloors(ledger, cfg.nostr.relays, settings, nowMs)
      .then((r) =>
        r && "skipped" in r
          ? log.warn({ why: r.skipped }, "web-of-trust refresh incomplete; keeping the cached floors")
          : log.info({ wot: r }, "web-of-trust floors refreshed"),
      )
      .catch((err: Error) => log.warn({ err: err.message }, "web-of-trust refresh failed; keeping the cached floors"));
  };
  once();
  const timer = setInterval(once, settings.refreshSec * 1000);
  timer.unref();
  return {
    stop: async () => {
      clearInterval(timer);
      await running;
    },
  };
}
