// A plain NIP-90 DVM for the tests, in its own process. It knows nothing of dvm-gate:
// it subscribes to job requests of its kind addressed to its pubkey (`#p`) on its own
// relay, answers `processing` and then a result (request kind + 1000), like any DVM
// built on nostrdvm or NDK, and like them it reconnects when its relay goes away
// (subscribing again from its start, so requests stored meanwhile are seen; each
// request is answered once). The input text picks the behaviour: "fail" → `error`
// feedback, "silent" → no answer at all, "pay" → `payment-required`, "hold" →
// `processing` at once, the result only after the line "release" on stdin.
//   node dist/test/helpers/upstream-dvm.js --relay URL --kind 5050 [--secret HEX]
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { finalizeEvent, generateSecretKey, getPublicKey, verifyEvent, type Event } from "nostr-tools/pure";
import { SafeRelay } from "../../src/relay/safe-relay.js";

const { values } = parseArgs({ options: { relay: { type: "string" }, kind: { type: "string" }, secret: { type: "string" } } });
const kind = Number(values.kind ?? "5050");
const url = values.relay!;
const sk = values.secret ? Uint8Array.from(Buffer.from(values.secret, "hex")) : generateSecretKey();
const pk = getPublicKey(sk);
const nowSec = () => Math.floor(Date.now() / 1000);
const startedSec = nowSec();
const seen = new Set<string>();
const held: Event[] = [];
let requests = 0;
let relay: SafeRelay | null = null;
let connected: Promise<SafeRelay> = connect();

async function connect(): Promise<SafeRelay> {
  for (let attempt = 0; ; attempt++) {
    const r = new SafeRelay(url);
    try {
      await r.connect({ timeout: 2000 });
    } catch {
      r.safeClose();
      await new Promise((res) => setTimeout(res, Math.min(1000, 50 * 2 ** attempt)));
      continue;
    }
    r.onclose = () => {
      if (relay !== r) return;
      relay = null;
      connected = connect();
    };
    relay = r;
    r.subscribe([{ kinds: [kind], "#p": [pk], since: startedSec - 60 }], { onevent: (ev) => void onRequest(ev) });
    return r;
  }
}

/** Publishes on the current connection, again after a reconnect if the socket went away first. */
async function publish(tpl: { kind: number; tags: string[][]; content: string }): Promise<void> {
  const ev = finalizeEvent({ ...tpl, created_at: nowSec() }, sk);
  for (;;) {
    const r = await connected;
    try {
      await r.publish(ev);
      return;
    } catch {
      if (relay === r) await new Promise((res) => setTimeout(res, 100));
    }
  }
}

const aboutOf = (ev: Event) => [
  ["e", ev.id, url],
  ["p", ev.pubkey],
];

async function answer(ev: Event): Promise<void> {
  const text = ev.tags.find((t) => t[0] === "i")?.[1] ?? "";
  const iTags = ev.tags.filter((t) => t[0] === "i");
  await publish({ kind: kind + 1000, tags: [["request", JSON.stringify(ev)], ...aboutOf(ev), ...iTags], content: `upstream:${[...text].reverse().join("")}` });
}

async function onRequest(ev: Event): Promise<void> {
  if (seen.has(ev.id) || !verifyEvent(ev)) return;
  seen.add(ev.id);
  requests++;
  const text = ev.tags.find((t) => t[0] === "i")?.[1] ?? "";
  const about = aboutOf(ev);
  if (text === "silent") return;
  if (text === "pay") return void (await publish({ kind: 7000, tags: [["status", "payment-required", "pay me"], ["amount", "21000"], ...about], content: "" }));
  if (text === "fail") return void (await publish({ kind: 7000, tags: [["status", "error", "no GPU today"], ...about], content: "" }));
  await publish({ kind: 7000, tags: [["status", "processing", "upstream working"], ...about], content: "" });
  if (text === "hold") held.push(ev);
  else await answer(ev);
}

createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() !== "release") return;
  for (const ev of held.splice(0)) void answer(ev);
});

await connected;
process.stdout.write(JSON.stringify({ pubkey: pk, pid: process.pid }) + "\n");
process.on("SIGTERM", () => {
  process.stderr.write(`upstream answered ${requests} requests\n`);
  process.exit(0);
});
