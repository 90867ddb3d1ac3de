// A NIP-47 wallet service for tests: a real protocol peer on a real relay. It publishes
// its kind 13194 info event, answers encrypted make_invoice / lookup_invoice requests
// (23194 → 23195) with real signed bolt11 invoices, and when a test "receives a
// payment" it publishes payment_received notifications (23197 NIP-44, 23196 NIP-04).
import { createHash, randomBytes } from "node:crypto";
import { WebSocket } from "ws";
import { AbstractSimplePool, type SubCloser } from "nostr-tools/abstract-pool";
import { finalizeEvent, generateSecretKey, getPublicKey, verifyEvent, type Event } from "nostr-tools/pure";
import { encodeBolt11 } from "../../src/payments/bolt11.js";
import {
  decrypt,
  encrypt,
  NWC_INFO_KIND,
  NWC_NOTIFICATION_NIP04_KIND,
  NWC_NOTIFICATION_NIP44_KIND,
  NWC_REQUEST_KIND,
  NWC_RESPONSE_KIND,
  type NwcEncryption,
} from "../../src/payments/nwc.js";

export interface NwcWalletServiceOptions {
  relayUrl: string;
  /** Schemes the wallet speaks. */
  encryption: NwcEncryption[];
  /** false: a legacy wallet whose info event has no encryption tag (NIP-04 only). */
  advertiseEncryption?: boolean;
  methods?: string[];
  /** false: receive requests but never answer (to test timeouts). */
  answer?: boolean;
  /** Answer these methods with this NIP-47 error instead. */
  errors?: Record<string, { code: string; message: string }>;
  /** An older wallet: transactions carry no `state` field (only settled_at once paid). */
  omitState?: boolean;
}

export interface WalletInvoice {
  bolt11: string;
  paymentHash: string;
  amountMsats: number;
  description: string;
  createdAtSec: number;
  expiresAtSec: number;
  settledAtSec: number | null;
  /** HTLC held but not settled (NIP-47 state "accepted"). */
  accepted: boolean;
}

export interface NwcWalletService {
  uri: string;
  walletPubkey: string;
  clientPubkey: string;
  invoices: Map<string, WalletInvoice>;
  /** Every decrypted request, with the scheme it came in. */
  requests: { method: string; encryption: NwcEncryption; params: Record<string, unknown> }[];
  receivePayment: (paymentHash: string) => Promise<void>;
  /** The payer's HTLC arrives and is held, not settled. */
  acceptPayment: (paymentHash: string) => void;
  /**
   * Changes how the wallet answers from now on: `errors` as in the options (null: none),
   * `amountOffsetMsats` makes make_invoice issue an invoice for that much more than asked.
   */
  setBehaviour: (b: { errors?: NwcWalletServiceOptions["errors"] | null; amountOffsetMsats?: number }) => void;
  close: () => Promise<void>;
}

