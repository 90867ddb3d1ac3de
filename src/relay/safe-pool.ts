// nostr-tools' pool, with every connection a SafeRelay: the pool builds plain
// AbstractRelays in ensureRelay, whose unhandled promises a relay could turn into a
// process exit (see safe-relay.ts). Only ensureRelay changes.
import { AbstractSimplePool } from "nostr-tools/abstract-pool";
import type { AbstractRelay } from "nostr-tools/abstract-relay";
import { normalizeURL } from "nostr-tools/utils";
import { SafeRelay, type SafeRelayOptions } from "./safe-relay.js";
import type { Event } from "nostr-tools/pure";
import { websocketImplementation } from "./ws.js";

export class SafePool extends AbstractSimplePool {
  private readonly relayOpts: SafeRelayOptions;

  constructor(opts: { maxWaitForConnection?: number; verifyEvent?: (ev: Event) => boolean; enableReconnect?: boolean } = {}) {
    // Events are verified by whoever uses them, on fresh copies, unless the owner asks the socket to.
    super({ verifyEvent: () => true, websocketImplementation, maxWaitForConnection: opts.maxWaitForConnection ?? 3000 });
    this.relayOpts = { verifyEvent: opts.verifyEvent, enableReconnect: opts.enableReconnect };
  }

  override async ensureRelay(url: string, params?: { connectionTimeout?: number; abort?: AbortSignal }): Promise<AbstractRelay> {
    const key = normalizeURL(url);
    let relay = this.relays.get(key);
    if (!relay) {
      const created = new SafeRelay(key, this.relayOpts);
      created.onclose = () => {
        if (this.relays.get(key) === created) this.relays.delete(key);
      };
      this.relays.set(key, created);
      relay = created;
    }
    try {
      await relay.connect({ timeout: params?.connectionTimeout ?? this.maxWaitForConnection });
    } catch (err) {
      this.relays.delete(key);
      throw err;
    }
    return relay;
  }
}
