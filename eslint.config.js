// The layers of docs/ARCHITECTURE.md, held by the linter: each folder may import only
// the folders listed for it (inward), the pure ones import nothing with I/O, and nothing
// imports the CLI. No type-aware rules: `npm test` runs this and it must stay fast.
import tseslint from "typescript-eslint";

/**
 * What each folder may import, besides itself. Inner folders first; the table is
 * acyclic (test/lint/layers.test.ts checks it), so no folder cycle can come back.
 * `plugin` is the relay side; `src/<folder>` for the rest.
 */
export const ALLOWED_IMPORTS = {
  util: [],
  policy: ["util"],
  events: ["util", "policy"],
  ledger: ["util", "policy", "events"],
  config: ["util", "policy", "ledger"],
  relay: ["util", "policy", "events", "ledger"],
  payments: ["util", "policy", "events", "ledger", "config", "relay"],
  backends: ["util", "policy", "events", "ledger", "config", "relay", "payments"],
  peers: ["util", "policy", "events", "relay", "backends"],
  service: ["util", "policy", "events", "ledger", "config", "relay", "payments", "backends"],
  http: ["util", "policy", "events", "ledger", "config", "payments", "service"],
  cli: ["util", "policy", "events", "ledger", "config", "relay", "payments", "backends", "peers", "service", "http"],
  plugin: ["util", "policy", "events", "ledger", "config"],
};

/** Pure folders: no disk, network, process, database, logger or schema library. */
const PURE = ["util", "policy", "events"];
const IO_MODULES = [
  ...["fs", "fs/promises", "net", "http", "https", "http2", "tls", "dgram", "dns", "child_process", "worker_threads", "cluster"].flatMap((m) => [
    m,
    `node:${m}`,
  ]),
  "ws",
  "better-sqlite3",
  "pino",
  "prom-client",
  "zod",
  "nostr-tools",
  "nostr-tools/abstract-relay",
  "nostr-tools/abstract-pool",
  "nostr-tools/relay",
  "nostr-tools/pool",
  "@nostr-relay/core",
  "@nostr-relay/event-repository-sqlite",
];

const FOLDERS = Object.keys(ALLOWED_IMPORTS);
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

function folderRules(folder) {
  const forbidden = FOLDERS.filter((f) => f !== folder && !ALLOWED_IMPORTS[folder].includes(f));
  const alternation = forbidden.map(escape).join("|");
  // From src/<folder>/… another folder is `../<name>/` (or `../../<name>/` one level
  // deeper, and plugin/ is `../../plugin/`); from plugin/… it is `../src/<name>/`.
  const regex = folder === "plugin" ? `^(\\.\\./)+src/(${alternation})/` : `^(\\.\\./)+(${alternation})/`;
  const patterns = [
    {
      regex,
      message: `${folder} may import only ${ALLOWED_IMPORTS[folder].join(", ") || "nothing outside itself"} (docs/ARCHITECTURE.md, eslint.config.js ALLOWED_IMPORTS).`,
    },
  ];
  const paths = PURE.includes(folder)
    ? IO_MODULES.map((name) => ({ name, message: `${folder} is pure: no I/O, no config schema (docs/ARCHITECTURE.md). Take what you need as a parameter.` }))
    : [];
  return {
    files: [folder === "plugin" ? "plugin/**/*.ts" : `src/${folder}/**/*.ts`],
    rules: { "no-restricted-imports": ["error", { paths, patterns }] },
  };
}

export default [
  { ignores: ["dist/**", "node_modules/**", "data/**", "coverage/**", ".tmp/**", "test/lint/fixtures/**"] },
  {
    files: ["**/*.ts"],
    languageOptions: { parser: tseslint.parser, ecmaVersion: 2022, sourceType: "module" },
    plugins: { "@typescript-eslint": tseslint.plugin },
  },
  {
    files: ["**/*.ts", "**/*.js"],
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      "no-debugger": "error",
      "no-var": "error",
      "no-dupe-keys": "error",
      "no-unreachable": "error",
      "no-self-compare": "error",
      eqeqeq: ["error", "smart"],
    },
  },
  ...Object.keys(ALLOWED_IMPORTS).map(folderRules),
];
