// The docs agree with the code: every key of the config schema (walked from the zod
// schema itself, so a key added tomorrow is checked too) is documented in
// docs/CONFIG.md and present in config.example.json, and every command that
// `dvm-gate --help` lists has its row in the README's command table.
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { configSchema } from "../../src/config/schema.js";
import { COMMAND_NAMES, globalHelp } from "../../src/cli/main.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const read = (p: string) => readFileSync(resolve(ROOT, p), "utf8");

interface Key {
  path: string;
  /** Optional with no default: a feature switched on by giving it (payments.nwc, …). */
  optional: boolean;
}

/** Peels default/prefault/optional/nullable wrappers; says whether an optional one had no default. */
function unwrap(t: z.ZodType): { inner: z.ZodType; optional: boolean } {
  let cur = t as z.ZodType & { _zod: { def: { type: string; innerType?: z.ZodType } } };
  let optional = false;
  let defaulted = false;
  for (;;) {
    const def = cur._zod.def;
    if (def.type === "default" || def.type === "prefault") defaulted = true;
    else if (def.type === "optional") optional = true;
    else if (def.type !== "nullable" && def.type !== "readonly") break;
    cur = def.innerType as typeof cur;
  }
  return { inner: cur, optional: optional && !defaulted };
}

/** Every leaf key of the schema as a dotted path. Records and arrays are leaves. */
function schemaKeys(schema: z.ZodType, prefix = ""): Key[] {
  const { inner } = unwrap(schema);
  if (!(inner instanceof z.ZodObject)) return [];
  const out: Key[] = [];
  for (const [name, child] of Object.entries(inner.shape as Record<string, z.ZodType>)) {
    const path = prefix ? `${prefix}.${name}` : name;
    const u = unwrap(child);
    const below = u.inner instanceof z.ZodObject ? schemaKeys(child, path) : [];
    if (below.length > 0) out.push(...below.map((k) => ({ ...k, optional: k.optional || u.optional })));
    else out.push({ path, optional: u.optional });
  }
  return out;
}

function hasPath(obj: unknown, path: string): boolean {
  let cur: unknown = obj;
  for (const part of path.split(".")) {
    if (cur === null || typeof cur !== "object" || !Object.hasOwn(cur, part)) return false;
    cur = (cur as Record<string, unknown>)[part];
  }
  return true;
}

const TIER_NAMES = ["new", "established", "trusted", "elite"];

/**
 * The key paths a doc names in backticks, with its shorthands expanded:
 * `a.b.{x,y}` → a.b.x, a.b.y; `a.b.{tier}` → one per tier; `a.b.x` / `.y` → a.b.y.
 */
function namedKeys(doc: string): Set<string> {
  const out = new Set<string>();
  const re = /`([A-Za-z][\w.]*(?:\.\{[^}`]+\})?)`(?:\s*\/\s*`\.(\w+)`)?/g;
  for (const m of doc.matchAll(re)) {
    const token = m[1]!;
    const group = /^(.*)\.\{([^}]+)\}$/.exec(token);
    const names = group ? (group[2] === "tier" ? TIER_NAMES : group[2]!.split(",").map((x) => x.trim())) : [];
    const base = group ? group[1]! : token;
    if (group) for (const n of names) out.add(`${base}.${n}`);
    else out.add(token);
    if (m[2]) out.add(`${base.slice(0, base.lastIndexOf("."))}.${m[2]}`);
  }
  return out;
}

/** The key, or (with `parents`) one of the objects it sits in, is named. */
function documented(named: Set<string>, path: string, parents = false): boolean {
  if (named.has(path)) return true;
  if (!parents) return false;
  const parts = path.split(".");
  for (let n = parts.length - 1; n >= 2; n--) if (named.has(parts.slice(0, n).join("."))) return true;
  return false;
}

describe("docs agree with the code", () => {
  const keys = schemaKeys(configSchema);

  it("walks the whole schema", () => {
    expect(keys.length).toBeGreaterThan(30);
    expect(keys.map((k) => k.path)).toContain("http.publicBaseUrl");
  });

  it("documents every config key in docs/CONFIG.md", () => {
    const named = namedKeys(read("docs/CONFIG.md"));
    expect(keys.filter((k) => !documented(named, k.path)).map((k) => k.path)).toEqual([]);
  });

  it("has every config key in config.example.json, or names it in CONFIG.md's list of keys left out", () => {
    const example = JSON.parse(read("config.example.json"));
    const doc = read("docs/CONFIG.md");
    const leftOut = /`config\.example\.json` is a starting point[\s\S]*?\n\n/.exec(doc)?.[0] ?? "";
    const named = namedKeys(leftOut);
    const missing = keys.filter((k) => !hasPath(example, k.path) && !(k.optional && documented(named, k.path, true)));
    expect(missing.map((k) => k.path)).toEqual([]);
    // And the example is a valid config.
    expect(configSchema.safeParse(example).success).toBe(true);
  });

  it("lists every command of --help in the README's command table", async () => {
    const help = await globalHelp();
    const readme = read("README.md");
    const listed = [...help.matchAll(/^ {2}(\S+) {2,}/gm)].map((m) => m[1]!);
    expect(listed.sort()).toEqual([...COMMAND_NAMES].sort());
    expect(listed.filter((name) => !readme.includes("| `dvm-gate " + name))).toEqual([]);
  });
});
