// What every command gets: the loaded config, a lazily opened ledger, a logger,
// and output helpers. The CLI is the only composition root (config → db → logger → relays).
import { existsSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { pino, type Logger } from "pino";
import { loadConfig, type RuntimeConfig } from "../config/load.js";
import { Ledger, type GrantSigner } from "../ledger/ledger.js";
import { ledgerSettings } from "../config/ledger-settings.js";

export class UsageError extends Error {
  override name = "UsageError";
}

export interface CliIO {
  out: (text: string) => void;
  err: (text: string) => void;
}

export interface CliContext extends CliIO {
  cfg: RuntimeConfig;
  log: Logger;
  nowMs: () => number;
  /** The environment the command runs in (for `env:VAR` references on the command line). */
  env: NodeJS.ProcessEnv;
  /**
   * Opens the ledger once. Only `create: true` (start, and commands that write) makes
   * a missing database file and its folder; everything else refuses with exit 2.
   */
  ledger: (opts?: { grantSigner?: GrantSigner; sweep?: boolean; backgroundCheckpointMs?: number; create?: boolean }) => Ledger;
  close: () => void;
}

// Lives in config/ so the plugin can open the ledger without importing the CLI.
export { ledgerSettings };

/** pino JSON to stderr, so stdout stays for command output; secrets are redacted. */
export function makeLogger(cfg: RuntimeConfig, name = "dvm-gate"): Logger {
  return pino(
    {
      name,
      level: cfg.log.level,
      redact: { paths: ["secretKey", "*.secretKey", "nwcUri", "*.nwcUri", "invoiceKey", "*.invoiceKey", "secret", "*.secret"], censor: "[secret]" },
    },
    // Synchronous: each line is written when logged, so nothing is left to flush at exit.
    // pino's exit-time flush of an asynchronous destination retries a broken pipe forever
    // (sonic-boom's flushSync), which wedged `start 2>&1 | head` on SIGTERM; in sync mode a
    // broken pipe's EPIPE just turns the destination off.
    pino.destination({ dest: 2, sync: true }),
  );
}

export function makeContext(configPath: string | undefined, io: CliIO, env: NodeJS.ProcessEnv = process.env): CliContext {
  const cfg = loadConfig({ configPath, env });
  const log = makeLogger(cfg);
  let ledger: Ledger | null = null;
  let openedWithSigner = false;
  const nowMs = () => Date.now();
  return {
    ...io,
    env,
    cfg,
    log,
    nowMs,
    ledger: (opts) => {
      if (ledger && opts?.grantSigner && !openedWithSigner) throw new Error("invariant: the ledger was opened without the grant signer a later caller needs");
      if (!ledger) {
        checkDatabasePath(cfg.database.path, opts?.create === true);
        openedWithSigner = opts?.grantSigner !== undefined;
        ledger = Ledger.open(cfg.database.path, ledgerSettings(cfg), {
          nowMs: nowMs(),
          synchronous: cfg.database.synchronous,
          busyTimeoutMs: cfg.database.busyTimeoutMs,
          ...(opts?.grantSigner ? { grantSigner: opts.grantSigner } : {}),
          ...(opts?.sweep === false ? { sweep: false } : {}),
          ...(opts?.backgroundCheckpointMs !== undefined ? { backgroundCheckpointMs: opts.backgroundCheckpointMs } : {}),
        });
      }
      return ledger;
    },
    close: () => {
      ledger?.close();
      ledger = null;
    },
  };
}

/** A database path that cannot be a ledger, or (for read commands) one that does not exist yet. */
export function checkDatabasePath(path: string, create: boolean): void {
  if (path === ":memory:") return;
  let isDir = false;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    if (!create) {
      const where = existsSync(dirname(path)) ? "" : ` (nor its folder ${dirname(path)})`;
      throw new UsageError(`no database at ${path}${where}: run \`dvm-gate start\` once to create it, or point database.path at an existing ledger`);
    }
  }
  if (isDir) throw new UsageError(`database.path ${path} is a directory, not a database file`);
}
