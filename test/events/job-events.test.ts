import { describe, expect, it } from "vitest";
import type { EventTemplate } from "nostr-tools/pure";
import { MAX_DELETED_IDS, readSettlementSignal } from "../../src/events/job-events.js";
import { encryptTemplateFor, errorFeedback, processingFeedback, type ReplyTarget } from "../../src/events/feedback.js";
import { flipHex, keys, NOW_SEC, sign } from "./fixtures.js";

const gate = keys();
const worker = keys();
const customer = keys();
const stranger = keys();
const workers: ReadonlySet<string> = new Set([gate.pk, worker.pk]);
const REQUEST_ID = "cd".repeat(32);
const OTHER_ID = "ef".repeat(32);

function result(tags: string[][], kind = 6050): EventTemplate {
  return { kind, created_at: NOW_SEC, tags, content: "Paris" };
}
function target(encryption: ReplyTarget["encryption"] = "none"): ReplyTarget {
  return { requestId: REQUEST_ID, customer: customer.pk, relayHint: "", encryption, expiresAtSec: NOW_SEC + 60 };
}

// [name, event, the reason the signal is ignored]
const ignored: Array<[string, () => unknown, RegExp]> = [
  [
    "a forged result from a non-worker pubkey",
    () =>
      sign(
        result([
          ["e", REQUEST_ID],
          ["p", customer.pk],
        ]),
        stranger,
      ),
    /not a worker/,
  ],
  [
    "a result claiming a worker's pubkey with the wrong signature",
    () => ({ ...sign(result([["e", REQUEST_ID]]), stranger), pubkey: worker.pk }),
    /bad id or signature/,
  ],
  [
    "a worker's result with a flipped sig",
    () => {
      const e = sign(result([["e", REQUEST_ID]]), worker);
      return { ...e, sig: flipHex(e.sig) };
    },
    /bad id or signature/,
  ],
  [
    "a worker's result with a malformed e tag",
    () =>
      sign(
        result([
          ["e", "not-an-id"],
          ["p", customer.pk],
        ]),
        worker,
      ),
    /valid e tag/,
  ],
  ["a worker's result with an uppercase e tag", () => sign(result([["e", REQUEST_ID.toUpperCase()]]), worker), /valid e tag/],
  ["a worker's result without an e tag", () => sign(result([["p", customer.pk]]), worker), /valid e tag/],
  ["error feedback from a non-worker", () => sign(errorFeedback({ ...target(), customer: customer.pk }, "boom", NOW_SEC), stranger), /not a worker/],
  ["a worker's processing feedback", () => sign(processingFeedback(target(), { text: "working" }, NOW_SEC), worker), /status processing does not settle/],
  [
    "a worker's feedback without a status",
    () =>
      sign(
        {
          kind: 7000,
          created_at: NOW_SEC,
          tags: [
            ["e", REQUEST_ID],
            ["p", customer.pk],
          ],
          content: "",
        },
        worker,
      ),
    /known status/,
  ],
  [
    "a worker's encrypted feedback the gate cannot open",
    () => sign(encryptTemplateFor(errorFeedback(target(), "boom", NOW_SEC), target("nip44"), worker.sk), worker),
    /cannot decrypt|no key/,
  ],
  ["a deletion naming no event", () => sign({ kind: 5, created_at: NOW_SEC, tags: [["a", `5050:${customer.pk}:x`]], content: "" }, customer), /names no event/],
  ["a deletion with only malformed e tags", () => sign({ kind: 5, created_at: NOW_SEC, tags: [["e", "123"], ["e"]], content: "" }, customer), /names no event/],
  [
    "a forged deletion",
    () => ({ ...sign({ kind: 5, created_at: NOW_SEC, tags: [["e", REQUEST_ID]], content: "" }, stranger), pubkey: customer.pk }),
    /bad id or signature/,
  ],
  ["a kind 1 note", () => sign({ kind: 1, created_at: NOW_SEC, tags: [["e", REQUEST_ID]], content: "" }, worker), /kind 1 is not a settlement signal/],
  ["garbage", () => ({ kind: 6050 }), /bad id or signature/],
];

describe("readSettlementSignal", () => {
  it.each(ignored)("ignores %s", (_name, build, reason) => {
    const s = readSettlementSignal(build(), workers, { gateSecretKey: gate.sk });
    expect(s).toHaveProperty("ignore");
    expect((s as { ignore: string }).ignore).toMatch(reason);
  });

  it("reads a worker's result: request id, request kind, stated cost", () => {
    const ev = sign(
      result(
        [
          ["e", REQUEST_ID, "wss://r.example"],
          ["p", customer.pk],
          ["amount", "4000"],
        ],
        6100,
      ),
      worker,
    );
    expect(readSettlementSignal(ev, workers)).toEqual({
      type: "result",
      requestId: REQUEST_ID,
      requestKind: 5100,
      worker: worker.pk,
      actualMsats: 4_000,
      event: ev,
    });
  });

  it("treats an unreadable amount as not stated", () => {
    for (const amount of [["amount", "4k"], ["amount", "-1"], ["amount"], ["amount", "1.5"]]) {
      const s = readSettlementSignal(sign(result([["e", REQUEST_ID], amount]), worker), workers);
      expect(s).toMatchObject({ type: "result", actualMsats: null });
    }
  });

  it("reads a worker's error feedback as a void signal with its reason", () => {
    const ev = sign(errorFeedback(target(), "model crashed", NOW_SEC), worker);
    expect(readSettlementSignal(ev, workers)).toEqual({ type: "worker-error", requestId: REQUEST_ID, worker: worker.pk, reason: "model crashed", event: ev });
  });

  it("reads the gate's own encrypted error feedback with the gate key", () => {
    for (const scheme of ["nip04", "nip44"] as const) {
      const ev = sign(encryptTemplateFor(errorFeedback(target(), "worker timeout", NOW_SEC), target(scheme), gate.sk), gate);
      expect(readSettlementSignal(ev, workers, { gateSecretKey: gate.sk })).toMatchObject({
        type: "worker-error",
        requestId: REQUEST_ID,
        reason: "worker timeout",
      });
      expect(readSettlementSignal(ev, workers)).toEqual({ ignore: "encrypted feedback and no key to open it" });
    }
  });

  it("reads a deletion by anyone, deduplicated, leaving the author check to the caller", () => {
    const ev = sign(
      {
        kind: 5,
        created_at: NOW_SEC,
        tags: [
          ["e", REQUEST_ID],
          ["e", OTHER_ID],
          ["e", REQUEST_ID],
          ["e", "bad"],
          ["k", "5050"],
        ],
        content: "cancel",
      },
      stranger,
    );
    expect(readSettlementSignal(ev, workers)).toEqual({ type: "deletion", requestIds: [REQUEST_ID, OTHER_ID], author: stranger.pk, event: ev });
  });

  it(`reads at most ${MAX_DELETED_IDS} ids from one deletion`, () => {
    const tags = Array.from({ length: MAX_DELETED_IDS + 20 }, (_, i) => ["e", i.toString(16).padStart(64, "0")]);
    const s = readSettlementSignal(sign({ kind: 5, created_at: NOW_SEC, tags, content: "" }, customer), workers);
    expect(s).toMatchObject({ type: "deletion", author: customer.pk });
    expect((s as { requestIds: string[] }).requestIds).toHaveLength(MAX_DELETED_IDS);
  });
});
