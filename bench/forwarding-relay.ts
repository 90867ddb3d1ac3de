// A bench-only relay: forwards every EVENT to the open subscriptions whose filters match,
// answers OK, stores nothing and verifies nothing. @nostr-relay/core verifies every event
// in pure JS (~850/s here), far below the 2,000/s a flood bench offers; this one is
// measured alone in the same run (bench/floods.ts) and never used outside bench/.
//   node dist/bench/forwarding-relay.js [--port N] [--hold-eose]
// --hold-eose: never answer EOSE to a subscription for job requests (kinds 5000–5999
// without authors): the gate then stays "catching up" and holds its decisions, so the
// bench can measure what receiving and queueing a request costs on its own.
import { parseArgs } from "node:util";
import { WebSocketServer, type WebSocket } from "ws";
import type { AddressInfo } from "node:net";

interface Filter {
  ids?: string[];
  kinds?: number[];
  authors?: string[];
  since?: number;
  until?: number;
  [tag: `#${string}`]: string[] | undefined;
}
interface Ev {
  id: string;
  pubkey: string;
  kind: number;
  created_at: number;
  tags: string[][];
}

const { values } = parseArgs({ options: { port: { type: "string" }, "hold-eose": { type: "boolean" } } });
const holdEose = values["hold-eose"] === true;

function matches(f: Filter, ev: Ev): boolean {
  if (f.ids && !f.ids.includes(ev.id)) return false;
  if (f.kinds && !f.kinds.includes(ev.kind)) return false;
  if (f.authors && !f.authors.includes(ev.pubkey)) return false;
  if (f.since !== undefined && ev.created_at < f.since) return false;
  if (f.until !== undefined && ev.created_at > f.until) return false;
  for (const key of Object.keys(f)) {
    if (key[0] !== "#") continue;
    const want = f[key as `#${string}`]!;
    const name = key.slice(1);
    if (!ev.tags.some((t) => t[0] === name && want.includes(t[1]!))) return false;
  }
  return true;
}

const subs = new Map<WebSocket, Map<string, Filter[]>>();
const wss = new WebSocketServer({ host: "127.0.0.1", port: values.port ? Number(values.port) : 0, maxPayload: 1_048_576 });
await new Promise<void>((resolve) => wss.once("listening", () => resolve()));
wss.on("connection", (ws: WebSocket) => {
  subs.set(ws, new Map());
  ws.on("message", (data: Buffer) => {
    let m: unknown[];
    try {
      m = JSON.parse(data.toString()) as unknown[];
    } catch {
      return;
    }
    if (m[0] === "EVENT") {
      const ev = m[1] as Ev;
      const frame = `["EVENT",`;
      const body = JSON.stringify(ev);
      for (const [peer, byId] of subs) {
        for (const [subId, filters] of byId) if (filters.some((f) => matches(f, ev))) peer.send(`${frame}${JSON.stringify(subId)},${body}]`);
      }
      ws.send(JSON.stringify(["OK", ev.id, true, ""]));
    } else if (m[0] === "REQ") {
      const subId = String(m[1]);
      const filters = m.slice(2) as Filter[];
      // Nothing is stored: a page back (`until`) finds nothing and ends at once.
      if (filters.some((f) => f.until !== undefined)) {
        ws.send(JSON.stringify(["EOSE", subId]));
        return;
      }
      subs.get(ws)!.set(subId, filters);
      const forJobs = filters.some((f) => !f.authors && f.kinds?.some((k) => k >= 5000 && k <= 5999));
      if (!(holdEose && forJobs)) ws.send(JSON.stringify(["EOSE", subId]));
    } else if (m[0] === "CLOSE") {
      subs.get(ws)?.delete(String(m[1]));
    }
  });
  ws.on("close", () => subs.delete(ws));
  ws.on("error", () => ws.terminate());
});
const port = (wss.address() as AddressInfo).port;
process.stdout.write(JSON.stringify({ url: `ws://127.0.0.1:${port}`, port, pid: process.pid }) + "\n");
process.on("SIGTERM", () => process.exit(0));
