// An HTTP backend for the tests, in its own process: SPEC §11's `http` shape on a few
// routes (each one way to behave), an OpenAI-compatible /v1/chat/completions with the
// real request and response shapes, and a recording route that counts how many jobs
// it holds at once. Prints {"url"} once listening on 127.0.0.1.
//   node dist/test/helpers/backend-server.js
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";

interface Job {
  id: string;
  kind: number;
  tier: string | null;
  inputs: string[][];
  params: Record<string, string>;
}

let active = 0;
let maxActive = 0;
const started: string[] = [];
let lastChat: unknown = null;
let chatCalls = 0;

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let b = "";
    req.setEncoding("utf8");
    req.on("data", (d: string) => (b += d));
    req.on("end", () => resolve(b));
  });
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

const reverse = (s: string) => [...s].reverse().join("");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? "/", "http://127.0.0.1");
  if (req.method === "GET" && url.pathname === "/stats") return json(res, 200, { maxActive, active, started, lastChat, chatCalls });
  const body = await readBody(req);
  switch (url.pathname) {
    case "/ok": {
      const job = JSON.parse(body) as Job;
      const text = job.inputs.map((i) => i[0]).join("\n");
      const cost = job.params.cost;
      return json(res, 200, { content: `http:${reverse(text)}`, ...(cost ? { costMsats: Number(cost) } : {}) });
    }
    case "/status":
      res.writeHead(503, { "content-type": "text/plain" });
      return res.end("overloaded, try later");
    case "/slow":
      return; // never answers; the gate must give up at the deadline
    case "/oversize":
      return json(res, 200, { content: "y".repeat(200_000) });
    case "/garbage":
      res.writeHead(200, { "content-type": "text/html" });
      return res.end("<html>this is not the JSON you want</html>");
    case "/record": {
      const job = JSON.parse(body) as Job;
      active++;
      maxActive = Math.max(maxActive, active);
      started.push(job.id);
      await sleep(Number(url.searchParams.get("holdMs") ?? "200"));
      active--;
      return json(res, 200, { content: `recorded ${job.id.slice(0, 8)}` });
    }
    case "/v1/chat/completions":
      return chat(body, res);
    default:
      return json(res, 404, { error: "no such route" });
  }
});

async function chat(body: string, res: ServerResponse): Promise<void> {
  chatCalls++;
  const r = JSON.parse(body) as { model: string; messages: { role: string; content: string }[]; max_tokens?: number; temperature?: number };
  lastChat = r;
  const prompt = r.messages.map((m) => m.content).join("\n");
  if (r.model !== "test-model") return json(res, 404, { error: { message: `model ${r.model} not found`, type: "invalid_request_error" } });
  if (prompt.includes("please fail")) return json(res, 500, { error: { message: "the model crashed", type: "server_error" } });
  if (prompt.includes("please stall")) return; // a slow answer: never comes
  // Deterministic token counts, as a real server reports them.
  const promptTokens = prompt.split(/\s+/).filter(Boolean).length + 7;
  const completionTokens = Math.min(r.max_tokens ?? 16, 9);
  json(res, 200, {
    id: "chatcmpl-test",
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model: r.model,
    choices: [{ index: 0, message: { role: "assistant", content: `llm:${reverse(prompt)}` }, finish_reason: "stop" }],
    usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
  });
}

server.listen(0, "127.0.0.1", () => {
  const a = server.address() as { port: number };
  process.stdout.write(JSON.stringify({ url: `http://127.0.0.1:${a.port}`, pid: process.pid }) + "\n");
});
process.on("SIGTERM", () => process.exit(0));