export async function startNwcWalletService(opts: NwcWalletServiceOptions): Promise<NwcWalletService> {
  const walletSk = generateSecretKey();
  const walletPubkey = getPublicKey(walletSk);
  const clientSk = generateSecretKey();
  const clientPubkey = getPublicKey(clientSk);
  const nodeSecretKey = randomBytes(32);
  const methods = opts.methods ?? ["make_invoice", "lookup_invoice", "get_info"];
  const invoices = new Map<string, WalletInvoice>();
  const requests: NwcWalletService["requests"] = [];
  const relays = [opts.relayUrl];
  const pool = new AbstractSimplePool({ verifyEvent, websocketImplementation: WebSocket as never, maxWaitForConnection: 3_000 });
  const nowSec = () => Math.floor(Date.now() / 1000);
  let errors = opts.errors;
  let amountOffsetMsats = 0;

  const publish = async (template: { kind: number; tags: string[][]; content: string }) => {
    const event = finalizeEvent({ ...template, created_at: nowSec() }, walletSk);
    await Promise.any(pool.publish(relays, event));
  };

  const infoTags: string[][] = [["notifications", "payment_received"]];
  if (opts.advertiseEncryption !== false) infoTags.push(["encryption", opts.encryption.join(" ")]);
  await publish({ kind: NWC_INFO_KIND, tags: infoTags, content: methods.join(" ") });

  const respond = async (req: Event, scheme: NwcEncryption, body: unknown) => {
    await publish({
      kind: NWC_RESPONSE_KIND,
      tags: [
        ["p", clientPubkey],
        ["e", req.id],
      ],
      content: encrypt(scheme, walletSk, clientPubkey, JSON.stringify(body)),
    });
  };

  const describeInvoice = (inv: WalletInvoice) => ({
    type: "incoming",
    ...(opts.omitState
      ? {}
      : { state: inv.settledAtSec !== null ? "settled" : inv.accepted ? "accepted" : nowSec() >= inv.expiresAtSec ? "expired" : "pending" }),
    invoice: inv.bolt11,
    description: inv.description,
    payment_hash: inv.paymentHash,
    amount: inv.amountMsats,
    fees_paid: 0,
    created_at: inv.createdAtSec,
    expires_at: inv.expiresAtSec,
    ...(inv.settledAtSec !== null ? { settled_at: inv.settledAtSec } : {}),
  });

  async function handle(req: Event): Promise<void> {
    if (req.pubkey !== clientPubkey) return;
    const tag = req.tags.find((t) => t[0] === "encryption")?.[1];
    const scheme: NwcEncryption = tag === "nip44_v2" ? "nip44_v2" : "nip04";
    if (!opts.encryption.includes(scheme)) {
      await respond(req, "nip04", { result_type: "unknown", error: { code: "UNSUPPORTED_ENCRYPTION", message: `${scheme} is not supported` } });
      return;
    }
    let body: { method?: unknown; params?: Record<string, unknown> };
    try {
      body = JSON.parse(decrypt(scheme, walletSk, clientPubkey, req.content));
    } catch {
      return;
    }
    const method = String(body.method);
    const params = body.params ?? {};
    requests.push({ method, encryption: scheme, params });
    if (opts.answer === false) return;
    const error = errors?.[method];
    if (error) return respond(req, scheme, { result_type: method, error });
    if (method === "make_invoice") {
      const amountMsats = (params.amount as number) + amountOffsetMsats;
      const description = typeof params.description === "string" ? params.description : "";
      const expirySec = typeof params.expiry === "number" ? params.expiry : 3600;
      const paymentHash = createHash("sha256").update(randomBytes(32)).digest("hex");
      const createdAtSec = nowSec();
      const bolt11 = encodeBolt11({ network: "bcrt", amountMsats, paymentHash, description, createdAtSec, expirySec, nodeSecretKey });
      const inv: WalletInvoice = {
        bolt11,
        paymentHash,
        amountMsats,
        description,
        createdAtSec,
        expiresAtSec: createdAtSec + expirySec,
        settledAtSec: null,
        accepted: false,
      };
      invoices.set(paymentHash, inv);
      return respond(req, scheme, { result_type: method, error: null, result: describeInvoice(inv) });
    }
    if (method === "lookup_invoice") {
      const inv = invoices.get(String(params.payment_hash));
      if (!inv) return respond(req, scheme, { result_type: method, error: { code: "NOT_FOUND", message: "invoice not found" } });
      return respond(req, scheme, { result_type: method, error: null, result: describeInvoice(inv) });
    }
    return respond(req, scheme, { result_type: method, error: { code: "NOT_IMPLEMENTED", message: `${method} is not implemented` } });
  }

  let sub: SubCloser | null = null;
  await new Promise<void>((resolve) => {
    sub = pool.subscribeMany(relays, { kinds: [NWC_REQUEST_KIND], "#p": [walletPubkey] }, { onevent: (e) => void handle(e).catch(() => {}), oneose: resolve });
  });

  return {
    uri: `nostr+walletconnect://${walletPubkey}?relay=${encodeURIComponent(opts.relayUrl)}&secret=${Buffer.from(clientSk).toString("hex")}`,
    walletPubkey,
    clientPubkey,
    invoices,
    requests,
    setBehaviour: (b) => {
      if (b.errors !== undefined) errors = b.errors ?? undefined;
      if (b.amountOffsetMsats !== undefined) amountOffsetMsats = b.amountOffsetMsats;
    },
    receivePayment: async (paymentHash) => {
      const inv = invoices.get(paymentHash);
      if (!inv) throw new Error(`wallet service: no invoice ${paymentHash}`);
      inv.settledAtSec = nowSec();
      const content = JSON.stringify({ notification_type: "payment_received", notification: describeInvoice(inv) });
      if (opts.encryption.includes("nip44_v2"))
        await publish({ kind: NWC_NOTIFICATION_NIP44_KIND, tags: [["p", clientPubkey]], content: encrypt("nip44_v2", walletSk, clientPubkey, content) });
      if (opts.encryption.includes("nip04"))
        await publish({ kind: NWC_NOTIFICATION_NIP04_KIND, tags: [["p", clientPubkey]], content: encrypt("nip04", walletSk, clientPubkey, content) });
    },
    acceptPayment: (paymentHash) => {
      const inv = invoices.get(paymentHash);
      if (!inv) throw new Error(`wallet service: no invoice ${paymentHash}`);
      inv.accepted = true;
    },
    close: async () => {
      (sub as SubCloser | null)?.close();
      pool.destroy();
    },
  };
}
