// SPEC §2 settlement: of a job's stated cost, what the customer paid is spent first and
// the pool covers the rest (the ledger then absorbs at most what it reserved).
export function poolShareOfCostMsats(costMsats: number, chargedMsats: number): number {
  return Math.max(0, costMsats - chargedMsats);
}
