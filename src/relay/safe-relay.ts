// The relay connection every part of the gate uses: nostr-tools' AbstractRelay with the
// places where a relay's frames turn into promises nobody handles closed off. Relays are
// peers, not trusted parts (SPEC §4): nothing one sends may stop the process.
//
// nostr-tools 2.x (abstract-relay.js) has three such places:
// - `onauth`: on `["AUTH", …]` it calls auth() and rethrows any failure inside a
//   `.catch` nobody holds — an AUTH event never answered (timeout), answered `OK false`,
//   or a frame with no challenge each became an unhandled rejection, and the process exited;
// - `send()` chains `connectionPromise.then(ws.send)` without a catch, and is called
//   unawaited by Subscription.fire() and auth(): a socket that closes at the wrong moment
//   rejected a promise nobody holds;
// - `_onmessage` runs inside the socket's message event: a handler that throws there
//   becomes an uncaught exception.
// So `onauth` is never set: AUTH frames are read here, and the challenge is answered
// through auth() with both outcomes handled and reported to the owner.
import { AbstractRelay, SendingOnClosedConnection } from "nostr-tools/abstract-relay";
import type { Event, EventTemplate, VerifiedEvent } from "nostr-tools/pure";
import { getHex64 } from "nostr-tools/fakejson";
import { websocketImplementation } from "./ws.js";

/** Longest AUTH challenge we answer: NIP-42 challenges are short random strings. */
const MAX_CHALLENGE_CHARS = 512;

/** The url of the relay whose frame is being handled right now (attributes the library's console output). */
let handlingFrameOf: string | null = null;
export function relayHandlingFrame(): string | null {
  return handlingFrameOf;
}

/** The text of the frame being handled right now (the library parsed it; its handlers run inside). */
let frameText: string | null = null;

/**
 * The text of the EVENT frame that brought `ev`, while its handlers run, or null. A queue
 * that holds a request for a while keeps this one flat string instead of the parsed event
 * (about ten objects): a flood's requests then cost the garbage collector much less.
 */
export function frameOfEvent(ev: { id?: unknown }): string | null {
  const f = frameText;
  return f !== null && typeof ev.id === "string" && getHex64(f, "id") === ev.id ? f : null;
}

export interface SafeRelayOptions {
  /** Checks events at the socket; by default none are (our handlers verify what they use). */
  verifyEvent?: (ev: Event) => boolean;
  /** nostr-tools' own reconnect (the NWC client relies on it). */
  enableReconnect?: boolean;
  /** Signs NIP-42 AUTH events. Without it, challenges are remembered but not answered. */
  signAuth?: (t: EventTemplate) => Promise<VerifiedEvent>;
  /** The relay accepted our AUTH event. */
  onAuthOk?: () => void;
  /**
   * The relay's AUTH cannot be passed: our AUTH event got `OK false` or no OK in time,
   * or its AUTH frame was malformed (no challenge, not a string). Called once per
   * connection; the owner treats the relay as refusing us.
   */
  onAuthFailed?: (reason: string) => void;
  /** A frame the library could not handle (thrown inside its handler). */
  onBadFrame?: (reason: string) => void;
  enablePing?: boolean;
}

interface LibraryInternals {
  connectionPromise?: Promise<void>;
  ws?: { send(m: string): void };
  challenge?: string;
  authPromise?: Promise<string>;
}

export class SafeRelay extends AbstractRelay {
  private authFailedReported = false;
  private closingByUs = false;
  /** Why this connection's AUTH could not be passed, once it is known. */
  authFailure: string | null = null;

  constructor(
    url: string,
    private readonly opts: SafeRelayOptions = {},
  ) {
    super(url, {
      // Our handlers verify what they use (and answer invalid requests), so the socket layer does not.
      verifyEvent: opts.verifyEvent ?? (() => true),
      websocketImplementation,
      enablePing: opts.enablePing,
      enableReconnect: opts.enableReconnect ?? false,
    });
    this.onnotice = () => {};
  }

  private get internals(): LibraryInternals {
    return this as unknown as LibraryInternals;
  }

