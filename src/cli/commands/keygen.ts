import { generateSecretKey, getPublicKey, nip19 } from "nostr-tools";
import type { Command } from "../main.js";
import { noExtraArgs, printJson } from "../format.js";

export const command: Command = {
  name: "keygen",
  summary: "generate a new Nostr key pair for the gate",
  usage: `Usage: dvm-gate keygen [--json]

Prints a fresh secret key (nsec and hex) and its public key (npub and hex).
Keep the secret out of the config file: put it in an environment variable and set
"nostr": { "secretKey": "env:DVM_GATE_NSEC" }.`,
  options: { json: { type: "boolean" } },
  run(ctx, { values, positionals }) {
    noExtraArgs(positionals, 0, "dvm-gate keygen [--json]");
    const sk = generateSecretKey();
    const pk = getPublicKey(sk);
    const keys = { nsec: nip19.nsecEncode(sk), secretKeyHex: Buffer.from(sk).toString("hex"), npub: nip19.npubEncode(pk), pubkeyHex: pk };
    if (values.json) printJson(ctx.out, keys);
    else ctx.out([`nsec   ${keys.nsec}`, `npub   ${keys.npub}`, `hex    ${keys.pubkeyHex}`].join("\n"));
    return 0;
  },
};
