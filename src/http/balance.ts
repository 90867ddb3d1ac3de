// The customer's side of prepaid balances (SPEC §12), both NIP-98 authenticated, so the
// pubkey is the caller's own: `GET /balance` → {"balanceMsats": n, …} and
// `POST /deposit?sats=N` → {"bolt11": "…", …}, an invoice whose payment (believed only
// from the backend's lookup) credits the caller. A deposit the cap cannot take is
// refused before any invoice is made.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import type { Ledger } from "../ledger/ledger.js";
import { AmountError, parseSatsText } from "../util/money.js";
import { checkNip98 } from "./nip98.js";
import { PaymentBackendError } from "../payments/types.js";

/** The slice of the server's per-request context these routes use (structurally its Ctx). */
interface RouteCtx {
  req: IncomingMessage;
  res: ServerResponse;
  rawUrl: string;
  query: URLSearchParams;
  nowMs: number;
}
type Route = (ctx: RouteCtx) => Promise<void>;

/** What `POST /deposit` needs from the service (src/service/deposits.ts implements it). */
export interface DepositMaker {
  createInvoice(
    pubkey: string,
    amountMsats: number,
  ): Promise<{ status: "created"; bolt11: string; paymentHash: string; amountMsats: number; expiresAtMs: number } | { status: "over_cap"; roomMsats: number }>;
}

export interface BalanceRouteDeps {
  ledger: Ledger;
  deposits: DepositMaker | null;
  log: Logger;
  urlFor: (req: IncomingMessage, rawUrl: string) => string | null;
  sendJson: (res: ServerResponse, status: number, body: unknown) => void;
}

export function balanceRoutes(d: BalanceRouteDeps): { routes: Map<string, Route>; postPaths: ReadonlySet<string> } {
  const { ledger, sendJson } = d;

  async function caller(req: IncomingMessage, res: ServerResponse, rawUrl: string, method: "GET" | "POST", nowMs: number): Promise<string | null> {
    const url = d.urlFor(req, rawUrl);
    if (!url) {
      sendJson(res, 400, { error: "missing Host header: needed to check the NIP-98 u tag" });
      return null;
    }
    const auth = await checkNip98(req.headers.authorization, { url, method, nowMs });
    if (!auth.ok) {
      res.setHeader("WWW-Authenticate", "Nostr");
      sendJson(res, 401, { error: `unauthorized: ${auth.reason}` });
      return null;
    }
    return auth.pubkey;
  }

  const balanceRoute: Route = async ({ req, res, rawUrl, nowMs }) => {
    const pubkey = await caller(req, res, rawUrl, "GET", nowMs);
    if (!pubkey) return;
    const b = ledger.balance(pubkey);
    sendJson(res, 200, { pubkey, balanceMsats: b.balanceMsats, heldMsats: b.heldMsats, maxBalanceMsats: ledger.maxBalanceMsats });
  };

  const depositRoute: Route = async ({ req, res, rawUrl, query, nowMs }) => {
    const pubkey = await caller(req, res, rawUrl, "POST", nowMs);
    if (!pubkey) return;
    const values = query.getAll("sats");
    if (values.length !== 1) return sendJson(res, 400, { error: "query parameter sats is required, once: a whole number of sats more than 0" });
    let amountMsats: number;
    try {
      amountMsats = parseSatsText(values[0]!, "sats");
    } catch (err) {
      if (err instanceof AmountError) return sendJson(res, 400, { error: err.message });
      throw err;
    }
    if (amountMsats === 0) return sendJson(res, 400, { error: "sats must be more than 0" });
    if (!d.deposits) return sendJson(res, 503, { error: "deposits are not available: the gate service is not running in this process" });
    let r;
    try {
      r = await d.deposits.createInvoice(pubkey, amountMsats);
    } catch (err) {
      if (!(err instanceof PaymentBackendError)) throw err;
      d.log.warn({ err: err.message }, "deposit invoice: the payment backend failed");
      return sendJson(res, 502, { error: "the payment backend could not make an invoice; try again later" });
    }
    if (r.status === "over_cap")
      return sendJson(res, 409, { error: `deposit refused: it would take the balance over the cap; room left ${r.roomMsats} msats`, roomMsats: r.roomMsats });
    sendJson(res, 200, { bolt11: r.bolt11, paymentHash: r.paymentHash, amountMsats: r.amountMsats, expiresAtMs: r.expiresAtMs });
  };

  return {
    routes: new Map<string, Route>([
      ["/balance", balanceRoute],
      ["/deposit", depositRoute],
    ]),
    postPaths: new Set(["/deposit"]),
  };
}