  override async connect(opts?: { timeout?: number }): Promise<void> {
    this.authFailedReported = false;
    this.closingByUs = false;
    this.authFailure = null;
    return super.connect(opts);
  }

  /** True while (and after) we close this connection: subscription close callbacks then say nothing about the relay. */
  get closing(): boolean {
    return this.closingByUs;
  }

  override close(): void {
    this.closingByUs = true;
    super.close();
  }

  /** The library's send, with every promise it makes held. Rejects (handled) when the socket is gone. */
  override send(message: string): Promise<void> {
    const conn = this.internals.connectionPromise;
    if (!conn) {
      const p = Promise.reject(new SendingOnClosedConnection(message.slice(0, 80), this.url));
      // Marked handled: callers that await it still see the rejection; fire() and auth() do not await.
      p.catch(() => {});
      return p;
    }
    conn
      .then(() => this.internals.ws?.send(message))
      .catch(() => {
        /* the socket closed under us: the close handlers report it */
      });
    return Promise.resolve();
  }

  override _onmessage(ev: MessageEvent): void {
    const data: unknown = (ev as { data?: unknown }).data;
    if (typeof data !== "string") {
      this.opts.onBadFrame?.("binary frame");
      return;
    }
    if (isAuthFrame(data)) {
      this.onAuthFrame(data);
      return;
    }
    handlingFrameOf = this.url;
    frameText = data;
    try {
      super._onmessage(ev);
    } catch (err) {
      this.opts.onBadFrame?.(String((err as Error)?.message ?? err).slice(0, 200));
    } finally {
      handlingFrameOf = null;
      frameText = null;
    }
  }

  private onAuthFrame(data: string): void {
    let challenge: unknown;
    try {
      const parsed = JSON.parse(data) as unknown[];
      challenge = parsed[1];
    } catch {
      challenge = undefined;
    }
    if (typeof challenge !== "string" || challenge.length === 0 || challenge.length > MAX_CHALLENGE_CHARS) {
      this.authFailed(typeof challenge === "undefined" ? "AUTH frame without a challenge" : "malformed AUTH frame");
      return;
    }
    this.internals.challenge = challenge;
    // A second challenge on one connection is answered by the first auth (the library caches it).
    if (this.internals.authPromise || !this.opts.signAuth) return;
    const signAuth = this.opts.signAuth;
    this.auth(async (t) => {
      try {
        return await signAuth(t);
      } catch (err) {
        // The library would log and wait forever: fail the auth instead.
        this.authFailed(`could not sign AUTH: ${String((err as Error)?.message ?? err)}`);
        throw err;
      }
    }).then(
      () => this.opts.onAuthOk?.(),
      (err: unknown) => this.authFailed(`AUTH not accepted: ${String((err as Error)?.message ?? err).slice(0, 200)}`),
    );
  }

  private authFailed(reason: string): void {
    if (this.authFailedReported) return;
    this.authFailedReported = true;
    this.authFailure = reason;
    this.opts.onAuthFailed?.(reason);
  }

  /** auth() for callers (a CLOSED or OK "auth-required:"): never rejects unhandled, gives up with a reason. */
  async authenticate(): Promise<void> {
    const signAuth = this.opts.signAuth;
    if (!signAuth) throw new Error("no AUTH signer");
    await this.auth((t) => signAuth(t));
  }

  /** close() that never throws (already closed, never opened). */
  safeClose(): void {
    if (this.closingByUs && !this.connected) return;
    try {
      this.close();
    } catch {
      /* already closed */
    }
  }
}

function isAuthFrame(data: string): boolean {
  // Cheap: only frames that start like ["AUTH" are parsed here; every other frame goes to the library.
  let i = 0;
  while (i < data.length && i < 16 && (data[i] === " " || data[i] === "\n" || data[i] === "\r" || data[i] === "\t")) i++;
  if (data[i] !== "[") return false;
  i++;
  while (i < data.length && i < 32 && (data[i] === " " || data[i] === "\n" || data[i] === "\r" || data[i] === "\t")) i++;
  return data.startsWith('"AUTH"', i);
}
