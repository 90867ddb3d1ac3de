export * from "./ledger.js";
export * from "./verify.js";
export { openDb, withBusyRetry, LedgerBusyError, type Db } from "./db.js";
