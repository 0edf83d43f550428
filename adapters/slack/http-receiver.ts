import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AckFn, App, Receiver, ReceiverEvent } from '@slack/bolt';
import type { Evidence } from '../../src/bus/types.js';
import { errorMessage } from '../../src/errors.js';
import type { AdapterContext } from '../../src/ports/channel.js';

/** The only path Slack posts to (slash commands and interactivity alike). */
export const EVENTS_PATH = '/slack/events';

/** Slack's acknowledgement deadline; an unacknowledged request is answered 404 then, as bolt does. */
const ACK_DEADLINE_MS = 3_001;

export interface SlackHttpReceiverOptions {
  /** Channel name, for logs. */
  channel: string;
  port: number;
  /** Bind address; loopback by default (a reverse proxy terminates TLS in front). */
  address: string;
  /** Bodies above this are refused (413): from Content-Length before reading, else while streaming. */
  maxBodyBytes: number;
  /** Open connections at most; Node closes further ones at once. */
  maxConnections: number;
  /** Until the request headers are complete (slow senders). */
  headersTimeoutMs?: number;
  /** Until the whole request is received. */
  requestTimeoutMs?: number;
  /** The engine's check of the signature; the receiver holds no signing secret. */
  verify(evidence: Evidence): Promise<boolean>;
  log: AdapterContext['log'];
}

/** What the handlers find in bolt's `context`: the request's signed form, for the bus to check again. */
export interface SignedContext {
  evidence?: Evidence;
}

/**
 * Slack HTTP mode's intake, in place of bolt's HTTPReceiver (which buffers up to 4 MB of any
 * unsigned body, has no connection cap and listens on all interfaces): only `POST /slack/events`,
 * a small body limit enforced before buffering, header and request timeouts, a connection cap, a
 * configurable bind address. It holds no signing secret: each body goes to the engine's verifier
 * (`bus.verify`) and only a request it accepts reaches bolt, with its evidence in the context.
 */
export class SlackHttpReceiver implements Receiver {
  private app: App | undefined;
  private server: Server | undefined;

  constructor(private readonly opts: SlackHttpReceiverOptions) {}

  init(app: App): void {
    this.app = app;
  }

  /** The port it listens on (after start; useful with port 0). */
  get port(): number | undefined {
    return (this.server?.address() as AddressInfo | null)?.port;
  }

