// The seed's ledger settings (SPEC §2, §5 defaults) for tests, with per-test overrides.
import type { LedgerSettings } from "../../src/ledger/ledger.js";

export const SAT = 1000;

export function testLedgerSettings(over: Partial<LedgerSettings> = {}): LedgerSettings {
  return {
    budgetsMsats: { new: 0, established: 50 * SAT, trusted: 200 * SAT, elite: 1000 * SAT },
    poolInitialMsats: 10_000 * SAT,
    poolCreditPct: 10,
    maxPendingPerPubkey: 3,
    timeoutSec: 600,
    invoiceExpirySec: 300,
    trust: {
      pointsPerPaidJob: 2,
      abusePenalty: 5,
      thresholds: { established: 10, trusted: 50, elite: 200 },
      decayAfterDays: 30,
      decayPerDay: 1,
      wot: { anchors: [], followFloor: "established", rankProvider: null, rankFloors: [], refreshSec: 900 },
    },
    ...over,
  };
}
