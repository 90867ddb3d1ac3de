// A careless (or lying) NIP-01 relay for the audit tests: it stores whatever it is
// sent without checking ids or signatures, and answers REQ by kind, since, until and
// limit only, ignoring authors and tag filters. Real relays refuse forged events, so
// this is how a forged or foreign "grant" reaches an auditor in the wild.
import { WebSocketServer, type WebSocket } from "ws";
import type { AddressInfo } from "node:net";
import type { Event } from "nostr-tools/pure";

export interface SloppyRelay {
  url: string;
  events: Event[];
  close: () => Promise<void>;
}

interface Filter {
  kinds?: number[];
  since?: number;
  until?: number;
  limit?: number;
}

export async function startSloppyRelay(initial: Event[] = []): Promise<SloppyRelay> {
  const events = [...initial];
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise<void>((resolve, reject) => {
    wss.once("listening", resolve);
    wss.once("error", reject);
  });
  wss.on("connection", (ws: WebSocket) => {
    ws.on("message", (data) => {
      let msg: unknown[];
      try {
        msg = JSON.parse(data.toString()) as unknown[];
      } catch {
        return;
      }
      if (msg[0] === "EVENT") {
        const e = msg[1] as Event;
        events.push(e);
        ws.send(JSON.stringify(["OK", e.id, true, ""]));
      } else if (msg[0] === "REQ") {
        const subId = msg[1] as string;
        const filters = msg.slice(2) as Filter[];
        for (const f of filters) {
          const hits = events
            .filter(
              (e) =>
                (!f.kinds || f.kinds.includes(e.kind)) &&
                (f.since === undefined || e.created_at >= f.since) &&
                (f.until === undefined || e.created_at <= f.until),
            )
            .sort((a, b) => b.created_at - a.created_at)
            .slice(0, f.limit ?? 500);
          for (const e of hits) ws.send(JSON.stringify(["EVENT", subId, e]));
        }
        ws.send(JSON.stringify(["EOSE", subId]));
      }
    });
  });
  const port = (wss.address() as AddressInfo).port;
  return {
    url: `ws://127.0.0.1:${port}`,
    events,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
