// Trust tiers from a score with lazy decay, operator pins and web-of-trust floors.
// Pure: no clock, no I/O; `nowMs` is always a parameter.

/** Ordered: a higher index is a higher tier. `banned` is not a tier but a block (SPEC §1). */
export const TIERS = ["new", "established", "trusted", "elite"] as const;
export type Tier = (typeof TIERS)[number];
export const DAY_MS = 86_400_000;

/** The trust model of SPEC §5, as the config states it (config/ fills it, policy reads it). */
export interface TrustSettings {
  pointsPerPaidJob: number;
  abusePenalty: number;
  thresholds: { established: number; trusted: number; elite: number };
  decayAfterDays: number;
  decayPerDay: number;
  wot: { anchors: string[]; followFloor: Tier; rankProvider: string | null; rankFloors: { minRank: number; tier: Tier }[]; refreshSec: number };
}

export function isTier(v: unknown): v is Tier {
  return typeof v === "string" && (TIERS as readonly string[]).includes(v);
}

export function tierRank(t: Tier): number {
  return TIERS.indexOf(t);
}

export function maxTier(a: Tier, b: Tier | null | undefined): Tier {
  return b != null && tierRank(b) > tierRank(a) ? b : a;
}

export function tierForScore(score: number, th: TrustSettings["thresholds"]): Tier {
  if (score >= th.elite) return "elite";
  if (score >= th.trusted) return "trusted";
  if (score >= th.established) return "established";
  return "new";
}

/** What is stored per pubkey; the score is exact as of `scoreAtMs`. */
export interface TrustState {
  score: number;
  scoreAtMs: number;
  lastActiveMs: number | null;
  pinnedTier: Tier | null;
  banned: boolean;
  wotFloor: Tier | null;
}

export function freshTrustState(nowMs: number): TrustState {
  return { score: 0, scoreAtMs: nowMs, lastActiveMs: null, pinnedTier: null, banned: false, wotFloor: null };
}

/** Whole days of decay owed at `atMs`: days absent beyond the grace period. */
function decayDays(lastActiveMs: number | null, atMs: number, trust: TrustSettings): number {
  if (lastActiveMs === null) return 0;
  const absentDays = Math.floor(Math.max(0, atMs - lastActiveMs) / DAY_MS);
  return Math.max(0, absentDays - trust.decayAfterDays);
}

/**
 * The score at `nowMs`. Decay only wears a positive score down towards 0 (a record of
 * abuse is not forgiven by absence), and is counted from `scoreAtMs` so that applying
 * it at several moments never charges the same day twice.
 */
export function scoreAt(s: TrustState, nowMs: number, trust: TrustSettings): number {
  if (s.score <= 0 || trust.decayPerDay === 0) return s.score;
  const owed = decayDays(s.lastActiveMs, nowMs, trust) - decayDays(s.lastActiveMs, s.scoreAtMs, trust);
  if (owed <= 0) return s.score;
  return Math.max(0, s.score - owed * trust.decayPerDay);
}

export function effectiveTier(s: TrustState, nowMs: number, trust: TrustSettings): Tier {
  if (s.pinnedTier) return s.pinnedTier;
  return maxTier(tierForScore(scoreAt(s, nowMs, trust), trust.thresholds), s.wotFloor);
}

/** A paid, completed job: +points and the customer counts as active from now. */
export function applySuccess(s: TrustState, nowMs: number, trust: TrustSettings): TrustState {
  return { ...s, score: scoreAt(s, nowMs, trust) + trust.pointsPerPaidJob, scoreAtMs: nowMs, lastActiveMs: nowMs };
}

/** Abuse (malformed requests, rate-limit violations, operator penalty): −penalty, not activity. */
export function applyAbuse(s: TrustState, nowMs: number, trust: TrustSettings, times = 1): TrustState {
  return { ...s, score: scoreAt(s, nowMs, trust) - trust.abusePenalty * times, scoreAtMs: nowMs };
}