  async start(): Promise<Server> {
    const o = this.opts;
    const server = createServer(
      {
        headersTimeout: o.headersTimeoutMs ?? 5_000,
        requestTimeout: o.requestTimeoutMs ?? 10_000,
        keepAliveTimeout: 2_000,
        // How often Node enforces the two timeouts above (its default, 30 s, lets slow senders stay).
        connectionsCheckingInterval: 1_000,
        maxHeaderSize: 8 * 1024,
      },
      (req, res) => this.onRequest(req, res),
    );
    server.maxConnections = o.maxConnections;
    server.on('clientError', (e: NodeJS.ErrnoException, socket) => {
      // Slow senders (header or request timeout), oversized headers, malformed requests.
      if (e.code === 'ECONNRESET' || !socket.writable) {
        socket.destroy();
        return;
      }
      const status =
        e.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? '408 Request Timeout'
          : e.code === 'HPE_HEADER_OVERFLOW'
            ? '431 Request Header Fields Too Large'
            : '400 Bad Request';
      socket.write(`HTTP/1.1 ${status}\r\nconnection: close\r\n\r\n`);
      socket.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.port, o.address, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (e) =>
      o.log('error', 'slack http server error', { channel: o.channel, error: e.message }),
    );
    this.server = server;
    return server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path !== EVENTS_PATH) {
      end(res, 404);
      return;
    }
    if (req.method !== 'POST') {
      end(res, 405, { allow: 'POST' });
      return;
    }
    const limit = this.opts.maxBodyBytes;
    const declared = req.headers['content-length'];
    // Refused before a byte of the body is read.
    if (declared !== undefined && !(Number(declared) <= limit)) {
      end(res, 413);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        // Chunked (or lying) senders are cut as soon as they pass the limit.
        chunks.length = 0;
        req.removeAllListeners('data');
        end(res, 413);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (size > limit) return;
      this.onBody(req, res, Buffer.concat(chunks).toString('utf8')).catch((e: unknown) => {
        this.opts.log('error', 'slack request failed', {
          channel: this.opts.channel,
          error: errorMessage(e),
        });
        if (!res.headersSent) end(res, 500);
      });
    });
    req.on('error', () => req.socket.destroy());
  }

  /** Refused signatures are logged at most once a minute, with a count: a flood must not fill the log. */
  private refused = { count: 0, loggedAt: 0 };
  private refusedLog(): void {
    this.refused.count++;
    const now = Date.now();
    if (now - this.refused.loggedAt < 60_000) return;
    this.opts.log('warn', 'slack requests refused: bad or missing signature', {
      channel: this.opts.channel,
      count: this.refused.count,
    });
    this.refused = { count: 0, loggedAt: now };
  }

  private async onBody(req: IncomingMessage, res: ServerResponse, text: string): Promise<void> {
    const form = isForm(req) ? new URLSearchParams(text) : undefined;
    // Slack's SSL check carries nothing to act on; answered without a signature, as bolt does.
    if (form?.get('ssl_check') === '1') return end(res, 200);
    const timestamp = header(req, 'x-slack-request-timestamp');
    const signature = header(req, 'x-slack-signature');
    if (!timestamp || !signature) {
      this.refusedLog();
      return end(res, 401);
    }
    const evidence: Evidence = {
      scheme: 'slack-v0',
      headers: { 'x-slack-request-timestamp': timestamp, 'x-slack-signature': signature },
      body: text,
    };
    if (!(await this.opts.verify(evidence))) {
      this.refusedLog();
      return end(res, 401);
    }
    let body: Record<string, unknown>;
    try {
      body = parseBody(text, form);
    } catch {
      return end(res, 400);
    }
    const app = this.app;
    if (!app) return end(res, 503);
    let acked = false;
    const timer = setTimeout(() => {
      if (acked) return;
      acked = true;
      this.opts.log('warn', 'slack request not acknowledged within 3 s', { channel: this.opts.channel });
      end(res, 404);
    }, ACK_DEADLINE_MS);
    // biome-ignore lint/suspicious/noExplicitAny: bolt's AckFn takes any response body
    const ack: AckFn<any> = async (response?: unknown) => {
      if (acked) return;
      acked = true;
      clearTimeout(timer);
      respond(res, response);
    };
    const retry = header(req, 'x-slack-retry-num');
    const event: ReceiverEvent = {
      body,
      ack,
      ...(retry ? { retryNum: Number.parseInt(retry, 10) } : {}),
      ...(header(req, 'x-slack-retry-reason') ? { retryReason: header(req, 'x-slack-retry-reason') } : {}),
      customProperties: { evidence } satisfies SignedContext,
    };
    try {
      await app.processEvent(event);
    } catch (e) {
      this.opts.log('error', 'slack handler failed', { channel: this.opts.channel, error: errorMessage(e) });
      if (!acked) {
        acked = true;
        clearTimeout(timer);
        end(res, 500);
      }
    }
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' ? v : undefined;
}

function isForm(req: IncomingMessage): boolean {
  return (req.headers['content-type'] ?? '').split(';')[0]?.trim() === 'application/x-www-form-urlencoded';
}

/** As bolt parses it: a form's `payload` field is JSON (interactivity), else the form's fields. */
function parseBody(text: string, form: URLSearchParams | undefined): Record<string, unknown> {
  if (!form) return JSON.parse(text) as Record<string, unknown>;
  const payload = form.get('payload');
  if (payload !== null) return JSON.parse(payload) as Record<string, unknown>;
  return Object.fromEntries(form);
}

/** An answer without a body; the connection closes unless the request was read whole and fine. */
function end(res: ServerResponse, status: number, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  const refused = status >= 400;
  res.writeHead(status, { ...headers, ...(refused ? { connection: 'close' } : {}) });
  res.end();
  // A refused sender may still be sending: drop the connection instead of reading the rest.
  if (refused) res.once('finish', () => res.req.socket.destroy());
}

function respond(res: ServerResponse, response: unknown): void {
  if (res.headersSent) return;
  if (response === undefined || response === '') {
    res.writeHead(200);
    res.end();
  } else if (typeof response === 'string') {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(response);
  } else {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(response));
  }
}
