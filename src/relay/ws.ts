// The WebSocket every relay connection of ours uses (Node 20 has no global one).
import WebSocket from "ws";

/**
 * `ws` with an error listener that is never removed. nostr-tools drops its own handlers
 * before closing a socket that is still connecting (connect timeout, close()), and `ws`
 * then emits "closed before the connection was established" to nobody, which Node turns
 * into an uncaught exception: one hanging relay would crash the process.
 */
/**
 * Largest frame read from a relay (ws's default is 100 MiB): a bound on what one frame
 * can cost us, well above any event a relay stores (strfry's default maximum is 64 KiB,
 * job requests at most `jobs.maxRequestBytes`, 1 MiB). A larger frame closes the socket.
 */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;

export class SafeWebSocket extends WebSocket {
  constructor(url: string | URL, protocols?: string | string[]) {
    super(url, protocols, { maxPayload: MAX_FRAME_BYTES });
    this.on("error", () => {});
  }
}

/** For nostr-tools' `websocketImplementation` options. */
export const websocketImplementation = SafeWebSocket as unknown as typeof globalThis.WebSocket;
