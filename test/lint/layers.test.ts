// The import-direction rule of eslint.config.js can fail: forbidden imports written as
// they would be in each folder are reported (and make the CLI exit non-zero), allowed
// ones are not, the table has no cycle, and every folder of src/ has a row in it.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { ESLint } from "eslint";
import { describe, expect, it } from "vitest";

// Compiled tests run from dist/test/lint, sources from test/lint: find the repository by its config.
const here = dirname(fileURLToPath(import.meta.url));
const root = [resolve(here, "../.."), resolve(here, "../../..")].find((d) => statSync(join(d, "eslint.config.js"), { throwIfNoEntry: false }))!;
const table = async () => ((await import(pathToFileURL(join(root, "eslint.config.js")).href)) as { ALLOWED_IMPORTS: Record<string, string[]> }).ALLOWED_IMPORTS;

const forbidden: [string, string, string][] = [
  ["src/policy/x.ts", `import { Ledger } from "../ledger/ledger.js";`, "policy may import only util"],
  ["src/policy/x.ts", `import { z } from "zod";`, "policy is pure"],
  ["src/policy/x.ts", `import { TIERS } from "../config/schema.js";`, "policy may import only util"],
  ["src/events/x.ts", `import type { Totals } from "../ledger/ledger.js";`, "events may import only util, policy"],
  ["src/events/x.ts", `import { readFileSync } from "node:fs";`, "events is pure"],
  ["src/events/x.ts", `import { WebSocket } from "ws";`, "events is pure"],
  ["src/util/x.ts", `import pino from "pino";`, "util is pure"],
  ["src/ledger/x.ts", `import type { TrustSettings } from "../config/load.js";`, "ledger may import only"],
  ["src/relay/x.ts", `import { Invoicing } from "../service/invoicing.js";`, "relay may import only"],
  ["src/payments/x.ts", `import { GateService } from "../service/gate-service.js";`, "payments may import only"],
  ["src/peers/x.ts", `import { Ledger } from "../ledger/ledger.js";`, "peers may import only"],
  ["src/service/x.ts", `import { main } from "../cli/main.js";`, "service may import only"],
  ["src/cli/commands/x.ts", `export { x } from "../../../plugin/x.js";`, "cli may import only"],
  ["src/service/x.ts", `import { JobRequestPolicy } from "../../plugin/policies/job-request.js";`, "service may import only"],
  ["plugin/x.ts", `import { ledgerSettings } from "../src/cli/context.js";`, "plugin may import only"],
  ["plugin/policies/x.ts", `import { GateService } from "../../src/service/gate-service.js";`, "plugin may import only"],
];

const allowed: [string, string][] = [
  ["src/policy/x.ts", `import { isMsats } from "../util/money.js";`],
  ["src/events/x.ts", `import type { Tier } from "../policy/tiers.js";\nimport { finalizeEvent } from "nostr-tools/pure";`],
  ["src/ledger/x.ts", `import type { GrantSigner } from "../events/grant-event.js";\nimport Database from "better-sqlite3";`],
  ["src/cli/commands/x.ts", `import { GateService } from "../../service/gate-service.js";\nimport { UsageError } from "../context.js";`],
  ["plugin/policies/x.ts", `import { readJobTags } from "../../src/events/nip90-tags.js";\nimport { ACCEPT } from "../policy.js";`],
];

describe("the import-direction lint rule", () => {
  const eslint = new ESLint({ cwd: root });

  for (const [file, code, message] of forbidden) {
    it(`refuses in ${file}: ${code}`, async () => {
      const [result] = await eslint.lintText(`${code}\nexport const used = 1;\n`, { filePath: join(root, file) });
      const restricted = result!.messages.filter((m) => m.ruleId === "no-restricted-imports");
      expect(restricted, JSON.stringify(result!.messages)).toHaveLength(1);
      expect(restricted[0]!.message).toContain(message);
    });
  }

  for (const [file, code] of allowed) {
    it(`allows in ${file}: ${code.split("\n")[0]}`, async () => {
      const [result] = await eslint.lintText(`${code}\nexport const used = 1;\n`, { filePath: join(root, file) });
      expect(result!.messages).toEqual([]);
    });
  }

  it("makes the eslint command exit non-zero on a forbidden import", () => {
    const run = (code: string) =>
      spawnSync(process.execPath, [join(root, "node_modules/eslint/bin/eslint.js"), "--stdin", "--stdin-filename", "src/events/x.ts"], {
        cwd: root,
        input: code,
        encoding: "utf8",
      });
    const bad = run(`import { Ledger } from "../ledger/ledger.js";\nexport const x = Ledger;\n`);
    expect(bad.status, bad.stderr).toBe(1);
    expect(bad.stdout).toContain("no-restricted-imports");
    const good = run(`import { HEX64 } from "../util/hex.js";\nexport const x = HEX64;\n`);
    expect(good.status, good.stdout + good.stderr).toBe(0);
  });
});

describe("the table of allowed imports", () => {
  it("has no cycle: folders can be ordered so that each imports only earlier ones", async () => {
    const t = await table();
    const order: string[] = [];
    const left = new Map(Object.entries(t).map(([f, deps]) => [f, new Set(deps)]));
    while (left.size > 0) {
      const ready = [...left].filter(([, deps]) => [...deps].every((d) => order.includes(d))).map(([f]) => f);
      expect(ready, `a cycle among ${[...left.keys()].join(", ")}`).not.toEqual([]);
      for (const f of ready) {
        order.push(f);
        left.delete(f);
      }
    }
    expect(order[0]).toBe("util");
    expect(order.at(-1)).toBe("cli");
  });

  it("names only folders it has rows for, lets nothing but itself import cli, and keeps policy and events inward", async () => {
    const t = await table();
    for (const deps of Object.values(t)) for (const d of deps) expect(Object.keys(t)).toContain(d);
    expect(Object.entries(t).filter(([, deps]) => deps.includes("cli"))).toEqual([]);
    expect(t.policy).toEqual(["util"]);
    expect(t.events).toEqual(["util", "policy"]);
  });

  it("has a row for every folder of src/", async () => {
    const t = await table();
    const folders = readdirSync(join(root, "src")).filter((f) => statSync(join(root, "src", f)).isDirectory());
    for (const f of folders) expect(Object.keys(t), `src/${f} needs a row in ALLOWED_IMPORTS`).toContain(f);
  });
});
