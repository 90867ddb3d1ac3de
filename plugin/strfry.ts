// strfry write-policy adapter: strfry's JSON-lines protocol (docs/plugins.md) over the
// gate policy. One answer line per request line, in order, on stdout and nothing else
// there; logs go to stderr. Every path that cannot decide answers `reject` (fail
// closed) and the process keeps serving: exiting would make strfry restart us on the
// next write, over and over, rejecting everything with a bare `error: internal error`.
import type { Event } from "nostr-tools";
import { pino, type Logger } from "pino";
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";
import { loadConfig, type RuntimeConfig } from "../src/config/load.js";
import { AbuseReporter } from "./abuse-reporter.js";
import { buildGatePolicy } from "./gate-policy.js";
import { LineSplitter, type LineItem } from "./line-splitter.js";
import { PolicyUnavailableError, reject, type Policy, type PolicyResult, type SourceType } from "./policy.js";
import { CachedTierLookup, SqliteTierLookup } from "./tier-lookup.js";
import { isHex64 } from "../src/util/hex.js";

/**
 * How long a pubkey's tier and ban are remembered (0 = read every time): config
 * `plugin.tierCacheMs`, overridden by `DVM_GATE_PLUGIN_CACHE_MS` when set.
 */
const MAX_CACHE_MS = 60_000;

export function cacheMsFromEnv(env: NodeJS.ProcessEnv, configuredMs: number): number {
  const text = env.DVM_GATE_PLUGIN_CACHE_MS;
  if (text === undefined || text.trim() === "") return configuredMs;
  const ms = /^\d{1,5}$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!(ms <= MAX_CACHE_MS)) throw new Error(`DVM_GATE_PLUGIN_CACHE_MS: expected whole milliseconds from 0 to ${MAX_CACHE_MS}, got ${JSON.stringify(text)}`);
  return ms;
}

/** Far above strfry's own `events.maxEventSize` (64 KiB by default) and the gate's 1 MiB cap. */
export const MAX_LINE_BYTES = 2 * 1_048_576;

const SOURCE_TYPES: ReadonlySet<string> = new Set<SourceType>(["IP4", "IP6", "Import", "Stream", "Sync", "Stored"]);

export interface StrfryAnswer {
  id: string;
  action: PolicyResult["action"];
  msg: string;
}

export class StrfryAdapter {
  // pino's level is fixed for the life of the process; asking once keeps the log
  // object off the reject path when debug is off.
  private readonly debug: boolean;

  constructor(
    private readonly policy: Policy,
    private readonly clock: () => number,
    private readonly log: Logger,
  ) {
    this.debug = log.isLevelEnabled("debug");
  }

  /** The answer line for one input item, or null when strfry expects none. */
  answer(item: LineItem): string | null {
    const a = item.kind === "oversize" ? oversizeAnswer(item.bytes, item.eventId) : this.answerText(item.text);
    if (a === null) return null;
    if (a.action === "accept") {
      // The common answer, built by hand: the id was checked to be 64 hex characters (or
      // is empty), so nothing in it needs escaping.
      if (a.id === "" || isHex64(a.id)) return `{"id":"${a.id}","action":"accept","msg":""}`;
      return JSON.stringify(a);
    }
    if (this.debug) this.log.debug({ id: a.id, action: a.action, msg: a.msg }, "not accepted");
    return JSON.stringify(a);
  }

  private answerText(text: string): StrfryAnswer | null {
    let req: unknown;
    try {
      req = JSON.parse(text);
    } catch {
      // strfry never sends blank lines; a stray one (a human at a terminal) is not a request.
      if (text.trim() === "") return null;
      return answerOf("", reject("invalid: input line is not JSON"));
    }
    try {
      return this.answerRequest(req, text.length);
    } catch (err) {
      this.log.error({ err }, "could not answer a request");
      return { id: idOf(req), action: "reject", msg: "error: internal error" };
    }
  }

  private answerRequest(req: unknown, lineChars: number): StrfryAnswer | null {
    if (req === null || typeof req !== "object" || Array.isArray(req)) return answerOf("", reject("invalid: input is not a JSON object"));
    const r = req as Record<string, unknown>;
    // Older strfry replays recent events as `lookback` on start-up and reads no answer.
    if (r.type === "lookback") return null;
    const ev = r.event;
    if (ev === null || typeof ev !== "object" || Array.isArray(ev)) {
      return answerOf("", reject(r.type !== "new" ? unknownType(r.type) : "invalid: request has no event"));
    }
    const e = ev as Record<string, unknown>;
    // The id is checked once here and reused as the answer's id and as the shape check.
    const id = typeof e.id === "string" && isHex64(e.id) ? e.id : "";
    if (r.type !== "new") return answerOf(id, reject(unknownType(r.type)));
    const shape = eventShapeProblem(e, id !== "");
    if (shape) return answerOf(id, reject(`invalid: ${shape}`));
    if (typeof r.sourceType !== "string" || !SOURCE_TYPES.has(r.sourceType))
      return answerOf(id, reject(`invalid: unknown sourceType ${JSON.stringify(String(r.sourceType)).slice(0, 40)}`));
    const result = this.policy.call({
      event: ev as Event,
      sourceType: r.sourceType as SourceType,
      sourceInfo: typeof r.sourceInfo === "string" ? r.sourceInfo : "",
      nowMs: this.clock(),
      // A UTF-16 code unit is at most 3 UTF-8 bytes, and the line holds the whole event.
      eventBytesAtMost: lineChars * 3,
    });
    return answerOf(id, result);
  }
}

