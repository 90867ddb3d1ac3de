// Capped exponential backoff with jitter, for every retry towards a peer (relays, deliveries).
export function backoffDelayMs(attempt: number, baseMs: number, maxMs: number, random = Math.random): number {
  const capped = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  // "Equal jitter": never below half the step, so a flapping relay is not hammered.
  return Math.floor(capped / 2 + random() * (capped / 2));
}
