// `npm run bench`: measures this machine's own limits, then each module's figures as
// ratios against them, in one run. `--only ledger,plugin` runs a subset.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { BenchFigure, BenchModule } from "./types.js";
import { measureLimits } from "./limits.js";

const MODULES = ["ledger", "plugin", "e2e", "backends", "floods"] as const;

const { values } = parseArgs({ options: { only: { type: "string" }, json: { type: "boolean" } } });
const only = values.only ? new Set(values.only.split(",")) : null;
const workDir = mkdtempSync(join(tmpdir(), "dvm-gate-bench-"));
const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString("en-US") : n.toFixed(n >= 10 ? 1 : 3));

try {
  const limits = await measureLimits(workDir);
  const report: { module: string; figures: BenchFigure[] }[] = [];
  console.log("Machine limits (measured now):");
  console.log(`  raw SQLite BEGIN IMMEDIATE tx/s   FULL ${fmt(limits.sqliteTxPerSec.FULL)}   NORMAL ${fmt(limits.sqliteTxPerSec.NORMAL)}`);
  console.log(`  fsync/s                           ${fmt(limits.fsyncPerSec)}`);
  console.log(`  schnorr verify/s                  js ${fmt(limits.verifyPerSec.js)}   wasm ${fmt(limits.verifyPerSec.wasm)}`);
  console.log(`  schnorr sign/s                    js ${fmt(limits.signPerSec.js)}   wasm ${fmt(limits.signPerSec.wasm)}`);
  for (const name of MODULES) {
    if (only && !only.has(name)) continue;
    const mod = ((await import(`./${name}.js`)) as { bench: BenchModule }).bench;
    console.log(`\n${mod.title}`);
    const figures = await mod.run(limits);
    report.push({ module: name, figures });
    for (const f of figures) {
      const ratio = f.ratio !== undefined ? `  ratio ${f.ratio.toFixed(2)} of ${f.against}` : "";
      const target = f.target ? `  target ${f.target}: ${f.met ? "met" : "NOT met"}` : "";
      console.log(`  ${f.name.padEnd(44)} ${fmt(f.value).padStart(12)} ${f.unit}${ratio}${target}`);
    }
  }
  if (values.json) console.log(JSON.stringify({ limits, report }, null, 2));
} finally {
  rmSync(workDir, { recursive: true, force: true });
}
