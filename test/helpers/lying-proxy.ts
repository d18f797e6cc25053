/**
 * A lying coordinator for attack tests: an HTTP proxy on 127.0.0.1 in front of a real coordinator.
 *
 * - It records every exchange (method, path, headers and body bytes of the request and of the answer).
 * - A test installs rules per route: a rule sees the request and may forward it (unchanged, or with
 *   edited bytes), answer it itself, edit the real answer, or drop the connection without an answer.
 * - It replays recorded requests byte for byte (the coordinator's nonce check should then refuse them).
 *
 * Nodes sign method, path and body, so by default the proxy forwards those bytes unchanged; it never
 * re-signs anything. Only loopback is used. `close()` stops the server and every open connection.
 */
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ProxyRequest {
  method: string;
  /** The request target exactly as sent: path and query string. */
  path: string;
  headers: Record<string, string>;
  body: Buffer;
}

export interface ProxyResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

export interface Exchange {
  id: number;
  at: number;
  request: ProxyRequest;
  /** What the client was answered (null: the proxy dropped the connection). */
  response: ProxyResponse | null;
  /** What the coordinator answered, when the request was forwarded. */
  upstream: ProxyResponse | null;
  /** A rule answered, edited or dropped it. */
  rewritten: boolean;
}

export interface RuleContext {
  /** Sends the request (by default the original bytes) to the coordinator and returns its answer. */
  forward(edited?: Partial<ProxyRequest>): Promise<ProxyResponse>;
}

/** The answer to give, or `null` to drop the connection without answering. */
export type RuleResult = ProxyResponse | null;
export type Rule = (req: ProxyRequest, ctx: RuleContext) => RuleResult | Promise<RuleResult>;

export interface RouteMatch {
  method?: string;
  /** Tested against the path without its query string. */
  path: RegExp;
  /** Only requests signed by this key id (x-fedmark-key), e.g. to lie to one partner only. */
  keyId?: string;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer', 'host', 'content-length']);

function flatHeaders(h: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

/** A JSON answer, as the coordinator would write it. */
export function jsonResponse(status: number, value: unknown): ProxyResponse {
  return { status, headers: { 'content-type': 'application/json; charset=utf-8' }, body: Buffer.from(JSON.stringify(value)) };
}

export function bytesResponse(status: number, body: Uint8Array, contentType = 'application/octet-stream'): ProxyResponse {
  return { status, headers: { 'content-type': contentType }, body: Buffer.from(body) };
}

export function parseJson<T = unknown>(r: { body: Buffer }): T {
  return JSON.parse(r.body.toString('utf8')) as T;
}

export class LyingProxy {
  readonly exchanges: Exchange[] = [];
  private readonly rules: { match: RouteMatch; rule: Rule }[] = [];
  private nextId = 0;

  private constructor(
    private readonly server: Server,
    readonly url: string,
    readonly target: string,
  ) {}

  /** Starts a proxy on 127.0.0.1 (OS-assigned port) forwarding to `target` (http://127.0.0.1:PORT). */
  static async start(target: string): Promise<LyingProxy> {
    const t = new URL(target);
    if (t.protocol !== 'http:' || !['127.0.0.1', 'localhost', '[::1]'].includes(t.hostname)) {
      throw new Error(`lying proxy: loopback http targets only, got ${target}`);
    }
    let self: LyingProxy | null = null;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const request: ProxyRequest = { method: req.method ?? 'GET', path: req.url ?? '/', headers: flatHeaders(req.headers), body: Buffer.concat(chunks) };
        self!.handle(request).then(
          (answer) => {
            if (!answer) {
              res.socket?.destroy();
              return;
            }
            res.writeHead(answer.status, { ...answer.headers, 'content-length': String(answer.body.length) });
            res.end(answer.body);
          },
          (err: unknown) => {
            res.writeHead(502, { 'content-type': 'text/plain' });
            res.end(`lying proxy: ${(err as Error).message}`);
          },
        );
      });
    });
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      server.listen(0, '127.0.0.1', () => res());
    });
    const port = (server.address() as AddressInfo).port;
    self = new LyingProxy(server, `http://127.0.0.1:${port}`, target.replace(/\/$/, ''));
    return self;
  }

  /**
   * Installs a rule for matching requests; later rules win over earlier ones. Returns a function
   * that removes it.
   */
  on(match: RouteMatch, rule: Rule): () => void {
    const entry = { match, rule };
    this.rules.push(entry);
    return () => {
      const i = this.rules.indexOf(entry);
      if (i >= 0) this.rules.splice(i, 1);
    };
  }

  /** Forwards matching requests and lets `edit` rewrite the coordinator's JSON answer (2xx answers only). */
  rewriteJson<T>(match: RouteMatch, edit: (body: T, req: ProxyRequest) => T): () => void {
    return this.on(match, async (_req, ctx) => {
      const real = await ctx.forward();
      if (real.status < 200 || real.status >= 300) return real;
      return jsonResponse(real.status, edit(parseJson<T>(real), _req));
    });
  }

  /** Exchanges whose request matches (in the order they arrived). */
  requests(match: RouteMatch): Exchange[] {
    return this.exchanges.filter((x) => matches(match, x.request));
  }

  /** Sends a recorded request to the coordinator again, byte for byte, bypassing the rules. */
  replay(request: ProxyRequest): Promise<ProxyResponse> {
    return this.forward(request);
  }

  async close(): Promise<void> {
    this.rules.length = 0;
    this.server.closeAllConnections();
    await new Promise<void>((res) => this.server.close(() => res()));
  }

  private async handle(request: ProxyRequest): Promise<ProxyResponse | null> {
    const x: Exchange = { id: this.nextId++, at: Date.now(), request, response: null, upstream: null, rewritten: false };
    this.exchanges.push(x);
    const ctx: RuleContext = {
      forward: async (edited) => {
        x.upstream = await this.forward({ ...request, ...edited });
        return x.upstream;
      },
    };
    const found = [...this.rules].reverse().find((r) => matches(r.match, request));
    if (!found) {
      x.response = await ctx.forward();
      return x.response;
    }
    x.rewritten = true;
    x.response = await found.rule(request, ctx);
    return x.response;
  }

  private forward(r: ProxyRequest): Promise<ProxyResponse> {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(r.headers)) if (!HOP_BY_HOP.has(k)) headers[k] = v;
    if (r.body.length || !['GET', 'HEAD'].includes(r.method)) headers['content-length'] = String(r.body.length);
    return new Promise((res, rej) => {
      const out = httpRequest(`${this.target}${r.path}`, { method: r.method, headers }, (up) => {
        const chunks: Buffer[] = [];
        up.on('data', (c: Buffer) => chunks.push(c));
        up.on('end', () => {
          const h = flatHeaders(up.headers);
          for (const k of HOP_BY_HOP) delete h[k];
          res({ status: up.statusCode ?? 502, headers: h, body: Buffer.concat(chunks) });
        });
        up.on('error', rej);
      });
      out.on('error', rej);
      out.end(r.body);
    });
  }
}

function matches(m: RouteMatch, r: ProxyRequest): boolean {
  if (m.method && m.method.toUpperCase() !== r.method.toUpperCase()) return false;
  if (m.keyId && r.headers['x-fedmark-key'] !== m.keyId) return false;
  return m.path.test(r.path.split('?')[0]);
}
