// nostr-tools writes to the console (console.warn with stack traces for malformed
// frames, console.debug for NOTICEs, "subscribe auth function failed"): plain text, one
// relay's flood of garbage becoming megabytes of non-JSON. Our logs are pino JSON, so
// while the gate runs, console output goes through the logger instead, attributed to the
// relay whose frame was being handled (or the url the message names) and rate-limited
// per relay.
import type { Logger } from "pino";
import { inspect } from "node:util";
import { relayHandlingFrame } from "./safe-relay.js";
import { RateLimitedLog, type RateLimitedLogOptions } from "./rate-limited-log.js";

const METHODS = ["log", "info", "debug", "trace", "warn", "error"] as const;
const LEVEL: Record<(typeof METHODS)[number], "debug" | "info" | "warn" | "error"> = {
  log: "info",
  info: "info",
  debug: "debug",
  trace: "debug",
  warn: "warn",
  error: "error",
};
/** Longest console message kept: a malformed 1 MB frame is quoted in full by the library. */
const MAX_TEXT_CHARS = 300;

const INSPECT = { depth: 1, maxStringLength: 120, maxArrayLength: 8, breakLength: Infinity } as const;

/** Routes console.* through `log` until the returned function is called. */
export function routeConsoleToLogger(log: Logger, o: RateLimitedLogOptions = {}): () => void {
  const limited = new RateLimitedLog(log.child({ part: "relay-library" }), o);
  const saved = METHODS.map((m) => [m, console[m]] as const);
  for (const m of METHODS) {
    console[m] = (...args: unknown[]) => {
      try {
        const relay = relayHandlingFrame() ?? urlIn(args[0]) ?? "process";
        // Only the head of the message: an Error's stack or a quoted event is not worth a log line.
        const text = () =>
          args
            .map((a) => (a instanceof Error ? a.message : typeof a === "string" ? a.slice(0, MAX_TEXT_CHARS) : inspect(a, INSPECT)))
            .join(" ")
            .slice(0, MAX_TEXT_CHARS);
        limited.write(LEVEL[m], relay, () => ({ relay, text: text() }), "relay library message");
      } catch {
        /* logging must never throw into the caller */
      }
    };
  }
  return () => {
    limited.flush(true);
    for (const [m, fn] of saved) console[m] = fn;
  };
}

function urlIn(first: unknown): string | null {
  if (typeof first !== "string") return null;
  const m = /wss?:\/\/[^\s'":]+(?::\d+)?[^\s'":]*/.exec(first);
  return m ? m[0] : null;
}
