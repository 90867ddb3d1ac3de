// Token buckets keyed by pubkey or address, in a map with a hard size limit. A bucket
// holds one minute's allowance and refills continuously; the allowance is passed on
// every call because it follows the sender's tier, which can change at any time.

interface Bucket {
  tokens: number;
  atMs: number;
}

export class TokenBuckets {
  // Map keeps insertion order: re-inserting on every touch makes the first key the
  // least recently used, which is the one evicted when the map is full.
  private readonly buckets = new Map<string, Bucket>();

  constructor(readonly maxKeys: number) {
    if (!Number.isSafeInteger(maxKeys) || maxKeys < 1) throw new Error(`maxKeys must be a positive integer, got ${maxKeys}`);
  }

  get size(): number {
    return this.buckets.size;
  }

  /** Whether one token is available now, without taking it. */
  has(key: string, perMinute: number, nowMs: number): boolean {
    return this.tokensAt(this.buckets.get(key), perMinute, nowMs) >= 1;
  }

  /** Takes one token (call only after `has` said yes for every limit involved). */
  take(key: string, perMinute: number, nowMs: number): void {
    const tokens = this.tokensAt(this.buckets.get(key), perMinute, nowMs) - 1;
    this.buckets.delete(key);
    // An evicted sender starts again with a full bucket: bounded memory beats exactness.
    if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    this.buckets.set(key, { tokens: Math.max(0, tokens), atMs: nowMs });
  }

  private tokensAt(b: Bucket | undefined, perMinute: number, nowMs: number): number {
    if (perMinute <= 0) return 0;
    if (!b) return perMinute;
    // A clock that steps back refills nothing rather than draining the bucket.
    const elapsedMs = Math.max(0, nowMs - b.atMs);
    return Math.min(perMinute, b.tokens + (elapsedMs * perMinute) / 60_000);
  }
}
