// A relay whose NIP-42 AUTH the gate cannot pass (our AUTH event never answered, answered
// OK false, or a challenge that is missing or garbage) is a relay refusing us: one log
// line per connection, the socket dropped, a reconnect after a growing backoff, and no
// promise left for the process to die of. Against the hostile relay process.
import { afterEach, describe, expect, it } from "vitest";
import { Writable } from "node:stream";
import { pino } from "pino";
import { finalizeEvent, generateSecretKey, getPublicKey, type VerifiedEvent } from "nostr-tools/pure";
import { RelayIntake } from "../../src/relay/intake.js";
import { startHostileRelay, type HostileRelay } from "../helpers/hostile-relay-process.js";
import { waitFor } from "../e2e/harness.js";

describe("relays whose AUTH we cannot pass", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  const unhandled: unknown[] = [];
  const onUnhandled = (r: unknown) => unhandled.push(r);
  afterEach(async () => {
    process.off("unhandledRejection", onUnhandled);
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it("are logged once per connection, dropped and retried after a growing backoff", { timeout: 60_000 }, async () => {
    process.on("unhandledRejection", onUnhandled);
    const sk = generateSecretKey();
    const hostile: HostileRelay = await startHostileRelay(getPublicKey(sk));
    cleanups.push(() => hostile.kill());
    const lines: Record<string, unknown>[] = [];
    const log = pino(
      { level: "debug" },
      new Writable({
        write(chunk: Buffer, _e, cb) {
          for (const l of chunk.toString().split("\n")) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
          cb();
        },
      }),
    );
    const urls = ["auth-silent", "auth-reject", "auth-nochallenge"].map((m) => `${hostile.url}/${m}`);
    const intake = new RelayIntake({
      relays: urls,
      filters: (since) => [{ kinds: [5050], since }],
      loadCursorSec: () => null,
      saveCursorSec: () => {},
      onEvent: () => {},
      signAuth: async (t) => finalizeEvent(t, sk) as VerifiedEvent,
      log,
      nowMs: Date.now,
      backoffBaseMs: 200,
      backoffMaxMs: 10_000,
    });
    intake.start();
    cleanups.push(() => intake.stop());
    // Control event: each relay was connected to three times (so refused twice, and retried).
    await waitFor(() => urls.every((u) => intake.connectCount(u) >= 3) || null, 45_000, "three connections to each relay").catch((err: Error) => {
      throw new Error(`${err.message}: ${urls.map((u) => intake.connectCount(u)).join(",")} ${JSON.stringify(lines.slice(-12))}`);
    });
    const stats = await hostile.command("stats");
    expect(stats["/auth-silent"]!.auths).toBeGreaterThanOrEqual(2);
    expect(stats["/auth-reject"]!.auths).toBeGreaterThanOrEqual(2);
    for (const u of urls) {
      const mine = lines.filter((l) => l.relay === u && (l.level as number) >= 40);
      const reconnects = lines.filter((l) => l.relay === u && l.msg === "relay disconnected; reconnecting");
      // One line per refusal, saying why; warnings apart from it: none.
      expect(reconnects.length, u).toBeGreaterThanOrEqual(2);
      expect(mine, u).toEqual([]);
      for (const r of reconnects) expect(String(r.why), u).toMatch(/^auth failed: /);
      const delays = reconnects.map((r) => r.retryInMs as number);
      // Equal jitter: each step at least half of twice the last one's ceiling.
      expect(delays[1]!, u).toBeGreaterThanOrEqual(200);
    }
    expect(String(lines.find((l) => l.relay === urls[0] && l.msg === "relay disconnected; reconnecting")!.why)).toContain("auth timed out");
    expect(String(lines.find((l) => l.relay === urls[1] && l.msg === "relay disconnected; reconnecting")!.why)).toContain("restricted: we do not serve you");
    expect(String(lines.find((l) => l.relay === urls[2] && l.msg === "relay disconnected; reconnecting")!.why)).toContain("AUTH frame without a challenge");
    expect(unhandled).toEqual([]);
  });
});
