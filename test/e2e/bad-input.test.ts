// Hostile and malformed events, end to end: each is published through a real relay to
// the running service (and, when the relay itself refuses it, handed to the service as a
// non-verifying relay would deliver it). Each gets its documented answer — an `error`
// feedback with the stated reason, or nothing — and no msat moves.
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { schnorrSign } from "@nostr-relay/common";
import { AbstractRelay } from "nostr-tools/abstract-relay";
import { finalizeEvent, generateSecretKey, getPublicKey, type Event } from "nostr-tools/pure";
import WebSocket from "ws";
import { readFeedback } from "../../src/events/feedback.js";
import { startEmbeddedRelay, type EmbeddedRelay } from "../../src/peers/embedded-relay.js";
import { encryptFor } from "../../src/events/encryption.js";
import { initFastVerify } from "../../src/events/verify.js";
import { TestWorker } from "../helpers/worker.js";
import { Customer, fetchEvents, sleep, startGate, waitForAsync, type Gate } from "./harness.js";

interface Row {
  name: string;
  event: () => Record<string, unknown>;
  /** null: no answer at all; otherwise a substring of the error feedback's reason. */
  answer: string | null;
}

function signAny(t: { kind: number; created_at: number; tags: unknown; content: string }, sk: Uint8Array): Record<string, unknown> {
  const pk = getPublicKey(sk);
  const id = createHash("sha256")
    .update(JSON.stringify([0, pk, t.created_at, t.kind, t.tags, t.content]), "utf8")
    .digest("hex");
  return { id, pubkey: pk, created_at: t.created_at, kind: t.kind, tags: t.tags, content: t.content, sig: schnorrSign(id, sk) };
}

