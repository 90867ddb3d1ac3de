// Log lines a relay can cause are JSON and bounded per relay: the rate limiter counts
// what it drops and says so, and the relay library's console output goes through pino.
import { describe, expect, it } from "vitest";
import { Writable } from "node:stream";
import { pino } from "pino";
import { RateLimitedLog } from "../../src/relay/rate-limited-log.js";
import { routeConsoleToLogger } from "../../src/relay/library-console.js";

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(
        ...chunk
          .toString()
          .split("\n")
          .filter((l) => l.length > 0),
      );
      cb();
    },
  });
  return { log: pino({ level: "debug" }, stream), lines, parsed: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe("peer log lines", () => {
  it("writes at most perWindow lines per relay per window, then one line with the count it suppressed", () => {
    const c = capture();
    let now = 0;
    const limited = new RateLimitedLog(c.log, { perWindow: 3, windowMs: 60_000, nowMs: () => now });
    for (let i = 0; i < 25; i++) limited.write("warn", "ws://a", { relay: "ws://a", i }, "bad frame");
    limited.write("warn", "ws://b", { relay: "ws://b" }, "bad frame");
    expect(
      c
        .parsed()
        .filter((l) => l.relay === "ws://a")
        .map((l) => l.i),
    ).toEqual([0, 1, 2]);
    expect(c.parsed().filter((l) => l.relay === "ws://b")).toHaveLength(1);
    now = 60_000;
    limited.write("warn", "ws://a", { relay: "ws://a", i: 25 }, "bad frame");
    const a = c.parsed().filter((l) => l.relay === "ws://a");
    expect(a.slice(3)).toMatchObject([{ msg: "log lines suppressed (rate limit)", suppressed: 22 }, { i: 25 }]);
    limited.flush(true);
  });

  it("routes the relay library's console output through the logger as JSON, attributed and rate-limited per relay", () => {
    const c = capture();
    const restore = routeConsoleToLogger(c.log, { perWindow: 2, windowMs: 60_000 });
    try {
      for (let i = 0; i < 5; i++)
        console.warn(`[nostr] relay ws://127.0.0.1:1/bad error processing message:`, new SyntaxError(`Unexpected token ${i}`), { huge: "x".repeat(100_000) });
      console.error("something without a relay");
    } finally {
      restore();
    }
    const out = c.parsed();
    const bad = out.filter((l) => l.relay === "ws://127.0.0.1:1/bad");
    expect(bad.filter((l) => l.msg === "relay library message")).toHaveLength(2);
    expect(String(bad[0]!.text)).toContain("Unexpected token 0");
    expect(String(bad[0]!.text).length).toBeLessThanOrEqual(300);
    // restore() reports what its windows dropped.
    expect(bad.find((l) => l.msg === "log lines suppressed (rate limit)")).toMatchObject({ suppressed: 3 });
    expect(out.find((l) => l.relay === "process")).toMatchObject({ level: 50, text: "something without a relay" });
  });
});
