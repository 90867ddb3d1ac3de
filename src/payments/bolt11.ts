// BOLT 11 invoices through @node-lightning/invoice: the library does the bech32, the
// field encoding and the secp256k1 signature (decode refuses a signature that does
// not verify); this file only converts its shapes to ours (hex, integer msats, ms).
import { createHash } from "node:crypto";
import { decode, encode, Invoice } from "@node-lightning/invoice";
import { MAX_MSATS, isMsats } from "../util/money.js";
import { PaymentBackendError } from "./types.js";
import { HEX64 } from "../util/hex.js";

export interface DecodedBolt11 {
  paymentHash: string;
  /** null for an "any amount" invoice. */
  amountMsats: number | null;
  createdAtMs: number;
  expiresAtMs: number;
  /** The `h` field, hex: what a NIP-57 zap invoice commits to. */
  descriptionHash: string | null;
  description: string | null;
  /** "bc", "tb", "bcrt", "sb"…: the prefix after "ln". */
  network: string;
  /** Compressed secp256k1 key, hex, recovered from (or checked against) the signature. */
  payeePubkey: string;
}

/** BOLT 11 has no length limit; ours keeps a hostile string from costing much. */
export const MAX_BOLT11_CHARS = 4096;
/** BOLT 11 caps the `d` field at 639 bytes; longer descriptions go in as a hash. */
const MAX_SHORT_DESC_BYTES = 639;

export function normalizeBolt11(text: string): string {
  let t = text.trim();
  if (t.toLowerCase().startsWith("lightning:")) t = t.slice("lightning:".length);
  return t.toLowerCase();
}

export function decodeBolt11(bolt11: string): DecodedBolt11 {
  if (typeof bolt11 !== "string" || bolt11.length === 0) throw new PaymentBackendError("invalid bolt11: empty");
  if (bolt11.length > MAX_BOLT11_CHARS) throw new PaymentBackendError(`invalid bolt11: longer than ${MAX_BOLT11_CHARS} characters`);
  const text = normalizeBolt11(bolt11);
  if (!text.startsWith("ln")) throw new PaymentBackendError('invalid bolt11: does not start with "ln"');
  let inv: Invoice;
  try {
    inv = decode(text);
  } catch (err) {
    throw new PaymentBackendError(`invalid bolt11: ${(err as Error).message ?? String(err)}`);
  }
  const hash = inv.paymentHash as Buffer | undefined;
  if (!hash || hash.length !== 32) throw new PaymentBackendError("invalid bolt11: no payment hash");
  const hashDesc = inv.hashDesc as Buffer | undefined;
  const shortDesc = inv.shortDesc as string | undefined;
  return {
    paymentHash: hash.toString("hex"),
    amountMsats: amountOf(inv),
    createdAtMs: inv.timestamp * 1000,
    expiresAtMs: (inv.timestamp + inv.expiry) * 1000,
    descriptionHash: hashDesc && hashDesc.length === 32 ? hashDesc.toString("hex") : null,
    description: typeof shortDesc === "string" ? shortDesc : null,
    network: inv.network,
    payeePubkey: Buffer.from(inv.pubkey).toString("hex"),
  };
}

function amountOf(inv: Invoice): number | null {
  if (!inv.hasValue) return null;
  const text = String(inv.valueMsat);
  // A pico-BTC amount that is not a whole msat cannot be paid (BOLT 11 says reject).
  if (!/^\d{1,16}$/.test(text)) throw new PaymentBackendError("invalid bolt11: amount is not a whole number of millisats");
  const msats = Number(text);
  if (!isMsats(msats) || msats === 0) throw new PaymentBackendError(`invalid bolt11: amount must be from 1 to ${MAX_MSATS} msats`);
  return msats;
}

export interface EncodeBolt11 {
  /** "bcrt" (regtest) for the dev wallet and the test peers: never a mainnet prefix by accident. */
  network: string;
  amountMsats: number;
  paymentHash: string;
  /** Either a description (hashed automatically past 639 bytes) or a description hash. */
  description?: string;
  descriptionHash?: string;
  createdAtSec: number;
  expirySec: number;
  /** 32-byte secp256k1 secret of the issuing node: it signs the invoice. */
  nodeSecretKey: Uint8Array;
}

export function encodeBolt11(p: EncodeBolt11): string {
  if (!isMsats(p.amountMsats) || p.amountMsats === 0) throw new PaymentBackendError(`invoice amount must be whole millisats ≥ 1, got ${p.amountMsats}`);
  if (!HEX64.test(p.paymentHash)) throw new PaymentBackendError("payment hash must be 64 lowercase hex characters");
  if (!Number.isSafeInteger(p.expirySec) || p.expirySec <= 0) throw new PaymentBackendError(`invoice expiry must be whole seconds ≥ 1, got ${p.expirySec}`);
  if (p.nodeSecretKey.length !== 32) throw new PaymentBackendError("node secret key must be 32 bytes");
  const inv = new Invoice();
  inv.network = p.network;
  inv.valueMsat = String(p.amountMsats);
  inv.timestamp = p.createdAtSec;
  inv.paymentHash = Buffer.from(p.paymentHash, "hex");
  inv.expiry = p.expirySec;
  if (p.descriptionHash !== undefined) {
    if (!HEX64.test(p.descriptionHash)) throw new PaymentBackendError("description hash must be 64 lowercase hex characters");
    inv.hashDesc = Buffer.from(p.descriptionHash, "hex");
  } else {
    const desc = p.description ?? "";
    if (Buffer.byteLength(desc, "utf8") > MAX_SHORT_DESC_BYTES) inv.hashDesc = sha256(desc);
    else inv.shortDesc = desc;
  }
  return encode(inv, Buffer.from(p.nodeSecretKey));
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}