function answerOf(id: string, r: PolicyResult): StrfryAnswer {
  return { id, action: r.action, msg: r.msg };
}

function unknownType(type: unknown): string {
  return `invalid: unknown request type ${JSON.stringify(String(type)).slice(0, 40)}`;
}

function idOf(req: unknown): string {
  const ev = (req as { event?: { id?: unknown } } | null)?.event;
  return ev && typeof ev === "object" && typeof ev.id === "string" && isHex64(ev.id) ? ev.id : "";
}

function oversizeAnswer(bytes: number, eventId: string): StrfryAnswer {
  return { id: eventId, ...reject(`invalid: event is ${bytes} bytes, over this relay's limit of ${MAX_LINE_BYTES}`) };
}

/** strfry checked ids and signatures already; this only guards the fields policies read. */
function eventShapeProblem(ev: Record<string, unknown>, idIsHex64: boolean): string | null {
  if (!idIsHex64) return "event id must be 64 lowercase hex characters";
  if (typeof ev.pubkey !== "string" || !isHex64(ev.pubkey)) return "event pubkey must be 64 lowercase hex characters";
  if (typeof ev.kind !== "number" || !Number.isInteger(ev.kind) || ev.kind < 0 || ev.kind > 65_535) return "event kind must be an integer 0–65535";
  if (typeof ev.created_at !== "number" || !Number.isInteger(ev.created_at)) return "event created_at must be a whole number";
  if (!Array.isArray(ev.tags)) return "event tags must be an array";
  if (typeof ev.content !== "string") return "event content must be a string";
  return null;
}

/** A policy for when the config could not be loaded: every event is refused, with the reason. */
class RefuseAll implements Policy {
  readonly name = "refuse-all";
  constructor(private readonly msg: string) {}
  call(): PolicyResult {
    return reject(this.msg);
  }
}

export function makePluginLogger(level: RuntimeConfig["log"]["level"]): Logger {
  return pino({ name: "dvm-gate-plugin", level }, pino.destination({ fd: 2, sync: true }));
}

interface Composed {
  policy: Policy;
  log: Logger;
  close: () => void;
}

/** Config → logger → read-only database → policy; a config problem yields a refuse-all policy. */
function compose(argv: string[], env: NodeJS.ProcessEnv): Composed {
  const { values } = parseArgs({ args: argv, options: { config: { type: "string" } }, strict: false });
  let cfg: RuntimeConfig;
  let cacheMs: number;
  try {
    cfg = loadConfig({ configPath: typeof values.config === "string" ? values.config : undefined, env });
    cacheMs = cacheMsFromEnv(env, cfg.plugin.tierCacheMs);
  } catch (err) {
    const log = makePluginLogger("info");
    log.error(`dvm-gate plugin cannot start: ${(err as Error).message}; rejecting every event until the config is fixed`);
    return { policy: new RefuseAll("error: dvm-gate plugin is misconfigured"), log, close: () => {} };
  }
  const log = makePluginLogger(cfg.log.level);
  const lookup = new SqliteTierLookup({
    path: cfg.database.path,
    trust: cfg.trust,
    busyTimeoutMs: cfg.database.busyTimeoutMs,
    onStateChange: (ok, detail) => (ok ? log.info(detail) : log.error(`${detail}; rejecting every event until it is readable`)),
  });
  const reporter = new AbuseReporter(cfg, log);
  // An unavailable database is reported once per change by the lookup, not per event.
  const policy = buildGatePolicy(
    cfg,
    new CachedTierLookup(lookup, cacheMs),
    (err, name) => {
      if (!(err instanceof PolicyUnavailableError)) log.error({ err, policy: name }, "policy failed; event rejected");
    },
    reporter.report,
  );
  reporter.start();
  log.info({ config: cfg.sourcePath, kinds: [...cfg.jobs.priceMsatsByKind.keys()] }, "dvm-gate strfry plugin starting");
  log.info(`tiers and bans are re-read from the database at most every ${cacheMs} ms per pubkey (plugin.tierCacheMs, DVM_GATE_PLUGIN_CACHE_MS)`);
  lookup.open(Date.now());
  return {
    policy,
    log,
    close: () => {
      reporter.stop();
      lookup.close();
    },
  };
}

/** The long-lived process strfry starts: stdin lines in, stdout answers out. */
export function runStrfryPlugin(argv: string[] = process.argv.slice(2), env: NodeJS.ProcessEnv = process.env): void {
  const { policy, log, close } = compose(argv, env);
  const adapter = new StrfryAdapter(policy, () => Date.now(), log);
  const splitter = new LineSplitter(MAX_LINE_BYTES, (item) => {
    const line = adapter.answer(item);
    // Pipes are written synchronously on Linux: each answer is out before the next read.
    if (line !== null) process.stdout.write(line + "\n");
  });
  const stop = () => {
    close();
    process.exit(0);
  };
  process.stdin.on("data", (chunk: Buffer) => splitter.push(chunk));
  process.stdin.on("end", () => {
    splitter.end();
    stop();
  });
  process.stdout.on("error", stop); // strfry went away (EPIPE)
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) runStrfryPlugin();
