// Reading a peer's answer without letting it fill our memory: at most `maxBytes` are
// kept; one byte more and the read stops with `tooLarge`.
export async function readCapped(body: ReadableStream<Uint8Array> | null, maxBytes: number): Promise<{ bytes: Buffer; tooLarge: boolean }> {
  if (!body) return { bytes: Buffer.alloc(0), tooLarge: false };
  const reader = body.getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      return { bytes: Buffer.alloc(0), tooLarge: true };
    }
    parts.push(value);
  }
  return { bytes: Buffer.concat(parts), tooLarge: false };
}

/** Strict UTF-8: a backend that answers bytes that are not text has answered garbage. */
export function decodeUtf8(bytes: Uint8Array): string | null {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

/** JSON answers may escape every character (\\uXXXX): allow that much room before the content check. */
export function jsonBodyCap(maxResultBytes: number): number {
  return maxResultBytes * 6 + 4096;
}
