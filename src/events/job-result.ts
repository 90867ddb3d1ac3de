// What the gate's own backends need from a stored request, and the result they answer
// with (SPEC §11): kind K + 1000, signed by the gate, with `e`, `p`, `request`, the
// request's `i` tags and `amount` when the backend stated a cost. Encryption is applied
// afterwards by encryptTemplateFor (content encrypted, `i` tags dropped). Pure.
import type { Event, EventTemplate } from "nostr-tools/pure";
import { decryptFrom } from "./encryption.js";
import type { ReplyTarget } from "./feedback.js";

export interface JobTags {
  /** Full `i` tags (with the tag name), as the result repeats them. */
  iTags: string[][];
  params: Record<string, string>;
  output: string | null;
}

const FROM_ENCRYPTED: ReadonlySet<string> = new Set(["i", "param", "output"]);

/**
 * The job's tags from the request as it was decided (already validated then): the
 * clear tags, or for an encrypted request the decrypted ones. Null when an encrypted
 * request no longer opens with this key (it did at decision time, so: a changed key).
 */
export function jobTagsOf(request: Event, gateSecretKey: Uint8Array): JobTags | null {
  let tags = request.tags;
  if (request.tags.some((t) => t[0] === "encrypted")) {
    const opened = decryptFrom(request.content, gateSecretKey, request.pubkey);
    if (!opened) return null;
    try {
      const inner = JSON.parse(opened.plaintext) as unknown;
      if (!Array.isArray(inner)) return null;
      tags = (inner as unknown[]).filter((t): t is string[] => Array.isArray(t) && t.every((v) => typeof v === "string") && FROM_ENCRYPTED.has(t[0] ?? ""));
    } catch {
      return null;
    }
  }
  const params: Record<string, string> = {};
  let output: string | null = null;
  const iTags: string[][] = [];
  for (const t of tags) {
    if (t[0] === "i" && t[1] !== undefined) iTags.push([...t]);
    else if (t[0] === "param" && t[1] && t[2] !== undefined && !(t[1] in params)) params[t[1]] = t[2];
    else if (t[0] === "output" && t[1] && output === null) output = t[1];
  }
  return { iTags, params, output };
}

/** The text a text job is about: its text inputs (untyped ones count as text), one per line. */
export function textOfInputs(iTags: string[][]): string {
  return iTags
    .filter((t) => t[2] === "text" || t[2] === undefined)
    .map((t) => t[1] ?? "")
    .join("\n");
}

export function jobResultTemplate(
  o: { request: Event; relayHint: string; iTags: string[][]; content: string; costMsats: number | null },
  nowSec: number,
): EventTemplate {
  const e = o.relayHint ? ["e", o.request.id, o.relayHint] : ["e", o.request.id];
  const tags = [e, ["p", o.request.pubkey], ["request", JSON.stringify(o.request)], ...o.iTags.map((t) => [...t])];
  if (o.costMsats !== null) tags.push(["amount", String(o.costMsats)]);
  return { kind: o.request.kind + 1000, created_at: nowSec, tags, content: o.content };
}

/** An upstream DVM's `partial` feedback, re-signed by the gate for the customer. */
export function partialFeedback(t: ReplyTarget, text: string, nowSec: number): EventTemplate {
  const e = t.relayHint ? ["e", t.requestId, t.relayHint] : ["e", t.requestId];
  return {
    kind: 7000,
    created_at: nowSec,
    tags: [e, ["p", t.customer], ["expiration", String(t.expiresAtSec)], ["status", "partial", text.slice(0, 500)]],
    content: "",
  };
}
