// Prices per job kind, msats. A kind that is not configured is not served.
export interface PriceBook {
  priceMsatsByKind: ReadonlyMap<number, number>;
}

export function priceFor(book: PriceBook, kind: number): number | null {
  return book.priceMsatsByKind.get(kind) ?? null;
}
