import { getPublicKey } from "nostr-tools/pure";
import { nip19 } from "nostr-tools";
import type { RuntimeConfig } from "../../config/load.js";
import { GateMetrics } from "../../http/metrics.js";
import { startHttpServer } from "../../http/server.js";
import { checkPaymentConfig, createPaymentBackend } from "../../payments/index.js";
import { GateService } from "../../service/gate-service.js";
import { Deposits } from "../../service/deposits.js";
import { grantSigner } from "../../events/grant-event.js";
import { initFastVerify } from "../../events/verify.js";
import { demoBackend } from "../../peers/demo-worker.js";
import { createBackends } from "../../backends/index.js";
import { ledgerSettings } from "../context.js";
import { startWotRefresh } from "../../service/wot.js";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { acquireServeLock } from "../../ledger/serve-lock.js";
import { checkDatabasePath, UsageError } from "../context.js";
import { noExtraArgs } from "../format.js";
import type { Command } from "../main.js";
import { cliInvocation, DEMO_KIND, demoGuide, gateSecretKey, startDemoRelay } from "../demo.js";
import { routeConsoleToLogger } from "../../relay/library-console.js";
import { RateLimitedLog } from "../../relay/rate-limited-log.js";

const usage = `Usage: dvm-gate start [--config FILE] [--json]

Runs the gate: subscribes to the configured relays for job requests (jobs.kinds),
worker results and errors, and deletions; decides free / partial / gate for each
request; answers through the outbox; issues and watches invoices; settles, expires and
publishes grant and pool status events. Stops cleanly on SIGTERM or SIGINT.

With no config file at all it runs the demo: an embedded relay on 127.0.0.1:7777, a
gate key kept in ./data, the dev wallet, kind 5050 run by a built-in demo backend and the HTTP page,
and prints how to send a first request.

  --json   print one JSON line {"gate", "npub", "relays", "http", "demo"} once running`;

type Closer = () => Promise<void> | void;

