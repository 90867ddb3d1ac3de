// A TCP forwarder in front of a relay, for tests of one peer's socket going away while
// the relay itself stays up (and other peers stay connected to it directly): `cut()`
// destroys every connection through it and stops listening, so reconnects are refused;
// `restore()` listens again on the same port.
import { connect, createServer, type Server, type Socket } from "node:net";

export interface CutProxy {
  url: string;
  port: number;
  /** Connections accepted so far. */
  accepted: () => number;
  cut: () => Promise<void>;
  restore: () => Promise<void>;
  close: () => Promise<void>;
}

export async function startCutProxy(targetPort: number): Promise<CutProxy> {
  const open = new Set<Socket>();
  let accepted = 0;
  const make = (): Server =>
    createServer((client) => {
      accepted++;
      const upstream = connect(targetPort, "127.0.0.1");
      for (const s of [client, upstream]) {
        open.add(s);
        s.on("error", () => {});
        s.on("close", () => {
          open.delete(s);
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
  const listen = (srv: Server, port: number) =>
    new Promise<number>((res, rej) => {
      srv.once("error", rej);
      srv.listen(port, "127.0.0.1", () => res((srv.address() as { port: number }).port));
    });
  let server: Server | null = make();
  const port = await listen(server, 0);
  const stop = async () => {
    const s = server;
    server = null;
    for (const sock of open) sock.destroy();
    if (s) await new Promise<void>((res) => s.close(() => res()));
  };
  return {
    url: `ws://127.0.0.1:${port}`,
    port,
    accepted: () => accepted,
    cut: stop,
    restore: async () => {
      if (server) return;
      server = make();
      await listen(server, port);
    },
    close: stop,
  };
}
