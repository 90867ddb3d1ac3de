// /estimate is a dry run of the real decision: with a backend that bills whole sats
// (LNbits) it must round a partial offer exactly as the decision itself does.
import { afterAll, describe, expect, it } from "vitest";
import { ledgerSettings } from "../../src/cli/context.js";
import { parseConfig } from "../../src/config/load.js";
import { estimate } from "../../src/http/estimate.js";
import { Ledger } from "../../src/ledger/ledger.js";
import { makeTmpDir } from "../helpers/tmp.js";

const tmp = makeTmpDir("dvm-gate-estimate-");
afterAll(() => tmp.remove());

describe("estimate with LNbits", () => {
  it("offers the same whole-sat partial as the decision that follows", () => {
    const cfg = parseConfig(
      {
        database: { path: tmp.file("e.sqlite") },
        payments: { backend: "lnbits", lnbits: { url: "http://127.0.0.1:9/", invoiceKey: "k" } },
        jobs: { kinds: { "5050": { priceSats: 10 } } },
      },
      { env: {} },
    );
    const now = 1_800_000_000_000;
    const ledger = Ledger.open(cfg.database.path, ledgerSettings(cfg), { nowMs: now });
    const pk = "ab".repeat(32);
    ledger.setTier(pk, "established", now);
    // 45.5 sats of the 50-sat budget used by a free job that absorbed a msat-exact cost.
    ledger.decide({ requestId: "01".repeat(32), pubkey: pk, kind: 5050, priceMsats: 45_500 }, now);
    const est = estimate(ledger, cfg, { pubkey: pk, kind: 5050, priceMsats: 10_000 }, now + 1);
    const real = ledger.decide({ requestId: "02".repeat(32), pubkey: pk, kind: 5050, priceMsats: 10_000 }, now + 1).request;
    expect(real).toMatchObject({ decision: "partial", absorbMsats: 4_000, chargeMsats: 6_000 });
    expect(est).toMatchObject({ decision: real.decision, absorbMsats: real.absorbMsats, chargeMsats: real.chargeMsats });
    ledger.close();
  });
});
