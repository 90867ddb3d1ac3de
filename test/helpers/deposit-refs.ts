// The crash test's deposits: what a deposit of `ref` is (customer and amount) is fixed by
// the ref alone, so the child may try the same one many times, across kills, and the
// parent can tell a second credit from the first.
export function depositFor(ref: string, pubkeys: readonly string[]): { pubkey: string; amountMsats: number } {
  const n = Number(ref.slice(4));
  return { pubkey: pubkeys[n % pubkeys.length]!, amountMsats: (1 + (n % 50)) * 1000 + (n % 7) };
}
