// A real Nostr relay from a relay library (@nostr-relay/core with its SQLite event
// repository) behind a `ws` server on loopback: the demo's relay and the tests' relay.
// Only the socket glue is ours; storage, filters, subscriptions, signature checks and
// NIP-42 are the library's.
import { NostrRelay } from "@nostr-relay/core";
import { EventRepositorySqlite } from "@nostr-relay/event-repository-sqlite";
import type { NostrRelayPlugin } from "@nostr-relay/common";
import { EventDeletion } from "nostr-tools/kinds";
import { WebSocketServer, type WebSocket } from "ws";
import type { AddressInfo } from "node:net";

export interface EmbeddedRelayOptions {
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** SQLite file for stored events, ":memory:" by default. */
  dbPath?: string;
  /** Enables NIP-42 AUTH with this hostname. */
  authHostname?: string;
  plugins?: NostrRelayPlugin[];
  /** Largest accepted message, bytes. */
  maxMessageBytes?: number;
}

export interface EmbeddedRelay {
  url: string;
  port: number;
  relay: NostrRelay;
  close: () => Promise<void>;
}

const silentLogger = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {}, setLogLevel: () => {} };

export async function startEmbeddedRelay(opts: EmbeddedRelayOptions = {}): Promise<EmbeddedRelay> {
  const repo = new EventRepositorySqlite(opts.dbPath ?? ":memory:");
  await repo.init();
  const relay = new NostrRelay(repo, {
    ...(opts.authHostname ? { hostname: opts.authHostname } : {}),
    logger: silentLogger as never,
    // Our own tests and the demo send bursts; the library's default is 1 s of caching.
    filterResultCacheTtl: 0,
  } as never);
  for (const p of opts.plugins ?? []) relay.register(p);
  // @nostr-relay/core 0.0.40 applies a kind 5 deletion but neither stores nor broadcasts
  // it, so subscribers (the gate listening for cancellations) would never see one. Real
  // relays such as strfry pass them on; so does ours, once the library accepted it.
  relay.register({
    async handleMessage(_ctx: unknown, message: unknown[], next: () => Promise<unknown>) {
      const result = (await next()) as { success?: boolean } | undefined;
      const ev = message[0] === "EVENT" ? (message[1] as { kind?: number }) : null;
      if (ev?.kind === EventDeletion && result?.success === true) await relay.broadcast(ev as never);
      return result;
    },
  } as never);

  const wss = new WebSocketServer({ host: opts.host ?? "127.0.0.1", port: opts.port ?? 0, maxPayload: opts.maxMessageBytes ?? 1_048_576 });
  await new Promise<void>((resolve, reject) => {
    wss.once("listening", resolve);
    wss.once("error", reject);
  });
  wss.on("connection", (ws: WebSocket, req) => {
    relay.handleConnection(ws as never, req.socket.remoteAddress ?? undefined);
    ws.on("message", (data) => {
      let msg: unknown;
      try {
        msg = JSON.parse(data.toString());
      } catch {
        ws.send(JSON.stringify(["NOTICE", "invalid: message is not JSON"]));
        return;
      }
      if (!Array.isArray(msg) || typeof msg[0] !== "string") {
        ws.send(JSON.stringify(["NOTICE", "invalid: message is not a JSON array"]));
        return;
      }
      if (msg[0] === "EVENT" && (typeof msg[1] !== "object" || msg[1] === null || typeof (msg[1] as { id?: unknown }).id !== "string")) {
        ws.send(JSON.stringify(["NOTICE", "invalid: EVENT needs an event object"]));
        return;
      }
      relay.handleMessage(ws as never, msg as never).catch(() => {
        ws.send(JSON.stringify(["NOTICE", "error: could not handle message"]));
      });
    });
    ws.on("close", () => relay.handleDisconnect(ws as never));
    ws.on("error", () => ws.terminate());
  });
  const port = (wss.address() as AddressInfo).port;
  return {
    url: `ws://${opts.host ?? "127.0.0.1"}:${port}`,
    port,
    relay,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await relay.destroy();
      await repo.destroy();
    },
  };
}
