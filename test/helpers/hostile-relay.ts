// A relay that misbehaves on purpose, run as its own process (node dist/test/helpers/hostile-relay.js).
// One server, one behaviour per URL path (the last path segment names it), so a gate can
// be given several hostile relays at once, as configured relays and as a customer's
// `relays` entries (a different path prefix makes a different URL for the same behaviour):
//   auth-silent       sends a NIP-42 challenge, never answers the AUTH event; EVENT → auth-required
//   auth-reject       sends a challenge, answers the AUTH event OK false;    EVENT → auth-required
//   auth-nochallenge  sends ["AUTH"] and other garbage AUTH frames;         EVENT → auth-required
//   malformed         answers REQ with EOSE; while flooding, a stream of malformed frames
//   big               sends 1 MB events (bad signatures) on every REQ and, while flooding, more
//   badsig            while flooding, an endless stream of job requests with bad signatures
//   never-ok          answers REQ with EOSE, never answers an EVENT
//   notice            answers REQ with EOSE, EVENT with OK; while flooding, NOTICE spam
//   drop              accepts the connection and drops it at once
//   refuse            refuses the WebSocket upgrade (HTTP 503)
// Prints {"url", "port", "pid"} once listening. Reads commands on stdin, one per line:
// "flood on", "flood off", "stats" (prints {"stats": {path: {connections, auths, events, reqs, framesSent}}}).
import { createServer } from "node:http";
import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { WebSocketServer, type WebSocket } from "ws";

const { values } = parseArgs({ options: { port: { type: "string" }, gate: { type: "string" } } });
const gatePubkey = values.gate ?? "0".repeat(64);

const MODES = ["auth-silent", "auth-reject", "auth-nochallenge", "malformed", "big", "badsig", "never-ok", "notice", "drop", "refuse"] as const;
type Mode = (typeof MODES)[number];

interface Stats {
  connections: number;
  auths: number;
  events: number;
  reqs: number;
  framesSent: number;
}
/** Per URL path (`/never-ok` and `/c/never-ok` are two relays to the gate). */
const stats = new Map<string, Stats>();
function statsOf(path: string): Stats {
  let st = stats.get(path);
  if (!st) stats.set(path, (st = { connections: 0, auths: 0, events: 0, reqs: 0, framesSent: 0 }));
  return st;
}
let flooding = false;

interface Peer {
  ws: WebSocket;
  mode: Mode;
  stats: Stats;
  subId: string | null;
}
const peers = new Set<Peer>();

function pathOf(url: string | undefined): string {
  return (url ?? "/").split("?")[0]!.replace(/\/+$/, "");
}
function modeOf(url: string | undefined): Mode | null {
  const path = pathOf(url);
  const last = path.slice(path.lastIndexOf("/") + 1) as Mode;
  return MODES.includes(last) ? last : null;
}

function send(p: Peer, frame: string): void {
  // A reader that falls behind is not buffered for without bound.
  if (p.ws.readyState !== p.ws.OPEN || p.ws.bufferedAmount > 4 * 1024 * 1024) return;
  p.ws.send(frame);
  p.stats.framesSent++;
}

const hex = (n: number) => randomBytes(n).toString("hex");
function fakeEvent(content: string, kind = 5050): Record<string, unknown> {
  return {
    id: hex(32),
    pubkey: hex(32),
    created_at: Math.floor(Date.now() / 1000),
    kind,
    tags: [
      ["i", "hello", "text"],
      ["p", gatePubkey],
    ],
    content,
    sig: hex(64),
  };
}
const ONE_MB = "x".repeat(1024 * 1024);

function malformedFrames(subId: string): string[] {
  return [
    "not json at all",
    '["EVENT"',
    `["EVENT","${subId}",null]`,
    `["EVENT","${subId}","a string"]`,
    `["EVENT","${subId}",{"id":"zz","kind":"x","tags":7}]`,
    '["EVENT","no-such-sub",{}]',
    '["OK"]',
    '["OK",null,true]',
    '["EOSE"]',
    '["CLOSED"]',
    "[]",
    "{}",
    "null",
    '["COUNT"]',
    `["${"Z".repeat(50)}"]`,
  ];
}

