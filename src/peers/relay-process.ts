// Runs the embedded relay as its own process (tests kill and restart it; benchmarks
// measure it apart from the gate). Prints `{"url": …}` on stdout once listening.
//   node dist/src/peers/relay-process.js [--port N] [--db FILE] [--auth HOSTNAME]
import { parseArgs } from "node:util";
import { startEmbeddedRelay } from "./embedded-relay.js";

const { values } = parseArgs({ options: { port: { type: "string" }, db: { type: "string" }, auth: { type: "string" } } });
const relay = await startEmbeddedRelay({
  port: values.port ? Number(values.port) : 0,
  ...(values.db ? { dbPath: values.db } : {}),
  ...(values.auth ? { authHostname: values.auth } : {}),
});
process.stdout.write(JSON.stringify({ url: relay.url, port: relay.port, pid: process.pid }) + "\n");
const stop = () => void relay.close().finally(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
