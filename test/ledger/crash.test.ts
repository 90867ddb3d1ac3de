// A crash never strands msats or breaks the books (SPEC §2 "expired … so a crash never
// strands msats", §3). A child process hammers decide/markPaid/settle/fail/expire/credit
// on one file and is killed with SIGKILL at a random moment, 20 times. After each kill
// the file is opened again (Ledger.open sweeps what expired) and verified. The child
// also credits prepaid deposits whose payment hashes repeat across rounds and spends
// balances (SPEC §12): after every kill, each payment hash was credited once, for
// exactly its amount.
import { generateSecretKey } from "nostr-tools/pure";
import { afterAll, afterEach, expect, it } from "vitest";
import { Ledger } from "../../src/ledger/ledger.js";
import { testLedgerSettings } from "../helpers/ledger-settings.js";
import { verifyLedger } from "../../src/ledger/verify.js";
import { makeTmpDir } from "../helpers/tmp.js";
import { killAllChildren, startLedgerChild } from "./children.js";
import { depositFor } from "../helpers/deposit-refs.js";

const SAT = 1000;
const KILLS = 20;
const DEPOSIT_REFS = 300;

const settings = testLedgerSettings({ poolInitialMsats: 2_000 * SAT });

const tmp = makeTmpDir("dvm-gate-crash-");
afterEach(() => killAllChildren());
afterAll(() => tmp.remove());

it(`keeps every guarantee across ${KILLS} SIGKILLs in the middle of ledger writes`, async () => {
  const dbPath = tmp.file("crash.sqlite");
  const pubkeys = Array.from({ length: 10 }, (_, i) => (0xa0 + i).toString(16).repeat(32));
  const setup = Ledger.open(dbPath, settings, { nowMs: Date.now(), synchronous: "FULL" });
  pubkeys.forEach((pk, i) => setup.setTier(pk, i % 2 === 0 ? "elite" : "trusted", Date.now()));
  setup.close();
  const grantSecretKeyHex = Buffer.from(generateSecretKey()).toString("hex");
  const deadlineMs = (settings.timeoutSec + settings.invoiceExpirySec) * 1000;

  let requestsSeen = 0;
  let sweptPending = 0;
  let depositsSeen = 0;
  let spentFromBalances = 0;
  for (let round = 1; round <= KILLS; round++) {
    // A SIGKILL loses nothing the OS already has, so NORMAL is as crash-safe as FULL
    // here; half the rounds use it to get more writes in flight per kill.
    const synchronous = round % 4 < 2 ? "FULL" : "NORMAL";
    const child = startLedgerChild({ mode: "hammer", dbPath, synchronous, settings, pubkeys, grantSecretKeyHex, deposits: DEPOSIT_REFS });
    await child.ready;
    await new Promise((r) => setTimeout(r, 50 + Math.floor(Math.random() * 350)));
    child.proc.kill("SIGKILL");
    const { signal } = await child.exited;
    expect(signal, `round ${round}: the child died on its own: ${child.stderr()}`).toBe("SIGKILL");
    expect(child.stderr(), `round ${round}`).toBe("");

    // Every other round restarts "late", past every deadline: nothing may stay pending.
    const late = round % 2 === 0;
    const ledger = Ledger.open(dbPath, settings, { nowMs: Date.now() + (late ? deadlineMs + 1000 : 0), synchronous: "FULL" });
    try {
      expect(verifyLedger(ledger.db), `round ${round}`).toEqual([]);
      const t = ledger.totals();
      expect(t.initialMsats + t.creditedMsats, `round ${round}`).toBe(t.poolMsats + t.pendingMsats + t.absorbedMsats);
      if (late) {
        expect(t.pendingMsats, `round ${round}: pending after a sweep past every expiry`).toBe(0);
        expect(ledger.db.prepare("SELECT COUNT(*) AS n FROM reservations WHERE state = 'pending'").get(), `round ${round}`).toEqual({ n: 0 });
        expect(ledger.db.prepare("SELECT COUNT(*) AS n FROM requests WHERE state IN ('awaiting-payment','processing')").get()).toEqual({ n: 0 });
      } else {
        sweptPending += t.pendingMsats > 0 ? 1 : 0;
      }
      requestsSeen = (ledger.db.prepare("SELECT COUNT(*) AS n FROM requests").get() as { n: number }).n;
      // Nothing credited twice: one row per payment hash, holding exactly that deposit.
      const deposits = ledger.db.prepare("SELECT ref, pubkey, amount_msats + excess_msats AS total FROM deposits").all() as {
        ref: string;
        pubkey: string;
        total: number;
      }[];
      expect(new Set(deposits.map((d) => d.ref)).size, `round ${round}`).toBe(deposits.length);
      for (const d of deposits)
        expect({ pubkey: d.pubkey, total: d.total }, `round ${round} ${d.ref}`).toEqual({
          pubkey: depositFor(d.ref, pubkeys).pubkey,
          total: depositFor(d.ref, pubkeys).amountMsats,
        });
      depositsSeen = deposits.length;
      spentFromBalances = (ledger.db.prepare("SELECT COUNT(*) AS n FROM balance_holds").get() as { n: number }).n;
    } finally {
      ledger.close();
    }
  }
  console.log(
    `crash test: ${KILLS} SIGKILLs, ${requestsSeen} requests written in total, ${sweptPending} on-time restarts found reservations still pending, ` +
      `${depositsSeen} distinct deposits credited once each, ${spentFromBalances} jobs paid from balances`,
  );
  expect(depositsSeen).toBeGreaterThan(0);
  expect(spentFromBalances).toBeGreaterThan(0);
  // The child really was working when it died.
  expect(requestsSeen).toBeGreaterThan(KILLS * 5);
});
