// `dvm-gate <command> …`: finds the command, parses its flags with node:util,
// and turns every expected failure into one clear line and a non-zero exit.
import { parseArgs, type ParseArgsConfig } from "node:util";
import { ConfigError } from "../config/load.js";
import { LedgerInputError } from "../ledger/ledger.js";
import { LedgerBusyError } from "../ledger/db.js";
import { LedgerLockedError } from "../ledger/serve-lock.js";
import { AmountError } from "../util/money.js";
import { PaymentBackendError } from "../payments/types.js";
import { HttpListenError } from "../http/server.js";
import { makeContext, UsageError, type CliContext, type CliIO } from "./context.js";
import { command as announceCmd } from "./commands/announce.js";
import { command as auditCmd } from "./commands/audit.js";
import { command as balanceCmd } from "./commands/balance.js";
import { command as devPayCmd } from "./commands/dev-pay.js";
import { command as failCmd } from "./commands/fail.js";
import { command as grantsCmd } from "./commands/grants.js";
import { command as identityCmd } from "./commands/identity.js";
import { command as keygenCmd } from "./commands/keygen.js";
import { command as poolCmd } from "./commands/pool.js";
import { command as requestCmd } from "./commands/request.js";
import { command as settleCmd } from "./commands/settle.js";
import { command as startCmd } from "./commands/start.js";
import { command as verifyCmd } from "./commands/verify.js";

export interface Command {
  name: string;
  summary: string;
  /** Full usage text, printed by --help. */
  usage: string;
  options?: ParseArgsConfig["options"];
  run: (ctx: CliContext, args: { values: Record<string, unknown>; positionals: string[] }) => Promise<number | void> | number | void;
}

/** Every command of SPEC §8, one module each under ./commands/, imported statically so
 * the compiler checks each exists and bundlers and test runners can follow them. */
const COMMANDS: Record<string, Command> = {
  start: startCmd,
  request: requestCmd,
  pool: poolCmd,
  identity: identityCmd,
  balance: balanceCmd,
  grants: grantsCmd,
  verify: verifyCmd,
  audit: auditCmd,
  announce: announceCmd,
  keygen: keygenCmd,
  "dev-pay": devPayCmd,
  settle: settleCmd,
  fail: failCmd,
};
export const COMMAND_NAMES = Object.keys(COMMANDS);

async function loadCommand(name: string): Promise<Command | null> {
  return Object.hasOwn(COMMANDS, name) ? COMMANDS[name]! : null;
}

