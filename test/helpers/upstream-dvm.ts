// A plain NIP-90 DVM for the tests, in its own process. It knows nothing of dvm-gate:
// it subscribes to job requests of its kind addressed to its pubkey (`#p`) on its own
// relay, answers `processing` and then a result (request kind + 1000), like any DVM
// built on nostrdvm or NDK. The input text picks the behaviour: "fail" → `error`
// feedback, "silent" → no answer at all, "pay" → `payment-required`.
//   node dist/test/helpers/upstream-dvm.js --relay URL --kind 5050
import { parseArgs } from "node:util";
import { AbstractRelay } from "nostr-tools/abstract-relay";
import { finalizeEvent, generateSecretKey, getPublicKey, verifyEvent, type Event } from "nostr-tools/pure";
import WebSocket from "ws";

const { values } = parseArgs({ options: { relay: { type: "string" }, kind: { type: "string" } } });
const kind = Number(values.kind ?? "5050");
const sk = generateSecretKey();
const pk = getPublicKey(sk);
const relay = new AbstractRelay(values.relay!, { verifyEvent, websocketImplementation: WebSocket as never });
await relay.connect({ timeout: 5000 });
const seen = new Set<string>();
let requests = 0;

const nowSec = () => Math.floor(Date.now() / 1000);
const publish = (tpl: { kind: number; tags: string[][]; content: string }) => relay.publish(finalizeEvent({ ...tpl, created_at: nowSec() }, sk));

async function onRequest(ev: Event): Promise<void> {
  if (seen.has(ev.id) || !verifyEvent(ev)) return;
  seen.add(ev.id);
  requests++;
  const text = ev.tags.find((t) => t[0] === "i")?.[1] ?? "";
  const about = [
    ["e", ev.id, values.relay!],
    ["p", ev.pubkey],
  ];
  if (text === "silent") return;
  if (text === "pay") return void (await publish({ kind: 7000, tags: [["status", "payment-required", "pay me"], ["amount", "21000"], ...about], content: "" }));
  if (text === "fail") return void (await publish({ kind: 7000, tags: [["status", "error", "no GPU today"], ...about], content: "" }));
  await publish({ kind: 7000, tags: [["status", "processing", "upstream working"], ...about], content: "" });
  const iTags = ev.tags.filter((t) => t[0] === "i");
  await publish({ kind: kind + 1000, tags: [["request", JSON.stringify(ev)], ...about, ...iTags], content: `upstream:${[...text].reverse().join("")}` });
}

relay.subscribe([{ kinds: [kind], "#p": [pk], since: nowSec() - 5 }], { onevent: (ev) => void onRequest(ev) });
process.stdout.write(JSON.stringify({ pubkey: pk, pid: process.pid }) + "\n");
process.on("SIGTERM", () => {
  process.stderr.write(`upstream answered ${requests} requests\n`);
  process.exit(0);
});
