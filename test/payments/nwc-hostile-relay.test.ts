// The wallet's relays are peers too: a NIP-47 relay that refuses us, never answers or
// sends garbage makes invoice creation fail with an error the invoicing retry handles,
// and leaves no promise for the process to die of. Against the hostile relay process.
import { afterEach, describe, expect, it } from "vitest";
import { generateSecretKey, getPublicKey } from "nostr-tools/pure";
import { NwcBackend } from "../../src/payments/nwc.js";
import { startHostileRelay, type HostileRelay } from "../helpers/hostile-relay-process.js";

describe("an NWC wallet behind a hostile relay", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  const unhandled: unknown[] = [];
  const onUnhandled = (r: unknown) => unhandled.push(r);
  afterEach(async () => {
    process.off("unhandledRejection", onUnhandled);
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it("fails each make_invoice with an error and never an unhandled rejection", { timeout: 60_000 }, async () => {
    process.on("unhandledRejection", onUnhandled);
    const hostile: HostileRelay = await startHostileRelay(getPublicKey(generateSecretKey()));
    cleanups.push(() => hostile.kill());
    const modes = ["auth-silent", "auth-reject", "auth-nochallenge", "malformed", "never-ok", "drop", "refuse"];
    for (const mode of modes) {
      const walletPk = getPublicKey(generateSecretKey());
      const secret = Buffer.from(generateSecretKey()).toString("hex");
      const uri = `nostr+walletconnect://${walletPk}?relay=${encodeURIComponent(`${hostile.url}/${mode}`)}&secret=${secret}`;
      const nwc = new NwcBackend({ uri, requestTimeoutMs: 1_500, connectTimeoutMs: 1_500 });
      const outcome = await nwc.createInvoice({ requestId: "a".repeat(64), amountMsats: 10_000, description: "x", expirySec: 600 }).then(
        () => "issued",
        (err: Error) => `refused: ${err.message}`,
      );
      expect(outcome, mode).toMatch(/^refused: /);
      await nwc.close?.();
    }
    // Control: the relay saw our connections, so each mode was exercised, not skipped.
    const stats = await hostile.command("stats");
    for (const mode of ["auth-silent", "auth-reject", "malformed", "never-ok"]) expect(stats[`/${mode}`]?.connections ?? 0, mode).toBeGreaterThanOrEqual(1);
    expect(unhandled).toEqual([]);
  });
});