const COMMON_OPTIONS = {
  config: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

export async function globalHelp(): Promise<string> {
  const lines = ["dvm-gate: a free-tier and payment gate for Nostr Data Vending Machines (NIP-90)", "", "Usage: dvm-gate <command> [options]", "", "Commands:"];
  for (const name of COMMAND_NAMES) {
    const c = await loadCommand(name).catch(() => null);
    if (c) lines.push(`  ${name.padEnd(10)} ${c.summary}`);
  }
  lines.push(
    "",
    "Every command takes --config FILE, before or after its name (else $DVM_GATE_CONFIG, else ./dvm-gate.json, else demo defaults)",
    "and --help. Run `dvm-gate <command> --help` for its options.",
  );
  return lines.join("\n");
}

/** `dvm-gate --config F cmd …` is `dvm-gate cmd --config F …`: the option every command takes may come first. */
function commandFirst(argv: string[]): string[] {
  const [first, second, ...more] = argv;
  if (first === "--config" && second !== undefined && more.length > 0) return [more[0]!, first, second, ...more.slice(1)];
  if (first?.startsWith("--config=") && second !== undefined) return [second, first, ...more];
  return argv;
}

export async function runCli(argv: string[], io: CliIO, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [name, ...rest] = commandFirst(argv);
  if (!name) {
    io.err("dvm-gate: missing command (run dvm-gate --help)");
    return 2;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    io.out(await globalHelp());
    return 0;
  }
  if (name === "--version") {
    io.out("dvm-gate 0.1.0");
    return 0;
  }
  let ctx: CliContext | null = null;
  try {
    const command = await loadCommand(name);
    if (!command) throw new UsageError(`unknown command "${name}" (run dvm-gate --help)`);
    let parsed;
    try {
      const options = { ...COMMON_OPTIONS, ...(command.options ?? {}) };
      parsed = parseArgs({ args: negativesAsValues(rest, options), options, allowPositionals: true, strict: true });
    } catch (err) {
      throw new UsageError(`${name}: ${describeParseError(err as NodeJS.ErrnoException)}`);
    }
    if (parsed.values.help) {
      io.out(command.usage);
      return 0;
    }
    ctx = makeContext(parsed.values.config as string | undefined, io, env);
    const code = await command.run(ctx, { values: parsed.values as Record<string, unknown>, positionals: parsed.positionals });
    return typeof code === "number" ? code : 0;
  } catch (err) {
    io.err(`dvm-gate: ${describeError(err)}`);
    if (env.DVM_GATE_DEBUG && err instanceof Error && err.stack) io.err(err.stack);
    return isUserError(err) ? 2 : 1;
  } finally {
    ctx?.close();
  }
}

function isUserError(err: unknown): boolean {
  return (
    err instanceof UsageError ||
    err instanceof ConfigError ||
    err instanceof LedgerInputError ||
    err instanceof AmountError ||
    err instanceof HttpListenError ||
    err instanceof LedgerLockedError
  );
}

/**
 * node:util parseArgs takes "-5" for an option, so `--wait -1` and `pool credit -5` would
 * be refused by the parser with a message that knows nothing of the real range. Numbers
 * that start with "-" are handed over as values (`--wait=-1`) or positionals (after
 * `--`), and the command's own check refuses them saying the range.
 */
export function negativesAsValues(args: string[], options: NonNullable<ParseArgsConfig["options"]>): string[] {
  const flags: string[] = [];
  const positionals: string[] = [];
  const isNegative = (a: string) => /^-\d/.test(a);
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    const name = a.startsWith("--") && !a.includes("=") ? a.slice(2) : null;
    const next = args[i + 1];
    if (name !== null && options[name]?.type === "string" && next !== undefined && isNegative(next)) {
      flags.push(`${a}=${next}`);
      i++;
    } else if (isNegative(a)) positionals.push(a);
    else if (a.startsWith("-")) flags.push(a);
    else if (name === null && flags.length > 0 && isStringOption(flags.at(-1)!, options)) flags.push(a);
    else positionals.push(a);
  }
  return positionals.length > 0 ? [...flags, "--", ...positionals] : flags;
}

function isStringOption(flag: string, options: NonNullable<ParseArgsConfig["options"]>): boolean {
  if (!flag.startsWith("--") || flag.includes("=")) return false;
  return options[flag.slice(2)]?.type === "string";
}

/** node:util parseArgs speaks of "ambiguous" values and positional "-5"s: say it plainly. */
function describeParseError(err: NodeJS.ErrnoException): string {
  const first = (err.message ?? String(err)).split("\n")[0]!;
  const option = /'(-{1,2}[^' ]+)/.exec(first)?.[1];
  if (err.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    return `unknown option ${option ?? first} (see --help)`;
  }
  if (err.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && option) {
    // "ambiguous" is also what a trailing option gets once positionals are moved after
    // `--`, so it cannot tell "no value" from "a value starting with -": say both.
    if (/ambiguous/.test(first)) return `${option} needs a value (write ${option}=VALUE if it starts with "-")`;
    if (/argument missing/.test(first)) return `${option} needs a value`;
  }
  return first;
}

function describeError(err: unknown): string {
  if (isUserError(err) || err instanceof LedgerBusyError) return (err as Error).message;
  if (err instanceof PaymentBackendError) return `payment backend: ${err.message}`;
  if (err instanceof HttpListenError) return err.message;
  const e = err as { code?: string; message?: string };
  if (e?.code === "SQLITE_CANTOPEN") return `cannot open the database: ${e.message}`;
  return `internal error: ${e?.message ?? String(err)} (set DVM_GATE_DEBUG=1 for details)`;
}
