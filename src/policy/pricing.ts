// Prices per job kind, msats. A kind that is not configured is not served.
export interface PriceBook {
  priceMsatsByKind: ReadonlyMap<number, number>;
}

export function isJobRequestKind(kind: number): boolean {
  return Number.isInteger(kind) && kind >= 5000 && kind <= 5999;
}

export function priceFor(book: PriceBook, kind: number): number | null {
  return book.priceMsatsByKind.get(kind) ?? null;
}

/** A customer's `bid` (msats) below our price cannot be served. */
export function bidCovers(bidMsats: number | null, priceMsats: number): boolean {
  return bidMsats === null || bidMsats >= priceMsats;
}
