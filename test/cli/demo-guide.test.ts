// The demo's printed guide must be runnable where the demo was started: `npx dvm-gate`
// only resolves inside the package's folder (elsewhere npx would ask the registry for a
// package of that name), so outside it the guide names this package's executable.
import { spawnSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { cliInvocation, demoGuide } from "../../src/cli/demo.js";
import { makeTmpDir } from "../helpers/tmp.js";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const tmp = makeTmpDir("dvm-gate-guide-");
afterAll(() => tmp.remove());

describe("the demo guide's command", () => {
  it("is npx dvm-gate inside the package folder, and the package's own executable elsewhere", () => {
    expect(cliInvocation("/srv/dvm-gate", "/srv/dvm-gate")).toBe("npx dvm-gate");
    expect(cliInvocation("/srv/dvm-gate/sub/dir", "/srv/dvm-gate")).toBe("npx dvm-gate");
    expect(cliInvocation("/srv/dvm-gate-other", "/srv/dvm-gate")).toBe("node /srv/dvm-gate/bin/dvm-gate.js");
    expect(cliInvocation("/tmp/x", "/srv/dvm gate")).toBe('node "/srv/dvm gate/bin/dvm-gate.js"');
  });

  it("printed for a scratch folder, runs there as printed", () => {
    const cli = cliInvocation(tmp.path);
    expect(cli).toBe(`node ${join(REPO_ROOT, "bin", "dvm-gate.js")}`);
    const guide = demoGuide({ relayUrl: "ws://127.0.0.1:7777", gatePubkey: "a".repeat(64), httpUrl: null, dataDir: join(tmp.path, "data"), cli });
    const keygen = guide
      .split("\n")
      .find((l) => l.trim().endsWith(" keygen"))!
      .trim();
    expect(guide).not.toContain("npx");
    const [exe, ...args] = keygen.split(" ");
    expect(exe).toBe("node");
    const r = spawnSync(process.execPath, args, { cwd: tmp.path, encoding: "utf8", timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^nsec\s+nsec1/m);
  });
});
