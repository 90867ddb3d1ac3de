// A stand-in LNURL provider for zap tests: its key signs NIP-57 receipts (kind 9735),
// its "node" key signs real bolt11 invoices committing to the zap request. Options
// forge each thing a receipt's checks look at, one at a time.
import { createHash, randomBytes } from "node:crypto";
import { finalizeEvent, generateSecretKey, getPublicKey, type Event } from "nostr-tools/pure";
import { encodeBolt11 } from "../../src/payments/bolt11.js";

export interface ZapProvider {
  sk: Uint8Array;
  pubkey: string;
  nodeSk: Uint8Array;
}

export function makeZapProvider(): ZapProvider {
  const sk = generateSecretKey();
  return { sk, pubkey: getPublicKey(sk), nodeSk: randomBytes(32) };
}

export interface ZapOptions {
  zapperSk: Uint8Array;
  /** Who the zap pays (p tags of request and receipt). */
  recipient: string;
  amountMsats: number;
  /** The zapped event: null (default) for a zap of the recipient's profile. */
  eventId?: string | null;
  /** Signs the receipt instead of the provider. */
  signer?: Uint8Array;
  /** Changes the zap request after signing (breaks its signature). */
  tamperRequest?: (zr: Event) => void;
  /** Changes the receipt after signing (breaks its signature). */
  tamperReceipt?: (r: Event) => void;
  /** The bolt11 commits to this text instead of the zap request. */
  hashedDescription?: string;
  /** The zap request's amount tag, if not the bolt11's amount. */
  amountTag?: string;
  paymentHash?: string;
  createdAtSec?: number;
}

const sha256Hex = (s: string) => createHash("sha256").update(s, "utf8").digest("hex");

export function zapReceipt(p: ZapProvider, o: ZapOptions): { receipt: Event; paymentHash: string; zapRequest: Event } {
  const createdAtSec = o.createdAtSec ?? Math.floor(Date.now() / 1000);
  const eventTag = o.eventId ? [["e", o.eventId]] : [];
  const zapRequest = finalizeEvent(
    {
      kind: 9734,
      created_at: createdAtSec,
      content: "",
      tags: [["p", o.recipient], ...eventTag, ["amount", o.amountTag ?? String(o.amountMsats)], ["relays", "ws://127.0.0.1:1"]],
    },
    o.zapperSk,
  );
  o.tamperRequest?.(zapRequest);
  const description = JSON.stringify(zapRequest);
  const paymentHash = o.paymentHash ?? randomBytes(32).toString("hex");
  const bolt11 = encodeBolt11({
    network: "bcrt",
    amountMsats: o.amountMsats,
    paymentHash,
    descriptionHash: sha256Hex(o.hashedDescription ?? description),
    createdAtSec,
    expirySec: 600,
    nodeSecretKey: p.nodeSk,
  });
  const receipt = finalizeEvent(
    {
      kind: 9735,
      created_at: createdAtSec,
      content: "",
      tags: [["p", o.recipient], ...eventTag, ["P", getPublicKey(o.zapperSk)], ["bolt11", bolt11], ["description", description]],
    },
    o.signer ?? p.sk,
  );
  o.tamperReceipt?.(receipt);
  return { receipt, paymentHash, zapRequest };
}
