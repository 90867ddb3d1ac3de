// Nostr ids, pubkeys and payment hashes on the wire: 32 bytes as lowercase hex.
// One pattern for every reader, so "is this an id" means the same thing everywhere.
export const HEX64 = /^[0-9a-f]{64}$/;

export function isHex64(v: unknown): v is string {
  return typeof v === "string" && HEX64.test(v);
}
