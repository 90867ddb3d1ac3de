// Checkpoints move off the decision path: with the background checkpointer, committed
// pages reach the main database file without any writer checkpointing; without it (and
// the raised backstop), they stay in the WAL.
import { afterAll, describe, expect, it } from "vitest";
import { statSync } from "node:fs";
import { Ledger } from "../../src/ledger/ledger.js";
import { testLedgerSettings } from "../helpers/ledger-settings.js";
import { makeTmpDir } from "../helpers/tmp.js";

const tmp = makeTmpDir("dvm-gate-checkpoint-");
afterAll(() => tmp.remove());

async function growMainFile(backgroundCheckpointMs: number | undefined): Promise<{ before: number; after: number }> {
  const path = tmp.file(`cp-${backgroundCheckpointMs ?? "none"}.sqlite`);
  const opts = backgroundCheckpointMs === undefined ? { nowMs: 1, walAutocheckpointPages: 10_000 } : { nowMs: 1, backgroundCheckpointMs };
  const ledger = Ledger.open(path, testLedgerSettings(), opts);
  try {
    // Opening checkpointed nothing yet or only the schema: measure from here.
    ledger.db.pragma("wal_checkpoint(TRUNCATE)");
    const before = statSync(path).size;
    for (let i = 0; i < 1500; i++) ledger.credit(1000, "operator", `note ${i} `.repeat(20), 2);
    let after = statSync(path).size;
    for (let waited = 0; waited < 3000 && after === before; waited += 50) {
      await new Promise((r) => setTimeout(r, 50));
      after = statSync(path).size;
    }
    return { before, after };
  } finally {
    await ledger.closeAsync();
  }
}

describe("background checkpointer", () => {
  it("copies committed pages into the database file without a writer doing it", async () => {
    const { before, after } = await growMainFile(20);
    expect(after).toBeGreaterThan(before);
  });

  it("leaves them in the WAL when nobody checkpoints (the control)", async () => {
    const { before, after } = await growMainFile(undefined);
    expect(after).toBe(before);
  });
});
