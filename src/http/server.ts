// The HTTP side of the gate (SPEC §9), on node:http: health, Prometheus metrics, the
// NIP-98-authenticated dry-run estimate and the operator page. Every route only reads
// the ledger. Bound to loopback by default; errors are logged, never sent as traces.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import type { RuntimeConfig } from "../config/load.js";
import type { Ledger } from "../ledger/ledger.js";
import { estimate, parseKindParam } from "./estimate.js";
import type { GateMetrics } from "./metrics.js";
import { checkNip98 } from "./nip98.js";
import { loadPageData, PAGE_CSP, renderPage } from "./page.js";
import { balanceRoutes, type DepositMaker } from "./balance.js";

export interface HttpServerOptions {
  cfg: RuntimeConfig;
  ledger: Ledger;
  log: Logger;
  metrics: GateMetrics;
  gatePubkey: string;
  /** Makes `POST /deposit` invoices (SPEC §12); without it the endpoint answers 503. */
  deposits?: DepositMaker | null;
  nowMs?: () => number;
  /**
   * Scheme and host the callers use (e.g. `https://gate.example.com` behind a TLS
   * proxy). NIP-98 `u` tags are checked against it + the request path; without it,
   * against `http://` + the request's Host header + the request path.
   */
  publicBaseUrl?: string | null;
  /** A job-dependent price (SPEC §11 openai token pricing) from `input` and `max_tokens` query parameters. */
  priceOf?: (kind: number, iTags: string[][], params: string[][]) => number | null;
}

export interface HttpServer {
  url: string;
  close(): Promise<void>;
}

/** Bounds on what one client can hold open. */
const LIMITS = { maxConnections: 64, headersTimeoutMs: 10_000, requestTimeoutMs: 15_000, keepAliveTimeoutMs: 5_000 };

interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  rawUrl: string;
  query: URLSearchParams;
  nowMs: number;
}

type Route = (ctx: Ctx) => Promise<void> | void;

/** The port is taken or not ours to bind: an operator's problem, said in one line. */
export class HttpListenError extends Error {
  override name = "HttpListenError";
  readonly code: string | undefined;
  constructor(host: string, port: number, cause: NodeJS.ErrnoException) {
    super(`http: cannot listen on ${host}:${port}: ${cause.code ?? cause.message} (set http.port, or http.enabled false)`);
    this.code = cause.code;
  }
}

