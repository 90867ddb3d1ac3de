// The contract between bench modules and the runner: each module measures its figures
// and states each as a ratio against a machine limit measured in the same run.

export interface MachineLimits {
  /** Raw better-sqlite3 BEGIN IMMEDIATE transactions/s doing the ledger's writes (pool debit + two inserts), no dvm-gate code. */
  sqliteTxPerSec: { FULL: number; NORMAL: number };
  /** fsyncs/s of the disk under the bench folder, measured now (the disk swings 10–25× over minutes). */
  fsyncPerSec: number;
  /** Schnorr signature checks and signs per second on one core. */
  verifyPerSec: { js: number; wasm: number };
  signPerSec: { js: number; wasm: number };
  /** Folder for bench databases (deleted at the end). */
  workDir: string;
}

export interface BenchFigure {
  /** What was measured, e.g. "decide+reserve (FULL)". */
  name: string;
  value: number;
  unit: string;
  /** value ÷ the limit it is compared with (higher is better), when there is one. */
  ratio?: number;
  /** Which limit `ratio` is against, e.g. "raw SQLite tx/s (FULL)". */
  against?: string;
  /** The target, e.g. "≥ 0.6"; `met` says whether this run met it. */
  target?: string;
  met?: boolean;
}

export interface BenchModule {
  title: string;
  run: (limits: MachineLimits) => Promise<BenchFigure[]>;
}
