// Set-up shared by the backend tests: a gate whose kinds run through backends, on a real
// relay on 127.0.0.1, customers pinned to a tier, and the gate's results read back from
// the relay.
import { resolve } from "node:path";
import type { Event } from "nostr-tools/pure";
import type { Logger } from "pino";
import { Customer, fetchEvents, startGate, waitForAsync, type Gate } from "../e2e/harness.js";
import { REPO_ROOT, runUntilJsonLine, type ChildHandle } from "../helpers/service-process.js";
import type { Tier } from "../../src/policy/tiers.js";

export const EXEC_JOB = resolve(REPO_ROOT, "test/helpers/exec-job.js");
export const execCommand = (...args: string[]) => [process.execPath, EXEC_JOB, ...args];

export function backendGate(
  relayUrl: string,
  kinds: Record<string, { priceSats: number; backend?: Record<string, unknown> }>,
  o: { timeoutSec?: number; maxResultBytes?: number; tuning?: Parameters<typeof startGate>[0]["tuning"]; log?: Logger; secretKey?: Uint8Array } = {},
): Promise<Gate> {
  return startGate({
    relays: [relayUrl],
    over: {
      jobs: { kinds, timeoutSec: o.timeoutSec ?? 600, maxRequestAgeSec: 900, ...(o.maxResultBytes ? { maxResultBytes: o.maxResultBytes } : {}) },
      freeTier: { budgetsSats: { new: 0, established: 500, trusted: 1000, elite: 5000 }, poolInitialSats: 10_000, poolCreditPct: 10, maxPendingPerPubkey: 100 },
    },
    ...(o.tuning ? { tuning: o.tuning } : {}),
    ...(o.log ? { log: o.log } : {}),
    ...(o.secretKey ? { secretKey: o.secretKey } : {}),
  });
}

export async function customerOf(gate: Gate, relayUrl: string, tier: Tier = "elite"): Promise<Customer> {
  const c = await new Customer().connect([relayUrl]);
  gate.ledger.setTier(c.pubkey, tier, gate.nowMs());
  return c;
}

/** The gate's result for a request, once a relay has it. */
export function waitResult(relayUrl: string, gatePubkey: string, request: Event, timeoutMs = 10_000): Promise<Event> {
  return waitForAsync(
    async () => (await fetchEvents(relayUrl, { kinds: [request.kind + 1000], authors: [gatePubkey], "#e": [request.id] }))[0],
    timeoutMs,
    `result for ${request.id.slice(0, 8)}`,
  );
}

export function startBackendServer(): Promise<ChildHandle & { url: string }> {
  return runUntilJsonLine([resolve(REPO_ROOT, "dist/test/helpers/backend-server.js")], {}).then((h) => ({ ...h, url: String(h.info.url) }));
}

export interface UpstreamDvm extends ChildHandle {
  pubkey: string;
  /** Answers the jobs it holds (input "hold"). */
  release: () => void;
}

/** The plain test DVM (test/helpers/upstream-dvm.ts) in its own process; `secretKey` (hex) fixes its key. */
export function startUpstreamDvm(relayUrl: string, kind = 5050, secretKey?: string): Promise<UpstreamDvm> {
  const args = [
    resolve(REPO_ROOT, "dist/test/helpers/upstream-dvm.js"),
    "--relay",
    relayUrl,
    "--kind",
    String(kind),
    ...(secretKey ? ["--secret", secretKey] : []),
  ];
  return runUntilJsonLine(args, { stdin: true }).then((h) => ({
    ...h,
    pubkey: String(h.info.pubkey),
    release: () => void h.child.stdin!.write("release\n"),
  }));
}

export async function serverStats(url: string): Promise<{ maxActive: number; active: number; started: string[]; lastChat: any; chatCalls: number }> {
  return (await fetch(`${url}/stats`)).json() as never;
}
