import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { pino } from "pino";
import { ConfigError, parseConfig } from "../../src/config/load.js";
import { openDb, type Db } from "../../src/ledger/db.js";
import { createPaymentBackend } from "../../src/payments/index.js";
import type { PaymentBackend } from "../../src/payments/types.js";

const log = pino({ level: "silent" });
const pk = "b".repeat(64);
const secret = "c".repeat(64);

describe("createPaymentBackend", () => {
  let db: Db;
  const made: PaymentBackend[] = [];
  beforeEach(() => {
    db = openDb(":memory:");
  });
  afterEach(async () => {
    for (const b of made.splice(0)) await b.close();
    db.close();
  });
  const make = (raw: unknown, sourcePath: string | null = "/etc/dvm-gate.json", env: NodeJS.ProcessEnv = {}) => {
    const b = createPaymentBackend(parseConfig(raw, { env, sourcePath, baseDir: "/tmp" }), { db, log });
    made.push(b);
    return b;
  };

  it("refuses the dev wallet from a config file that did not enable it", () => {
    expect(() => make({ payments: { backend: "dev" } })).toThrow(ConfigError);
    expect(() => make({ payments: { backend: "dev" } })).toThrow(
      'payments.backend is "dev" but payments.dev.enabled is false: the dev wallet is for demos and tests',
    );
  });

  it("gives the dev wallet when enabled, and on the demo defaults (no config file)", () => {
    expect(make({ payments: { backend: "dev", dev: { enabled: true } } }).name).toBe("dev");
    expect(make({}, null).name).toBe("dev");
  });

  it("builds the NWC backend from an env: secret, and turns a malformed URI into a ConfigError that hides it", () => {
    const uri = `nostr+walletconnect://${pk}?relay=ws://127.0.0.1:1&secret=${secret}`;
    expect(make({ payments: { backend: "nwc", nwc: { uri: "env:NWC" } } }, "/x.json", { NWC: uri }).name).toBe("nwc");
    let message = "";
    try {
      make({ payments: { backend: "nwc", nwc: { uri: "env:NWC" } } }, "/x.json", {
        NWC: `nostr+walletconnect://${pk}?relay=ws://127.0.0.1:1&secret=${secret.slice(1)}`,
      });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      message = (err as Error).message;
    }
    expect(message).toMatch(/^payments\.nwc\.uri/);
    expect(message).not.toContain(secret.slice(2));
  });

  it("builds the LNbits backend", () => {
    expect(make({ payments: { backend: "lnbits", lnbits: { url: "http://127.0.0.1:5000", invoiceKey: "env:K" } } }, "/x.json", { K: "key" }).name).toBe(
      "lnbits",
    );
  });
});
