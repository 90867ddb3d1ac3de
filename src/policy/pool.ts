// The pool's books as everyone sees them: in the ledger, in every grant event's `totals`
// tag, in the pool status event and in `pool status --json` (SPEC §3.1, §4).
export interface Totals {
  initialMsats: number;
  creditedMsats: number;
  absorbedMsats: number;
  pendingMsats: number;
  poolMsats: number;
}

/** SPEC §3.1: initial + credited = pool + pending + absorbed, to the msat. */
export function totalsBalance(t: Totals): boolean {
  return t.initialMsats + t.creditedMsats === t.poolMsats + t.pendingMsats + t.absorbedMsats;
}