const server = createServer((_req, res) => {
  res.writeHead(404).end();
});
const wss = new WebSocketServer({ noServer: true, maxPayload: 8 * 1024 * 1024 });
server.on("upgrade", (req, socket, head) => {
  const mode = modeOf(req.url);
  if (mode === null || mode === "refuse") {
    if (mode) statsOf(pathOf(req.url)).connections++;
    socket.end("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, mode, statsOf(pathOf(req.url))));
});

function onConnection(ws: WebSocket, mode: Mode, st: Stats): void {
  st.connections++;
  ws.on("error", () => {});
  if (mode === "drop") {
    ws.terminate();
    return;
  }
  const p: Peer = { ws, mode, stats: st, subId: null };
  peers.add(p);
  ws.on("close", () => peers.delete(p));
  if (mode === "auth-silent" || mode === "auth-reject") send(p, JSON.stringify(["AUTH", hex(16)]));
  if (mode === "auth-nochallenge")
    for (const f of ['["AUTH"]', '["AUTH",42]', '["AUTH",{"challenge":"x"}]', '["AUTH",""]', '["AUTH"', '  [ "AUTH" , null ]']) send(p, f);
  ws.on("message", (data) => {
    let msg: unknown[];
    try {
      msg = JSON.parse(String(data)) as unknown[];
    } catch {
      return;
    }
    if (msg[0] === "REQ" && typeof msg[1] === "string") {
      st.reqs++;
      p.subId = msg[1];
      if (mode === "big") send(p, JSON.stringify(["EVENT", msg[1], fakeEvent(ONE_MB)]));
      if (!mode.startsWith("auth-")) send(p, JSON.stringify(["EOSE", msg[1]]));
      else send(p, JSON.stringify(["CLOSED", msg[1], "auth-required: authenticate first"]));
    } else if (msg[0] === "EVENT") {
      st.events++;
      const id = (msg[1] as { id?: string } | undefined)?.id ?? "";
      if (mode.startsWith("auth-")) send(p, JSON.stringify(["OK", id, false, "auth-required: authenticate first"]));
      else if (mode !== "never-ok") send(p, JSON.stringify(["OK", id, true, ""]));
    } else if (msg[0] === "AUTH") {
      st.auths++;
      const id = (msg[1] as { id?: string } | undefined)?.id ?? "";
      if (mode === "auth-reject") send(p, JSON.stringify(["OK", id, false, "restricted: we do not serve you"]));
    }
  });
}

// The floods: every 10 ms, a burst to every flooding peer (what the socket takes).
setInterval(() => {
  if (!flooding) return;
  for (const p of peers) {
    const sub = p.subId ?? "sub:1";
    if (p.mode === "malformed") for (let i = 0; i < 4; i++) for (const f of malformedFrames(sub)) send(p, f);
    else if (p.mode === "badsig") for (let i = 0; i < 20; i++) send(p, JSON.stringify(["EVENT", sub, fakeEvent(`bad ${i}`)]));
    else if (p.mode === "notice") for (let i = 0; i < 20; i++) send(p, JSON.stringify(["NOTICE", `spam ${hex(8)}`]));
    else if (p.mode === "big" && Math.random() < 0.02) send(p, JSON.stringify(["EVENT", sub, fakeEvent(ONE_MB)]));
  }
}, 10);

createInterface({ input: process.stdin }).on("line", (line) => {
  const cmd = line.trim();
  if (cmd === "flood on") flooding = true;
  else if (cmd === "flood off") flooding = false;
  if (cmd === "stats" || cmd.startsWith("flood")) process.stdout.write(JSON.stringify({ stats: Object.fromEntries(stats), flooding, cmd }) + "\n");
});

server.listen(values.port ? Number(values.port) : 0, "127.0.0.1", () => {
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  process.stdout.write(JSON.stringify({ url: `ws://127.0.0.1:${port}`, port, pid: process.pid }) + "\n");
});
const stop = () => {
  for (const p of peers) p.ws.terminate();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 500).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
