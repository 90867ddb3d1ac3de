import { getPublicKey } from "nostr-tools/pure";
import { grantSigner } from "../../events/grant-event.js";
import { settleJob } from "../../service/settlement.js";
import { formatSats } from "../../util/money.js";
import { UsageError } from "../context.js";
import { noExtraArgs, printJson, requestIdArg, satsArg } from "../format.js";
import type { Command } from "../main.js";
import { gateRelays, gateSecretKey } from "../demo.js";

const usage = `Usage: dvm-gate settle REQUEST_ID [--actual-sats N] [--json]

Marks a job done by hand, as a worker's result would: the reservation is posted
(absorbed = the reserved amount, or N sats if --actual-sats is lower), the rest goes
back to the pool, a paid job earns trust and credits the pool, and the grant event is
signed and queued in the outbox in the same transaction. The running service publishes
it within a second; with no service running it goes out at the next \`dvm-gate start\`.

Needs the gate's key (nostr.secretKey, or the demo key in the data directory) to sign
the grant. Only a job that is processing (free, or paid) can be settled.`;

export const command: Command = {
  name: "settle",
  summary: "settle REQUEST_ID [--actual-sats N]: mark a job done (posts its reservation)",
  usage,
  options: { "actual-sats": { type: "string" }, json: { type: "boolean" } },
  run(ctx, { values, positionals }) {
    noExtraArgs(positionals, 1, "dvm-gate settle REQUEST_ID [--actual-sats N]");
    const requestId = requestIdArg(positionals[0]);
    const actual = values["actual-sats"];
    const actualMsats = typeof actual === "string" ? satsArg(actual, "settle: --actual-sats") : null;
    const secretKey = gateSecretKey(ctx.cfg, { createDemoKey: false });
    if (!secretKey) throw new UsageError("settle: the gate's key is needed to sign the grant event (set nostr.secretKey)");
    const ledger = ctx.ledger({ grantSigner: grantSigner(secretKey) });
    const result = settleJob(
      { ledger, log: ctx.log.child({}, { level: "error" }), secretKey, relays: gateRelays(ctx.cfg), nowMs: ctx.nowMs, onQueued: () => {} },
      requestId,
      actualMsats,
    );
    if (result.status === "not_found") throw new UsageError(`settle: no request ${requestId} in ${ctx.cfg.database.path}`);
    if (result.status === "not_processing")
      throw new UsageError(`settle: request ${requestId} is ${result.request.state}, only a processing job can be settled`);
    const out = {
      status: result.status,
      requestId,
      absorbedMsats: result.absorbedMsats,
      returnedMsats: result.returnedMsats,
      creditedMsats: result.creditedMsats,
      grant: result.grant ? { seq: result.grant.seq, eventId: result.grant.eventId } : null,
      gate: getPublicKey(secretKey),
    };
    if (values.json) printJson(ctx.out, out);
    else
      ctx.out(
        `settled ${requestId}: absorbed ${formatSats(out.absorbedMsats)}, returned ${formatSats(out.returnedMsats)} to the pool` +
          (out.creditedMsats > 0 ? `, credited ${formatSats(out.creditedMsats)}` : "") +
          (out.grant ? `; grant #${out.grant.seq} queued for publishing` : "; no grant (nothing absorbed)"),
      );
    return 0;
  },
};
