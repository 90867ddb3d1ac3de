// A small LNbits stand-in speaking the two endpoints dvm-gate uses, over real HTTP on
// loopback: POST /api/v1/payments (create an incoming invoice, sats) and
// GET /api/v1/payments/{payment_hash} (→ paid). Invoices are real signed bolt11s;
// the X-Api-Key is checked (401 on a wrong key, as LNbits does).
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createHash, randomBytes } from "node:crypto";
import { encodeBolt11 } from "../../src/payments/bolt11.js";

export interface FakeLnbitsInvoice {
  paymentHash: string;
  bolt11: string;
  amountMsats: number;
  memo: string;
  expiresAtMs: number;
  paid: boolean;
}

export interface FakeLnbits {
  url: string;
  invoiceKey: string;
  invoices: Map<string, FakeLnbitsInvoice>;
  /** How many requests reached the server (any endpoint, any key). */
  requestCount: () => number;
  /** "Receive" the payment of an invoice. */
  pay: (paymentHash: string) => void;
  /** Stop answering (accept and hold requests) to test client timeouts. */
  setHang: (hang: boolean) => void;
  /** POST /api/v1/payments requests received (invoice creations asked for, any answer). */
  createCount: () => number;
  /**
   * "unauthorized": answer every request 401 as for a revoked key; "wrong-amount": create
   * real invoices for 1 sat more than asked; "ok": behave.
   */
  setMode: (mode: "ok" | "unauthorized" | "wrong-amount") => void;
  close: () => Promise<void>;
}

const MAX_BODY_BYTES = 16_384;

export async function startFakeLnbits(opts: { invoiceKey?: string } = {}): Promise<FakeLnbits> {
  const invoiceKey = opts.invoiceKey ?? randomBytes(16).toString("hex");
  const nodeSecretKey = randomBytes(32);
  const invoices = new Map<string, FakeLnbitsInvoice>();
  let requests = 0;
  let hang = false;
  let creates = 0;
  let mode: "ok" | "unauthorized" | "wrong-amount" = "ok";
  const held: ServerResponse[] = [];

  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "Content-Type": "application/json" });
    res.end(JSON.stringify(body));
  };

  async function readJson(req: IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > MAX_BODY_BYTES) throw new Error("body too large");
      chunks.push(c as Buffer);
    }
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    requests++;
    if (hang) {
      held.push(res);
      return;
    }
    const url = new URL(req.url ?? "/", "http://x");
    if (req.method === "POST" && url.pathname === "/api/v1/payments") creates++;
    if (req.headers["x-api-key"] !== invoiceKey || mode === "unauthorized") return send(res, 401, { detail: "Invalid key" });
    if (req.method === "POST" && url.pathname === "/api/v1/payments") {
      let body: Record<string, unknown>;
      try {
        body = (await readJson(req)) as Record<string, unknown>;
      } catch {
        return send(res, 400, { detail: "Invalid JSON" });
      }
      const amount = typeof body.amount === "number" && mode === "wrong-amount" ? body.amount + 1 : body.amount;
      if (body.out !== false) return send(res, 400, { detail: "this fake only creates incoming invoices" });
      if (typeof amount !== "number" || !Number.isSafeInteger(amount) || amount <= 0) return send(res, 400, { detail: "amount: whole sats > 0 required" });
      const expirySec = typeof body.expiry === "number" ? body.expiry : 3600;
      const memo = typeof body.memo === "string" ? body.memo : "";
      const paymentHash = createHash("sha256").update(randomBytes(32)).digest("hex");
      const createdAtSec = Math.floor(Date.now() / 1000);
      const bolt11 = encodeBolt11({ network: "bcrt", amountMsats: amount * 1000, paymentHash, description: memo, createdAtSec, expirySec, nodeSecretKey });
      invoices.set(paymentHash, { paymentHash, bolt11, amountMsats: amount * 1000, memo, expiresAtMs: (createdAtSec + expirySec) * 1000, paid: false });
      return send(res, 201, { payment_hash: paymentHash, payment_request: bolt11, bolt11, checking_id: paymentHash });
    }
    const m = /^\/api\/v1\/payments\/([0-9a-f]{64})$/.exec(url.pathname);
    if (req.method === "GET" && m) {
      const inv = invoices.get(m[1]!);
      if (!inv) return send(res, 404, { detail: "Payment does not exist." });
      const status = inv.paid ? "success" : Date.now() >= inv.expiresAtMs ? "expired" : "pending";
      return send(res, 200, {
        paid: inv.paid,
        preimage: null,
        details: { payment_hash: inv.paymentHash, bolt11: inv.bolt11, amount: inv.amountMsats, memo: inv.memo, status, pending: !inv.paid },
      });
    }
    return send(res, 404, { detail: "Not Found" });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => send(res, 500, { detail: "internal error" }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    invoiceKey,
    invoices,
    requestCount: () => requests,
    pay: (hash) => {
      const inv = invoices.get(hash);
      if (!inv) throw new Error(`fake LNbits: no invoice ${hash}`);
      inv.paid = true;
    },
    createCount: () => creates,
    setMode: (m) => {
      mode = m;
    },
    setHang: (h) => {
      hang = h;
    },
    close: async () => {
      for (const r of held.splice(0)) r.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
