// Prepared statements cached per connection, for the store modules: their statements
// run for every request, and preparing each time costs measurable CPU under load.
import type { Statement } from "better-sqlite3";
import type { Db } from "./db.js";

const statements = new WeakMap<Db, Map<string, Statement>>();

export function stmt(db: Db, sql: string): Statement {
  let byDb = statements.get(db);
  if (!byDb) statements.set(db, (byDb = new Map()));
  let st = byDb.get(sql);
  if (!st) byDb.set(sql, (st = db.prepare(sql)));
  return st;
}
