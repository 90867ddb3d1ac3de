// Splits a byte stream into lines with a hard limit on how much of one line is held in
// memory. A longer line is not kept: it is reported as oversize, with the event id
// found by scanning it as it streams past, so it can still get its own answer.

export type LineItem = { kind: "line"; text: string } | { kind: "oversize"; bytes: number; eventId: string };

// Inside JSON strings quotes are escaped, so `"id":"` can only be an object key; in a
// strfry line the only object with an `id` key is the event.
const EVENT_ID = /"id"\s*:\s*"([0-9a-f]{64})"/;
const ID_TAIL_CHARS = 80;

export class LineSplitter {
  private parts: Buffer[] = [];
  private heldBytes = 0;
  private oversize = false;
  private oversizeBytes = 0;
  private idTail = "";
  private foundId = "";

  constructor(
    readonly maxLineBytes: number,
    private readonly onItem: (item: LineItem) => void,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(10, start);
      this.append(chunk.subarray(start, nl === -1 ? chunk.length : nl));
      if (nl === -1) return;
      this.finishLine();
      start = nl + 1;
    }
  }

  /** End of input: a last line without a newline still counts. */
  end(): void {
    if (this.heldBytes > 0 || this.oversize) this.finishLine();
  }

  private append(seg: Buffer): void {
    if (seg.length === 0) return;
    if (!this.oversize && this.heldBytes + seg.length <= this.maxLineBytes) {
      this.parts.push(seg);
      this.heldBytes += seg.length;
      return;
    }
    if (!this.oversize) {
      this.oversize = true;
      this.oversizeBytes = this.heldBytes;
      for (const p of this.parts) this.scanForId(p);
      this.parts = [];
      this.heldBytes = 0;
    }
    this.oversizeBytes += seg.length;
    this.scanForId(seg);
  }

  private scanForId(buf: Buffer): void {
    if (this.foundId) return;
    const text = this.idTail + buf.toString("latin1");
    const m = EVENT_ID.exec(text);
    if (m) this.foundId = m[1]!;
    else this.idTail = text.slice(-ID_TAIL_CHARS);
  }

  private finishLine(): void {
    let item: LineItem;
    if (this.oversize) {
      item = { kind: "oversize", bytes: this.oversizeBytes, eventId: this.foundId };
    } else {
      const buf = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.heldBytes);
      item = { kind: "line", text: buf.toString("utf8") };
    }
    this.parts = [];
    this.heldBytes = 0;
    this.oversize = false;
    this.oversizeBytes = 0;
    this.idTail = "";
    this.foundId = "";
    this.onItem(item);
  }
}