export function startHttpServer(opts: HttpServerOptions): Promise<HttpServer> {
  const { cfg, ledger, log, metrics } = opts;
  const clock = opts.nowMs ?? Date.now;
  const publicBase = opts.publicBaseUrl ? opts.publicBaseUrl.replace(/\/+$/, "") : null;

  const routes = new Map<string, Route>([
    ["/healthz", healthz],
    ["/metrics", metricsRoute],
    ["/estimate", estimateRoute],
    ["/", page],
  ]);
  const balance = balanceRoutes({ ledger, deposits: opts.deposits ?? null, log, urlFor, sendJson });
  for (const [path, route] of balance.routes) routes.set(path, route);

  /** The URL a NIP-98 `u` tag must name for this request, or null without a Host. */
  function urlFor(req: IncomingMessage, rawUrl: string): string | null {
    const base = publicBase ?? (req.headers.host ? `http://${req.headers.host}` : null);
    return base ? base + rawUrl : null;
  }

  function healthz({ res }: Ctx): void {
    let pool;
    try {
      pool = ledger.totals();
    } catch (err) {
      log.warn({ err }, "healthz: database did not answer");
      return sendJson(res, 503, { ok: false, error: "database unavailable" });
    }
    sendJson(res, 200, { ok: true, pool });
  }

  async function metricsRoute({ res }: Ctx): Promise<void> {
    try {
      metrics.setPool(ledger.totals());
    } catch (err) {
      // Stale pool gauges would look healthy: let the scrape fail so `up` shows it.
      log.warn({ err }, "metrics: database did not answer");
      return sendText(res, 503, "text/plain; charset=utf-8", "database unavailable\n");
    }
    sendText(res, 200, metrics.registry.contentType, await metrics.registry.metrics());
  }

  async function estimateRoute({ req, res, rawUrl, query, nowMs }: Ctx): Promise<void> {
    const base = publicBase ?? (req.headers.host ? `http://${req.headers.host}` : null);
    if (!base) return sendJson(res, 400, { error: "missing Host header: needed to check the NIP-98 u tag" });
    const url = base + rawUrl;
    const auth = await checkNip98(req.headers.authorization, { url, method: "GET", nowMs });
    if (!auth.ok) {
      res.setHeader("WWW-Authenticate", "Nostr");
      return sendJson(res, 401, { error: `unauthorized: ${auth.reason}` });
    }
    const kind = parseKindParam(query.getAll("kind"), cfg);
    if (!kind.ok) return sendJson(res, 400, { error: kind.message });
    const input = query.get("input");
    const maxTokens = query.get("max_tokens");
    const priceMsats =
      opts.priceOf?.(
        kind.kind,
        input !== null ? [["i", input.slice(0, cfg.jobs.maxRequestBytes), "text"]] : [],
        maxTokens !== null ? [["param", "max_tokens", maxTokens]] : [],
      ) ?? kind.priceMsats;
    sendJson(res, 200, estimate(ledger, cfg, { pubkey: auth.pubkey, kind: kind.kind, priceMsats }, nowMs));
  }

  async function page({ res, nowMs }: Ctx): Promise<void> {
    const html = renderPage(await loadPageData(ledger, cfg, metrics, opts.gatePubkey, nowMs));
    res.setHeader("Content-Security-Policy", PAGE_CSP);
    res.setHeader("Referrer-Policy", "no-referrer");
    sendText(res, 200, "text/html; charset=utf-8", html);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    req.resume(); // no route reads a body; drain it so keep-alive connections stay usable
    const rawUrl = req.url ?? "/";
    const q = rawUrl.indexOf("?");
    const path = q === -1 ? rawUrl : rawUrl.slice(0, q);
    res.on("finish", () => metrics.httpRequest(path, res.statusCode));
    const route = routes.get(path);
    if (!route) return sendJson(res, 404, { error: `no such endpoint; try ${[...routes.keys()].join(", ")}` });
    const method = balance.postPaths.has(path) ? "POST" : "GET";
    if (req.method !== method) {
      res.setHeader("Allow", method);
      return sendJson(res, 405, { error: `method ${String(req.method).slice(0, 16)} not allowed; use ${method}` });
    }
    try {
      await route({ req, res, rawUrl, query: new URLSearchParams(q === -1 ? "" : rawUrl.slice(q + 1)), nowMs: clock() });
    } catch (err) {
      log.error({ err, path }, "http: request failed");
      if (res.headersSent) res.destroy();
      else sendJson(res, 500, { error: "internal error" });
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log.error({ err }, "http: request failed");
      res.destroy();
    });
  });
  server.maxConnections = LIMITS.maxConnections;
  server.headersTimeout = LIMITS.headersTimeoutMs;
  server.requestTimeout = LIMITS.requestTimeoutMs;
  server.keepAliveTimeout = LIMITS.keepAliveTimeoutMs;
  server.on("clientError", (err, socket) => {
    log.debug({ err: (err as Error).message }, "http: bad request");
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
  });

  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => reject(new HttpListenError(cfg.http.host, cfg.http.port, err));
    server.once("error", onError);
    server.listen(cfg.http.port, cfg.http.host, () => {
      server.off("error", onError);
      server.on("error", (err) => log.error({ err }, "http: server error"));
      const addr = server.address() as AddressInfo;
      const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
      const url = `http://${host}:${addr.port}`;
      log.info({ url }, "http: listening");
      resolve({
        url,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            // fetch keeps connections alive; without this close() would wait for them.
            server.closeAllConnections();
          }),
      });
    });
  });
}

function baseHeaders(res: ServerResponse): void {
  res.setHeader("Cache-Control", "no-store");
  res.setHeader("X-Content-Type-Options", "nosniff");
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  sendText(res, status, "application/json; charset=utf-8", JSON.stringify(body));
}

function sendText(res: ServerResponse, status: number, contentType: string, body: string): void {
  baseHeaders(res);
  res.statusCode = status;
  res.setHeader("Content-Type", contentType);
  res.setHeader("Content-Length", Buffer.byteLength(body));
  res.end(body);
}
