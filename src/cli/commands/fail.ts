import { formatSats } from "../../util/money.js";
import { UsageError } from "../context.js";
import { noExtraArgs, printJson, requestIdArg, textArg } from "../format.js";
import type { Command } from "../main.js";
import { failJob } from "../../service/settlement.js";
import { gateRelays, gateSecretKey } from "../demo.js";

// The ledger keeps 200 characters of a reason, "operator: " included.
const MAX_REASON_CHARS = 190;

const usage = `Usage: dvm-gate fail REQUEST_ID [--reason TEXT] [--json]

Marks a job failed by hand, as a worker's error feedback would: its reservation is
voided and every msat of it returns to the pool, and (with the gate's key) the
customer gets \`error\` feedback saying so, published by the running service.
Works on a job awaiting payment or processing; a job already done, failed or
expired is refused and nothing changes.

  --reason TEXT   why (at most 190 characters; longer is refused), kept in the ledger and sent to the
                  customer; default "failed by the operator"
  --json          print {"status", "requestId", "returnedMsats", "reason", "customerNotified", "paidMsats"}`;

export const command: Command = {
  name: "fail",
  summary: "fail REQUEST_ID [--reason TEXT]: void a job's reservation",
  usage,
  options: { reason: { type: "string" }, json: { type: "boolean" } },
  run(ctx, { values, positionals }) {
    noExtraArgs(positionals, 1, "dvm-gate fail REQUEST_ID [--reason TEXT]");
    const requestId = requestIdArg(positionals[0]);
    const reason =
      typeof values.reason === "string" && values.reason.trim() ? textArg(values.reason.trim(), "fail: --reason", MAX_REASON_CHARS) : "failed by the operator";
    // A one-shot command answers in plain lines on stdout; the service's info lines
    // (pino JSON) belong to the running gate's log, not to this terminal.
    const log = ctx.log.child({}, { level: "error" });
    const secretKey = gateSecretKey(ctx.cfg, { createDemoKey: false });
    // With the gate's key the customer is told (error feedback via the outbox); without
    // it the reservation is still voided, and the output says nobody was told.
    const result = secretKey
      ? failJob({ ledger: ctx.ledger(), log, secretKey, relays: gateRelays(ctx.cfg), nowMs: ctx.nowMs, onQueued: () => {} }, requestId, reason)
      : ctx.ledger().fail(requestId, `operator: ${reason}`, ctx.nowMs());
    if (result.status === "not_found") throw new UsageError(`fail: no request ${requestId} in ${ctx.cfg.database.path}`);
    if (result.status === "already_resolved") throw new UsageError(`fail: request ${requestId} is already ${result.request.state}; nothing changed`);
    const paidMsats = result.request.paidMsats;
    const out = { status: result.status, requestId, returnedMsats: result.returnedMsats, reason, customerNotified: secretKey !== null, paidMsats };
    if (values.json) printJson(ctx.out, out);
    else
      ctx.out(
        `voided ${requestId}: ${formatSats(result.returnedMsats)} returned to the pool` +
          (secretKey ? "; error feedback queued for the customer" : "; the customer was not told (no nostr.secretKey to sign with)") +
          (paidMsats > 0 ? `\nthe customer paid ${formatSats(paidMsats)} for it: dvm-gate sends no money, refund them by hand` : ""),
      );
    return 0;
  },
};
