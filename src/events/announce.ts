// The gate's two public self-descriptions: the pool status (NIP-78 kind 30078, what
// the pool holds and what each tier may draw) and the NIP-89 handler announcement
// (kind 31990, which job kinds it serves at what price). Both are parameterized
// replaceable, so a newer one replaces the last; an auditor reads the budgets here.
import { Application, Handlerinformation, Label } from "nostr-tools/kinds";
import type { Event, EventTemplate } from "nostr-tools/pure";
import type { Totals } from "../policy/pool.js";
import { TIERS, type Tier } from "../policy/tiers.js";
import { isMsats } from "../util/money.js";

export const POOL_STATUS_KIND = Application;
export const POOL_STATUS_D = "dvm-gate/pool";
export const ANNOUNCEMENT_KIND = Handlerinformation;
/** One handler per gate key: re-announcing replaces the last announcement. */
export const ANNOUNCEMENT_D = "dvm-gate";

export interface PoolStatus extends Totals {
  budgetsMsats: Record<Tier, number>;
  updatedAtSec: number;
}

export function poolStatusTemplate(t: Totals, budgetsMsats: Record<Tier, number>, nowSec: number): EventTemplate {
  const content: PoolStatus = {
    initialMsats: t.initialMsats,
    creditedMsats: t.creditedMsats,
    absorbedMsats: t.absorbedMsats,
    pendingMsats: t.pendingMsats,
    poolMsats: t.poolMsats,
    budgetsMsats: { new: budgetsMsats.new, established: budgetsMsats.established, trusted: budgetsMsats.trusted, elite: budgetsMsats.elite },
    updatedAtSec: nowSec,
  };
  return {
    kind: POOL_STATUS_KIND,
    created_at: nowSec,
    tags: [
      ["d", POOL_STATUS_D],
      ["alt", "dvm-gate generosity pool status: totals and daily free-tier budgets per tier (msats)"],
    ],
    content: JSON.stringify(content),
  };
}

/** Reads a pool status event's content; a reason string when it is not one. Does not check the signature. */
export function parsePoolStatus(ev: Event): PoolStatus | string {
  if (ev.kind !== POOL_STATUS_KIND) return `kind ${ev.kind} is not ${POOL_STATUS_KIND}`;
  if (!ev.tags.some((t) => t[0] === "d" && t[1] === POOL_STATUS_D)) return `missing ["d", "${POOL_STATUS_D}"]`;
  let c: unknown;
  try {
    c = JSON.parse(ev.content);
  } catch {
    return "content is not JSON";
  }
  if (typeof c !== "object" || c === null) return "content is not a JSON object";
  const o = c as Record<string, unknown>;
  const fields = ["initialMsats", "creditedMsats", "absorbedMsats", "pendingMsats", "poolMsats"] as const;
  for (const f of fields) if (!isMsats(o[f])) return `${f} is not whole msats`;
  const b = o.budgetsMsats as Record<string, unknown> | undefined;
  if (typeof b !== "object" || b === null) return "budgetsMsats missing";
  for (const tier of TIERS) if (!isMsats(b[tier])) return `budgetsMsats.${tier} is not whole msats`;
  return {
    initialMsats: o.initialMsats as number,
    creditedMsats: o.creditedMsats as number,
    absorbedMsats: o.absorbedMsats as number,
    pendingMsats: o.pendingMsats as number,
    poolMsats: o.poolMsats as number,
    budgetsMsats: { new: b.new as number, established: b.established as number, trusted: b.trusted as number, elite: b.elite as number },
    updatedAtSec: typeof o.updatedAtSec === "number" ? o.updatedAtSec : ev.created_at,
  };
}

export interface AnnouncementOptions {
  gatePubkey: string;
  /** kind → price in msats. */
  kinds: ReadonlyMap<number, number>;
  budgetsMsats: Record<Tier, number>;
  name?: string;
  about?: string;
}

export function announcementTemplate(opts: AnnouncementOptions, nowSec: number): EventTemplate {
  const kinds = [...opts.kinds.keys()].sort((a, b) => a - b);
  const content = {
    name: opts.name ?? "dvm-gate",
    about:
      opts.about ??
      "A NIP-90 Data Vending Machine behind dvm-gate: known customers are served free from a shared generosity pool within a daily budget per trust tier; everyone else pays by Lightning invoice.",
    // NIP-89 has no pricing field: these are ours, in msats like NIP-90's amount and bid.
    pricing: kinds.map((k) => ({ kind: k, priceMsats: opts.kinds.get(k)! })),
    freeTier: {
      budgetsMsats: { ...opts.budgetsMsats },
      window: "rolling 24 h",
      poolStatus: { kind: POOL_STATUS_KIND, d: POOL_STATUS_D },
      grants: { kind: Label, L: "dvm-gate/grant" },
    },
    gatePubkey: opts.gatePubkey,
    // SPEC §11: the fields clients read, in both spellings (nostrdvm writes the second of
    // each pair, Primal reads the first). `amount` is display text: "free" when nothing
    // costs anything, else the lowest price.
    amount: lowestPriceText(opts.kinds),
    encryptionSupported: true,
    supportsEncryption: true,
    cashuAccepted: false,
    acceptsNutZaps: false,
  };
  return {
    kind: ANNOUNCEMENT_KIND,
    created_at: nowSec,
    tags: [["d", ANNOUNCEMENT_D], ...kinds.map((k) => ["k", String(k)]), ["alt", "NIP-90 DVM handler announcement (dvm-gate)"]],
    content: JSON.stringify(content),
  };
}

function lowestPriceText(kinds: ReadonlyMap<number, number>): string {
  const prices = [...kinds.values()];
  const lowest = prices.length ? Math.min(...prices) : 0;
  if (lowest === 0 && prices.every((p) => p === 0)) return "free";
  return lowest % 1000 === 0 ? `${lowest / 1000} sats` : `${lowest} msats`;
}

export const HEARTBEAT_KIND = 11998;

/**
 * SPEC §11 liveness, as nostrdvm writes it: the announcement's `d`, a `status` and an
 * `expiration` two periods ahead, so one lost heartbeat does not make the gate look offline.
 */
export function heartbeatTemplate(o: { status: string; periodSec: number }, nowSec: number): EventTemplate {
  return {
    kind: HEARTBEAT_KIND,
    created_at: nowSec,
    tags: [
      ["d", ANNOUNCEMENT_D],
      ["status", o.status],
      ["expiration", String(nowSec + 2 * o.periodSec)],
    ],
    content: "",
  };
}