export const command: Command = {
  name: "start",
  summary: "run the gate service (no config: the demo)",
  usage,
  options: { json: { type: "boolean" } },
  async run(ctx, { values, positionals }) {
    noExtraArgs(positionals, 0, "dvm-gate start [--config FILE]");
    const demo = ctx.cfg.sourcePath === null;
    // Before anything is bound, written or published: a second start on a ledger that
    // one is serving refuses here and leaves everything the first one made untouched.
    checkDatabasePath(ctx.cfg.database.path, true);
    // The secret first: a start refused for want of it leaves no empty data folder behind.
    const secretKey = gateSecretKey(ctx.cfg, { createDemoKey: demo });
    if (!secretKey) throw new UsageError('start: nostr.secretKey is required (an nsec or hex, or "env:VAR" / "file:PATH"; make one with dvm-gate keygen)');
    checkPaymentConfig(ctx.cfg);
    mkdirSync(dirname(ctx.cfg.database.path), { recursive: true });
    const gatePubkey = getPublicKey(secretKey);
    const lock = acquireServeLock(ctx.cfg.database.path, ctx.nowMs());
    const log = ctx.log;
    // Signals are caught from the first moment: one that arrives while relays, wallet
    // and HTTP are still starting is honoured (graceful stop) once they are up, instead
    // of killing the process half-started with the default action.
    let stopRequested = false;
    let wake: () => void = () => {};
    const onSignal = () => {
      stopRequested = true;
      wake();
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
    // Logs are pino JSON: the relay library's console output goes through the logger, per relay rate-limited.
    const restoreConsole = routeConsoleToLogger(log);
    // Last resort only: every promise of the relay library is handled where it is made
    // (src/relay/safe-relay.ts). One that still escapes is a bug to log, not a reason for a
    // peer to be able to stop the gate.
    const escaped = new RateLimitedLog(log, { perWindow: 5, windowMs: 60_000 });
    const onUnhandled = (reason: unknown) => {
      escaped.write(
        "error",
        "unhandled-rejection",
        { err: String((reason as Error)?.message ?? reason).slice(0, 300) },
        "unhandled promise rejection (bug): kept running",
      );
    };
    process.on("unhandledRejection", onUnhandled);
    const closers: Closer[] = [
      () => lock.release(),
      () => {
        process.off("SIGTERM", onSignal);
        process.off("SIGINT", onSignal);
        process.off("unhandledRejection", onUnhandled);
        restoreConsole();
      },
    ];
    const closeAll = async () => {
      for (const c of closers.reverse()) {
        try {
          await c();
        } catch (err) {
          log.warn({ err: (err as Error).message }, "error while stopping");
        }
      }
    };

    try {
      await initFastVerify();
      let cfg: RuntimeConfig = ctx.cfg;
      if (demo) {
        const d = await startDemoRelay(cfg, log);
        cfg = d.cfg;
        closers.push(() => d.relay.close());
      }
      // The service checkpoints the WAL off the decision path (docs/BENCHMARKS.md).
      const ledger = ctx.ledger({ grantSigner: grantSigner(secretKey), backgroundCheckpointMs: 250, create: true });
      const backend = createPaymentBackend(cfg, { db: ledger.db, log });
      closers.push(() => backend.close());
      const metrics = new GateMetrics({ processMetrics: true });
      const built = createBackends(cfg, { secretKey, chargeUnitMsats: ledgerSettings(cfg).chargeUnitMsats ?? 1, log: log.child({ part: "backends" }) });
      closers.push(() => built.close());
      const priceOf = built.priceOf;
      const deposits = new Deposits({
        ledger,
        backend,
        log: log.child({ part: "deposits" }),
        gatePubkey,
        zapProviderPubkey: cfg.payments.zapProviderPubkey,
        invoiceExpirySec: cfg.payments.invoiceExpirySec,
        nowMs: () => ctx.nowMs(),
      });

      let httpUrl: string | null = null;
      if (cfg.http.enabled) {
        const publicBaseUrl = cfg.http.publicBaseUrl ?? undefined;
        const http = await startHttpServer({ cfg, ledger, log, metrics, gatePubkey, publicBaseUrl, priceOf, deposits }).catch(
          async (err: NodeJS.ErrnoException) => {
            // The demo must come up even when 8080 is taken; a configured port is the operator's call.
            if (!demo || err.code !== "EADDRINUSE") throw err;
            return startHttpServer({ cfg: { ...cfg, http: { ...cfg.http, port: 0 } }, ledger, log, metrics, gatePubkey, publicBaseUrl, priceOf, deposits });
          },
        );
        httpUrl = http.url;
        closers.push(() => http.close());
      }
      // The service starts after HTTP is listening: a taken port stops start-up before
      // anything subscribes, publishes or writes.
      // The demo runs its job in this process; a configured kind keeps its own backend.
      if (demo && !built.backends.has(DEMO_KIND)) built.backends.set(DEMO_KIND, { backend: demoBackend(), maxConcurrent: 4, maxAttempts: 2 });
      const service = new GateService({ cfg, ledger, backend, log, metrics, secretKey, backends: built.backends, priceOf: built.priceOf, deposits });
      await service.start();
      closers.push(() => service.stop());
      const wot = startWotRefresh(ledger, cfg, log, () => ctx.nowMs());
      if (wot) closers.push(wot.stop);

      const info = { gate: gatePubkey, npub: nip19.npubEncode(gatePubkey), relays: cfg.nostr.relays, http: httpUrl, demo };
      log.info(info, "dvm-gate running");
      if (values.json) ctx.out(JSON.stringify(info));
      else if (demo) ctx.out(demoGuide({ relayUrl: cfg.nostr.relays[0]!, gatePubkey, httpUrl, dataDir: cfg.dataDir, cli: cliInvocation(process.cwd()) }));
      else ctx.out(`dvm-gate running: gate ${info.npub} on ${cfg.nostr.relays.join(", ") || "no relays"}${httpUrl ? `; http ${httpUrl}` : ""}`);

      await new Promise<void>((resolve) => {
        wake = resolve;
        if (stopRequested) resolve();
      });
      log.info("stopping");
      await closeAll();
      return 0;
    } catch (err) {
      await closeAll();
      throw err;
    }
  },
};
