// A scripted gate for the customer-side tests: a real key listening on a real relay for
// job requests addressed to it and answering with real signed NIP-90 feedback, in the
// SPEC §4 shapes (encrypted in the request's scheme when the request was encrypted).
// It makes no decisions: `script` says what to answer. The real service is tested elsewhere.
import { AbstractRelay } from "nostr-tools/abstract-relay";
import { finalizeEvent, getPublicKey, generateSecretKey, verifyEvent, type Event } from "nostr-tools/pure";
import { WebSocket } from "ws";
import { decryptFrom, encryptFor, type EncryptionScheme } from "../../src/events/encryption.js";

export type Reply = { status: "processing" | "payment-required" | "error"; info: string; amountMsats?: number; bolt11?: string; freeTier?: string[] };

export interface ScriptedGate {
  secretKey: Uint8Array;
  pubkey: string;
  requests: { event: Event; jobTags: string[][]; scheme: EncryptionScheme | null }[];
  close: () => void;
}

export async function startScriptedGate(url: string, script: (jobTags: string[][]) => Reply[]): Promise<ScriptedGate> {
  const secretKey = generateSecretKey();
  const pubkey = getPublicKey(secretKey);
  const relay = new AbstractRelay(url, { verifyEvent, websocketImplementation: WebSocket as never });
  await relay.connect({ timeout: 5000 });
  const gate: ScriptedGate = { secretKey, pubkey, requests: [], close: () => relay.close() };
  const sub = relay.subscribe([{ kinds: [5050], "#p": [pubkey] }], {
    onevent: (req) => {
      let jobTags = req.tags;
      let scheme: EncryptionScheme | null = null;
      if (req.tags.some((t) => t[0] === "encrypted")) {
        const plain = decryptFrom(req.content, secretKey, req.pubkey);
        if (!plain) return;
        jobTags = JSON.parse(plain.plaintext) as string[][];
        scheme = plain.scheme;
      }
      gate.requests.push({ event: req, jobTags, scheme });
      void (async () => {
        for (const r of script(jobTags)) {
          const hidden: string[][] = [["status", r.status, r.info]];
          if (r.amountMsats !== undefined) hidden.push(["amount", String(r.amountMsats), ...(r.bolt11 ? [r.bolt11] : [])]);
          if (r.freeTier) hidden.push(["free-tier", ...r.freeTier]);
          const clear = [
            ["e", req.id, url],
            ["p", req.pubkey],
          ];
          const tpl = scheme
            ? { tags: [...clear, ["encrypted"]], content: encryptFor(scheme, JSON.stringify(hidden), secretKey, req.pubkey) }
            : { tags: [...clear, ...hidden], content: "" };
          await relay.publish(finalizeEvent({ kind: 7000, created_at: Math.floor(Date.now() / 1000), ...tpl }, secretKey));
        }
      })();
    },
  });
  void sub;
  return gate;
}
