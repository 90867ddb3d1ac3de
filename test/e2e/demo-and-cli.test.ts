// `dvm-gate start` with no config (the demo of SPEC §8) as a real child process in an
// empty directory, and the operator commands settle and fail against a real database.
import { spawn, spawnSync } from "node:child_process";
import { statSync } from "node:fs";
import { resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { nip19 } from "nostr-tools";
import { makeTmpDir } from "../helpers/tmp.js";
import { REPO_ROOT } from "../helpers/service-process.js";
import { Customer, fetchEvents, SAT, startGate, waitFor, waitForAsync } from "./harness.js";
import { startEmbeddedRelay } from "../../src/peers/embedded-relay.js";

const BIN = resolve(REPO_ROOT, "bin/dvm-gate.js");
const cleanEnv = () => {
  const env = { ...process.env };
  delete env.DVM_GATE_CONFIG;
  delete env.DVM_GATE_NSEC;
  return env;
};

function cli(args: string[], cwd: string): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, env: cleanEnv(), encoding: "utf8", timeout: 20_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Runs the demo until its guide is printed; returns the guide and a stopper. */
function runDemo(cwd: string): Promise<{ guide: string; stop: () => Promise<string> }> {
  const child = spawn(process.execPath, [BIN, "start"], { cwd, env: cleanEnv(), stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<string>((r) =>
    child.once("close", (c, sig) =>
      r(
        c === 0
          ? "exit 0"
          : `exit ${c} ${sig}: ${err
              .split("\n")
              .map((l) => /"msg":"([^"]*)"/.exec(l)?.[1] ?? l.slice(0, 100))
              .join(" | ")}`,
      ),
    ),
  );
  let err = "";
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  return new Promise((res, rej) => {
    let out = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      rej(new Error(`demo printed no guide; stderr: ${err.slice(-2000)}`));
    }, 20_000);
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("Stop with Ctrl-C")) {
        clearTimeout(timer);
        res({ guide: out, stop: async () => (child.kill("SIGTERM"), exited.then((e) => (e === "exit 0" ? e : `${e} || stdout: ${out.slice(0, 300)}`))) });
      }
    });
  });
}

describe("the no-config demo", () => {
  const tmp = makeTmpDir("dvm-gate-demo-");
  afterAll(() => tmp.remove());

  it("starts with a kept key, an embedded relay, the dev wallet and a demo worker, and prints a first command that works", { timeout: 60_000 }, async () => {
    const first = await runDemo(tmp.path);
    const relayUrl = /request --relay (ws:\/\/127\.0\.0\.1:\d+)/.exec(first.guide)?.[1];
    const npub = /--gate (npub1[0-9a-z]+)/.exec(first.guide)?.[1];
    expect(relayUrl).toBeDefined();
    expect(npub).toBeDefined();
    // Run from a scratch folder, the guide names this package's own executable (npx
    // would not find it there).
    expect(first.guide).toContain(`node ${BIN} dev-pay`);
    expect(first.guide).not.toContain("npx");
    expect(first.guide).toContain("identity set-tier");
    expect(statSync(resolve(tmp.path, "data/gate-key.hex")).mode & 0o777).toBe(0o600);
    const gatePubkey = nip19.decode(npub!).data as string;

    // The guide's first command, done by hand: a new customer's request is gated…
    const cust = await new Customer().connect([relayUrl!]);
    try {
      const req = cust.request(gatePubkey, { input: "hello" });
      await cust.publish(req);
      const fb = await cust.waitFeedback(req.id, "payment-required", 15_000);
      expect(fb.amountMsats).toBe(10 * SAT);
      // …paid with the dev wallet from another process…
      const paid = cli(["dev-pay", fb.bolt11!], tmp.path);
      expect(paid.code, paid.err).toBe(0);
      await cust.waitFeedback(req.id, "processing", 15_000);
      // …and answered by the demo worker, which settles the job.
      const results = await waitForAsync(
        async () => {
          const r = await fetchEvents(relayUrl!, { kinds: [6050], "#e": [req.id] });
          return r.length > 0 ? r : null;
        },
        15_000,
        "the demo worker's result",
      );
      expect(results[0]!.pubkey).toBe(gatePubkey);
      await waitFor(
        () => {
          const r = cli(["verify"], tmp.path);
          return r.code === 0 ? r : null;
        },
        5000,
        "verify",
      );
    } finally {
      cust.close();
    }
    expect("first " + (await first.stop())).toBe("first exit 0");

    // Started again: the same key, from the data directory.
    const second = await runDemo(tmp.path);
    expect(second.guide).toContain(npub!);
    // A SIGTERM within milliseconds of the guide has (rarely) ended the child by the
    // signal itself rather than through its handler; cause not found yet, see the report.
    await new Promise((r) => setTimeout(r, 1000));
    expect("second " + (await second.stop())).toBe("second exit 0");
  });
});

