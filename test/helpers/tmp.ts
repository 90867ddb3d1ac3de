// Temporary directories for tests: one per test file or case, removed afterwards,
// so real SQLite files never outlive the run.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TmpDir {
  path: string;
  file: (name: string) => string;
  remove: () => void;
}

export function makeTmpDir(prefix = "dvm-gate-test-"): TmpDir {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return {
    path,
    file: (name) => join(path, name),
    remove: () => rmSync(path, { recursive: true, force: true }),
  };
}
