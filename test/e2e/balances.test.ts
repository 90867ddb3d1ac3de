// SPEC §12 end to end over a real relay on 127.0.0.1: a customer zaps the gate's
// profile (a NIP-57 receipt signed by the configured LNURL provider, published to the
// relay), then sends three jobs and gets three `processing` replies with a falling
// `balance` tag and no invoice; a fourth, over the balance, gets an invoice.
import { afterAll, beforeAll, expect, it } from "vitest";
import { finalizeEvent } from "nostr-tools/pure";
import { startEmbeddedRelay, type EmbeddedRelay } from "../../src/peers/embedded-relay.js";
import { makeZapProvider, zapReceipt } from "../helpers/zaps.js";
import { Customer, SAT, startGate, waitFor, type Gate } from "./harness.js";

const provider = makeZapProvider();
let relay: EmbeddedRelay;
let gate: Gate;

beforeAll(async () => {
  relay = await startEmbeddedRelay();
  gate = await startGate({
    relays: [relay.url],
    over: { payments: { backend: "dev", dev: { enabled: true }, invoiceExpirySec: 120, zap: { providerPubkey: provider.pubkey } } },
  });
});
afterAll(async () => {
  await gate.stop();
  await relay.close();
  gate.tmp.remove();
});

it("a profile zap tops up the balance; three jobs run from it with a falling balance tag, the fourth gets an invoice", { timeout: 40_000 }, async () => {
  const cust = await new Customer().connect([relay.url]);
  try {
    // A new customer: no free tier (budget 0), so only the balance can pay. 10 sats a job.
    // First a forged receipt, signed by the provider's key but whose invoice does not commit
    // to its zap request (a provider bug or a stolen key replaying another invoice), then
    // the real one: the balance ends at exactly the real zap, so the forged one added nothing.
    const forged = zapReceipt(provider, { zapperSk: cust.secretKey, recipient: gate.pubkey, amountMsats: 500 * SAT, hashedDescription: "another zap request" });
    await cust.publish(forged.receipt);
    const { receipt } = zapReceipt(provider, { zapperSk: cust.secretKey, recipient: gate.pubkey, amountMsats: 30 * SAT });
    await cust.publish(receipt);
    await waitFor(() => gate.ledger.balance(cust.pubkey).depositedMsats > 0, 8000, "the zap to be credited");
    expect(gate.ledger.balance(cust.pubkey)).toMatchObject({ balanceMsats: 30 * SAT, depositedMsats: 30 * SAT });
    expect(gate.ledger.db.prepare("SELECT COUNT(*) AS n FROM deposits").get()).toEqual({ n: 1 });

    const tags: (number | null)[] = [];
    const ids: string[] = [];
    for (let i = 1; i <= 3; i++) {
      const req = cust.request(gate.pubkey, { input: `job ${i}` });
      ids.push(req.id);
      await cust.publish(req);
      const fb = await cust.waitFeedback(req.id, "processing");
      expect(fb.amountMsats, `job ${i}`).toBeNull();
      expect(fb.bolt11, `job ${i}`).toBeNull();
      expect(fb.freeTier, `job ${i}`).toBeNull();
      tags.push(fb.balanceMsats);
    }
    expect(tags).toEqual([20 * SAT, 10 * SAT, 0]);

    const fourth = cust.request(gate.pubkey, { input: "job 4" });
    await cust.publish(fourth);
    const invoice = await cust.waitFeedback(fourth.id, "payment-required");
    expect(invoice.amountMsats).toBe(10 * SAT);
    expect(invoice.bolt11).toMatch(/^lnbcrt/);
    expect(invoice.balanceMsats).toBeNull();
    // The fourth's invoice came after the first three's replies: none of those asked for money.
    for (const id of ids) expect(cust.feedback(id).map((f) => f.status)).toEqual(["processing"]);

    expect(gate.ledger.balance(cust.pubkey)).toMatchObject({ balanceMsats: 0, heldMsats: 30 * SAT, depositedMsats: 30 * SAT });
    expect(gate.ledger.totals().pendingMsats).toBe(0);

    // The worker (here the gate's own key) reports an error on job 2: its debit goes back
    // to the balance, not to the pool. (A customer's deletion would cancel nothing: the
    // processing reply was the go signal, SPEC §2.)
    const error = finalizeEvent(
      {
        kind: 7000,
        created_at: Math.floor(Date.now() / 1000),
        content: "",
        tags: [
          ["e", ids[1]!],
          ["p", cust.pubkey],
          ["status", "error", "out of GPU"],
        ],
      },
      gate.secretKey,
    );
    await cust.publish(error);
    await waitFor(() => gate.ledger.getRequest(ids[1]!)?.state === "failed", 8000, "the worker error to void job 2");
    expect(gate.ledger.balance(cust.pubkey)).toMatchObject({ balanceMsats: 10 * SAT, heldMsats: 20 * SAT });
    expect(gate.ledger.totals().poolMsats).toBe(10_000 * SAT);
    expect(gate.verify()).toEqual([]);
  } finally {
    cust.close();
  }
});