describe("settle and fail", () => {
  it("settles a free job by hand: grant signed and queued, then published by the running service", { timeout: 30_000 }, async () => {
    const relay = await startEmbeddedRelay();
    const gate = await startGate({ relays: [relay.url] });
    const configPath = gate.tmp.file("config.json");
    const { writeFileSync } = await import("node:fs");
    writeFileSync(
      configPath,
      JSON.stringify({
        nostr: { secretKey: Buffer.from(gate.secretKey).toString("hex"), relays: [relay.url] },
        database: { path: gate.cfg.database.path },
        jobs: { kinds: { "5050": { priceSats: 10 }, "5051": { priceSats: 70 } } },
        payments: { invoiceExpirySec: 120 },
      }),
    );
    const cust = await new Customer().connect([relay.url]);
    try {
      gate.ledger.setTier(cust.pubkey, "elite", gate.nowMs());
      const a = cust.request(gate.pubkey, { input: "a" });
      const b = cust.request(gate.pubkey, { input: "b" });
      await cust.publish(a);
      await cust.publish(b);
      await cust.waitFeedback(a.id, "processing");
      await cust.waitFeedback(b.id, "processing");

      const bad = [
        cli(["settle", "nothex"], gate.tmp.path),
        cli(["settle", "a".repeat(64), "--config", configPath], gate.tmp.path),
        cli(["settle", a.id, "--actual-sats", "-3", "--config", configPath], gate.tmp.path),
        cli(["fail", "b".repeat(64), "--config", configPath], gate.tmp.path),
      ];
      for (const r of bad) {
        expect(r.code).toBe(2);
        expect(r.err.trim().split("\n").length).toBe(1);
      }
      expect(bad[1]!.err).toContain("no request");

      const s = cli(["settle", a.id, "--actual-sats", "4", "--json", "--config", configPath], gate.tmp.path);
      expect(s.code, s.err).toBe(0);
      expect(JSON.parse(s.out)).toMatchObject({ status: "posted", absorbedMsats: 4 * SAT, returnedMsats: 6 * SAT, grant: { seq: 1 } });
      const again = cli(["settle", a.id, "--config", configPath], gate.tmp.path);
      expect(again.code).toBe(2);
      expect(again.err).toContain("is done");
      // The service (another process here) finds the queued grant and publishes it.
      const grants = await waitForAsync(
        async () => {
          const g = await fetchEvents(relay.url, { kinds: [1985], authors: [gate.pubkey] });
          return g.length > 0 ? g : null;
        },
        10_000,
        "grant published",
      );
      expect(grants[0]!.tags).toContainEqual(["seq", "1"]);

      const f = cli(["fail", b.id, "--reason", "operator test", "--json", "--config", configPath], gate.tmp.path);
      expect(f.code, f.err).toBe(0);
      expect(JSON.parse(f.out)).toMatchObject({ status: "voided", returnedMsats: 10 * SAT, customerNotified: true });
      // The customer hears of it: error feedback queued by the CLI, published by the service.
      const told = await cust.waitFeedback(b.id, "error", 10_000);
      expect(told.event.pubkey).toBe(gate.pubkey);
      expect(told.text).toBe("job failed: operator test");
      expect(cli(["fail", b.id, "--config", configPath], gate.tmp.path).code).toBe(2);
      expect(gate.ledger.totals()).toMatchObject({ pendingMsats: 0, absorbedMsats: 4 * SAT });
      expect(gate.verify()).toEqual([]);
    } finally {
      cust.close();
      await gate.stop();
      await relay.close();
      gate.tmp.remove();
    }
  });
});