describe("bad input through the relay to the running service", () => {
  let relay: EmbeddedRelay;
  let gate: Gate;
  let worker: TestWorker;
  let victim: Customer;
  let victimReq: Event;
  const mallory = generateSecretKey();
  const banned = generateSecretKey();
  const other = generateSecretKey();

  beforeAll(async () => {
    // The verifier `dvm-gate start` runs with.
    expect(await initFastVerify()).toBe(true);
    relay = await startEmbeddedRelay();
    worker = new TestWorker();
    gate = await startGate({ relays: [relay.url], workers: [worker.pubkey] });
    await worker.connect([relay.url]);
    gate.ledger.setBanned(getPublicKey(banned), true, "test", gate.nowMs());
    // A live free job that hostile events will try to settle or cancel.
    victim = await new Customer().connect([relay.url]);
    gate.ledger.setTier(victim.pubkey, "elite", gate.nowMs());
    victimReq = victim.request(gate.pubkey);
    await victim.publish(victimReq);
    await victim.waitFeedback(victimReq.id, "processing");
  });
  afterAll(async () => {
    victim.close();
    worker.close();
    await gate.stop();
    await relay.close();
    gate.tmp.remove();
  });

  it("answers each of 30 bad events as documented and moves no msat", { timeout: 60_000 }, async () => {
    const now = () => Math.floor(Date.now() / 1000);
    const gp = gate.pubkey;
    const req =
      (tags: unknown[][], over: { kind?: number; created_at?: number; content?: string; sk?: Uint8Array } = {}) =>
      () =>
        signAny({ kind: over.kind ?? 5050, created_at: over.created_at ?? now(), tags, content: over.content ?? "" }, over.sk ?? mallory);
    const ok = (extra: string[][] = []) => [["i", "hi", "text"], ["p", gp], ...extra];
    const tamper = (f: (e: Record<string, unknown>) => void) => () => {
      const e = req(ok())();
      f(e);
      return e;
    };
    const rows: Row[] = [
      { name: "bad signature", event: tamper((e) => (e.sig = (e.sig as string).replace(/^./, (c) => (c === "0" ? "1" : "0")))), answer: null },
      { name: "id does not match content", event: tamper((e) => (e.content = "changed")), answer: null },
      { name: "id not hex", event: tamper((e) => (e.id = "zz" + (e.id as string).slice(2))), answer: null },
      { name: "negative created_at", event: tamper((e) => (e.created_at = -1)), answer: null },
      { name: "kind not served", event: req(ok(), { kind: 5999 }), answer: null },
      {
        name: "addressed to another provider",
        event: req([
          ["i", "hi", "text"],
          ["p", getPublicKey(other)],
        ]),
        answer: null,
      },
      { name: "10 minutes in the future", event: req(ok(), { created_at: now() + 600 }), answer: null },
      { name: "older than maxRequestAgeSec", event: req(ok(), { created_at: now() - 2000 }), answer: null },
      { name: "NIP-40 expired", event: req(ok([["expiration", String(now() - 10)]])), answer: null },
      { name: "bid below price", event: req(ok([["bid", "1000"]])), answer: "bid below price" },
      { name: "bid not a number", event: req(ok([["bid", "ten"]])), answer: "bid must be a whole number" },
      { name: "bid with a fraction", event: req(ok([["bid", "10000.5"]])), answer: "bid must be a whole number" },
      {
        name: "two bid tags",
        event: req(
          ok([
            ["bid", "20000"],
            ["bid", "30000"],
          ]),
        ),
        answer: "more than one bid",
      },
      {
        name: "i tag of unknown type",
        event: req([
          ["i", "hi", "telepathy"],
          ["p", gp],
        ]),
        answer: "i tag type",
      },
      {
        name: "i tag of type event, not an id",
        event: req([
          ["i", "not-an-id", "event"],
          ["p", gp],
        ]),
        answer: "needs an event id",
      },
      { name: "i tag without data", event: req([["i"], ["p", gp]]), answer: "i tag needs data" },
      { name: "param without value", event: req(ok([["param", "model"]])), answer: "param tag needs" },
      { name: "empty output", event: req(ok([["output"]])), answer: "output tag needs" },
      { name: "expiration not a time", event: req(ok([["expiration", "soon"]])), answer: "expiration tag is not a unix time" },
      { name: "encrypted, garbage content", event: req([["p", gp], ["encrypted"]], { content: "garbage" }), answer: "cannot decrypt" },
      { name: "encrypted without a p tag", event: req([["encrypted"]], { content: "garbage" }), answer: "without a p tag" },
      {
        name: "encrypted, not a JSON tag list",
        event: req([["p", gp], ["encrypted"]], { content: encryptFor("nip44", "{not json", mallory, gp) }),
        answer: "not a JSON array of tags",
      },
      { name: "oversize (70 kB)", event: req(ok(), { content: "x".repeat(70_000) }), answer: "too large" },
      // Past the wasm verifier's heap, which used to call it forged and answer nothing.
      { name: "oversize (1 MB), validly signed", event: req(ok(), { content: "x".repeat(1_048_576) }), answer: "too large" },
      {
        name: "oversize (1 MB), bad signature",
        event: () => {
          const e = req(ok(), { content: "y".repeat(1_048_576) })();
          e.sig = (e.sig as string).replace(/^./, (c) => (c === "0" ? "1" : "0"));
          return e;
        },
        answer: null,
      },
      {
        name: "number inside a tag",
        event: req([
          ["i", 5, "text"],
          ["p", gp],
        ]),
        answer: "tags must be arrays of strings",
      },
      {
        name: "nested array tag",
        event: req([
          ["i", ["hi"], "text"],
          ["p", gp],
        ]),
        answer: "tags must be arrays of strings",
      },
      { name: "banned customer", event: req(ok(), { sk: banned }), answer: "blocked" },
      // Hostile settlement signals against the victim's live free job:
      {
        name: "result from a pubkey that is not a worker",
        event: () =>
          finalizeEvent(
            {
              kind: 6050,
              created_at: now(),
              tags: [
                ["e", victimReq.id],
                ["amount", "1"],
              ],
              content: "x",
            },
            mallory,
          ) as never,
        answer: null,
      },
      {
        name: "error feedback from a pubkey that is not a worker",
        event: () =>
          finalizeEvent(
            {
              kind: 7000,
              created_at: now(),
              tags: [
                ["status", "error", "x"],
                ["e", victimReq.id],
              ],
              content: "",
            },
            mallory,
          ) as never,
        answer: null,
      },
      {
        name: "deletion of the victim's request by someone else",
        event: () => finalizeEvent({ kind: 5, created_at: now(), tags: [["e", victimReq.id]], content: "" }, mallory) as never,
        answer: null,
      },
      {
        name: "worker's result forged with another key (worker pubkey, wrong sig)",
        event: () => {
          const e = finalizeEvent({ kind: 6050, created_at: now(), tags: [["e", victimReq.id]], content: "x" }, mallory) as unknown as Record<string, unknown>;
          e.pubkey = worker.pubkey;
          return e;
        },
        answer: null,
      },
      { name: "the victim's own request replayed", event: () => ({ ...victimReq }) as never, answer: null },
    ];
    expect(rows.length).toBeGreaterThanOrEqual(25);

    const before = gate.ledger.totals();
    const requestsBefore = (gate.ledger.db.prepare("SELECT COUNT(*) AS n FROM requests").get() as { n: number }).n;
    const pub = new AbstractRelay(relay.url, { verifyEvent: () => true, websocketImplementation: WebSocket as never });
    await pub.connect({ timeout: 5000 });
    const sent: { row: Row; ev: Record<string, unknown>; relay: string }[] = [];
    try {
      for (const row of rows) {
        const ev = row.event();
        let relayAnswer = "accepted";
        try {
          await pub.publish(ev as unknown as Event);
        } catch (err) {
          relayAnswer = `refused: ${(err as Error).message}`;
          // A relay that does not check would pass it on: the gate must hold by itself.
          gate.service.onEvent(ev as unknown as Event, relay.url);
        }
        sent.push({ row, ev, relay: relayAnswer });
      }
    } finally {
      pub.close();
    }

    const errorRows = sent.filter((s) => s.row.answer !== null);
    const ids = sent.map((s) => String(s.ev.id)).filter((id) => /^[0-9a-f]{64}$/.test(id));
    const replies = await waitForAsync(
      async () => {
        const evs = await fetchEvents(relay.url, { kinds: [7000], authors: [gate.pubkey], "#e": ids });
        const byId = new Map<string, Event[]>();
        for (const e of evs) {
          const id = e.tags.find((t) => t[0] === "e")?.[1] ?? "";
          byId.set(id, [...(byId.get(id) ?? []), e]);
        }
        return errorRows.every((s) => byId.has(String(s.ev.id))) ? byId : null;
      },
      15_000,
      "error feedback for every error row",
    );
    // The control: one more malformed request, sent after every row. The gate judges
    // events in arrival order and publishes replies in the order it decided them, so once
    // the control's error reply is on the relay, any reply a row should not get is too.
    const control = finalizeEvent(
      {
        kind: 5050,
        created_at: now(),
        tags: [
          ["p", gate.pubkey],
          ["bid", "the control"],
        ],
        content: "",
      },
      mallory,
    );
    await victim.publish(control);
    await waitForAsync(
      async () => ((await fetchEvents(relay.url, { kinds: [7000], authors: [gate.pubkey], "#e": [control.id] })).length > 0 ? true : null),
      15_000,
      "the control's error reply",
    );
    const final = new Map<string, Event[]>();
    for (const e of await fetchEvents(relay.url, { kinds: [7000], authors: [gate.pubkey], "#e": ids })) {
      const id = e.tags.find((t) => t[0] === "e")?.[1] ?? "";
      final.set(id, [...(final.get(id) ?? []), e]);
    }
    expect(replies.size).toBeGreaterThan(0);

    for (const s of sent) {
      const got = final.get(String(s.ev.id)) ?? [];
      if (s.row.name === "the victim's own request replayed") {
        expect(got.length, s.row.name).toBe(1); // the one processing reply from before, nothing new
        continue;
      }
      if (s.row.answer === null) {
        expect(got, `${s.row.name} (${s.relay})`).toEqual([]);
      } else {
        expect(got.length, s.row.name).toBe(1);
        // Read as the sender would (mallory signs the hostile rows): an encrypted
        // request's error reply is encrypted in its scheme, the rest are plain.
        const fb = readFeedback(got[0]!, { secretKey: mallory });
        if (typeof fb === "string") throw new Error(`${s.row.name}: unreadable reply: ${fb}`);
        expect(fb.status, s.row.name).toBe("error");
        expect(fb.text, s.row.name).toContain(s.row.answer);
        expect(fb.encrypted, s.row.name).toBe(s.row.name.startsWith("encrypted"));
      }
    }

    expect(gate.ledger.totals()).toEqual(before);
    expect(gate.ledger.getRequest(victimReq.id)?.state).toBe("processing");
    // Only the banned customer's request is recorded (as blocked, nothing reserved).
    expect((gate.ledger.db.prepare("SELECT COUNT(*) AS n FROM requests").get() as { n: number }).n).toBe(requestsBefore + 1);
    expect((gate.ledger.db.prepare("SELECT COUNT(*) AS n FROM reservations").get() as { n: number }).n).toBe(1);
    expect(gate.verify()).toEqual([]);
    // Malformed requests addressed to the gate cost trust (SPEC §5); bid and size do not.
    expect(gate.ledger.identity(getPublicKey(mallory), gate.nowMs()).score).toBeLessThan(0);
  });
});
