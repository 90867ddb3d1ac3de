// NIP-04 and NIP-44 (v2) payloads between two keys, via nostr-tools: the gate decrypts
// encrypted job params with its key and the customer's pubkey, and encrypts its replies
// back in the scheme the customer chose. NIP-90 names NIP-04; clients also send NIP-44,
// and the ciphertext itself tells them apart (NIP-04 is `<base64>?iv=<base64>`).
import * as nip04 from "nostr-tools/nip04";
import * as nip44 from "nostr-tools/nip44";

export type EncryptionScheme = "nip04" | "nip44";

/** NIP-44 v2 caps plaintext at 65,535 bytes; its base64 payload is then at most this long. */
const NIP44_MAX_PAYLOAD_CHARS = 87_472;
const NIP04_FORMAT = /^[A-Za-z0-9+/]+={0,2}\?iv=[A-Za-z0-9+/]{22}={0,2}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** The scheme a ciphertext is written in, or null when it is neither. */
export function detectScheme(ciphertext: string): EncryptionScheme | null {
  if (ciphertext.includes("?iv=")) return NIP04_FORMAT.test(ciphertext) ? "nip04" : null;
  if (ciphertext.length <= NIP44_MAX_PAYLOAD_CHARS && BASE64.test(ciphertext)) return "nip44";
  return null;
}

export function encryptFor(scheme: EncryptionScheme, plaintext: string, senderSecretKey: Uint8Array, recipientPubkey: string): string {
  if (scheme === "nip04") return nip04.encrypt(senderSecretKey, recipientPubkey, plaintext);
  return nip44.v2.encrypt(plaintext, nip44.v2.utils.getConversationKey(senderSecretKey, recipientPubkey));
}

/** The plaintext and its scheme, or null when the payload cannot be decrypted with these keys. */
export function decryptFrom(ciphertext: string, recipientSecretKey: Uint8Array, senderPubkey: string): { scheme: EncryptionScheme; plaintext: string } | null {
  const scheme = detectScheme(ciphertext);
  if (scheme === null) return null;
  try {
    const plaintext =
      scheme === "nip04"
        ? nip04.decrypt(recipientSecretKey, senderPubkey, ciphertext)
        : nip44.v2.decrypt(ciphertext, nip44.v2.utils.getConversationKey(recipientSecretKey, senderPubkey));
    return { scheme, plaintext };
  } catch {
    return null;
  }
}
