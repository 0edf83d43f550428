import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** Reads a whole request body. */
export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Writes a JSON response and ends it. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

/** Parses a multipart/form-data body with the platform's own parser (no extra dependency). */
export async function parseMultipart(
  body: Buffer,
  contentType: string,
): Promise<{ fields: Record<string, string>; files: { field: string; name: string; size: number }[] }> {
  const form = await new Response(body, { headers: { 'content-type': contentType } }).formData();
  const fields: Record<string, string> = {};
  const files: { field: string; name: string; size: number }[] = [];
  for (const [key, value] of form.entries()) {
    if (typeof value === 'string') fields[key] = value;
    else files.push({ field: key, name: value.name, size: value.size });
  }
  return { fields, files };
}

/** Listens on a random free loopback port and returns it. */
export function listenLoopback(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      const address = server.address();
      if (address === null || typeof address === 'string') reject(new Error('server has no TCP address'));
      else resolve(address.port);
    });
  });
}

/** Closes a server, dropping keep-alive connections so `close` cannot hang. */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Named in the timeout error, so a failing test says what it waited for. */
  what?: string;
}

/** Polls `probe` until it returns something other than undefined/null/false. */
export async function waitFor<T>(
  probe: () => T | undefined | null | false,
  { timeoutMs = 5_000, intervalMs = 10, what = 'condition' }: WaitOptions = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== null && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Matches `pattern` ("POST /channels/:id/messages", "/interactions/*", or a RegExp on "METHOD /path"). */
export function routeMatches(pattern: string | RegExp, method: string, path: string): boolean {
  const subject = `${method.toUpperCase()} ${path}`;
  if (pattern instanceof RegExp) return pattern.test(subject);
  const space = pattern.indexOf(' ');
  const wantMethod = space > 0 ? pattern.slice(0, space).toUpperCase() : undefined;
  const wantPath = space > 0 ? pattern.slice(space + 1) : pattern;
  if (wantMethod !== undefined && wantMethod !== method.toUpperCase()) return false;
  if (!wantPath.includes(':') && !wantPath.includes('*')) return wantPath === path;
  const source = wantPath
    .split('/')
    .map((segment) => (segment === '*' || segment.startsWith(':') ? '[^/]+' : escapeRegExp(segment)))
    .join('/');
  return new RegExp(`^${source}$`).test(path);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * How a peer loses the answer to a request it has carried out (the message is posted): `drop`
 * closes the connection without a response, as a crash or a network cut between the platform's
 * commit and its answer would; `delayMs` answers only after that long (past the client's timeout).
 */
export type LostResponse = { drop: true } | { delayMs: number };

/** Loses `send` as `lost` says: drops the socket, or calls `send` after the delay. */
export function loseResponse(res: ServerResponse, lost: LostResponse, send: () => void): void {
  if ('drop' in lost) {
    res.socket?.destroy();
    return;
  }
  const timer = setTimeout(() => {
    if (!res.socket?.destroyed) send();
  }, lost.delayMs);
  res.once('close', () => clearTimeout(timer));
}

/**
 * Makes a peer's server unreachable on demand, as a host cut off from the platform sees it: while
 * `unreachable` says so, every new TCP connection (Web API, REST, WebSocket alike) is closed at once
 * and the open ones are dropped. `when` is a flag or a condition looked at on every connection and
 * every 50 ms (e.g. "a confirmation window is open"), so a reconnection made the moment it becomes
 * true is refused too.
 */
export class Reachability {
  /** TCP connections refused so far. */
  refused = 0;
  private readonly open = new Set<Socket>();
  private when: () => boolean = () => false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    server: Server,
    /** Also drop the peer's own sockets (WebSocket servers hold theirs). */
    private readonly dropOthers: () => void = () => {},
  ) {
    server.on('connection', (socket) => {
      if (this.when()) {
        this.refused += 1;
        socket.destroy();
        return;
      }
      this.open.add(socket);
      socket.once('close', () => this.open.delete(socket));
    });
  }

  get unreachable(): boolean {
    return this.when();
  }

  /** `true`/a condition: unreachable (while it holds); `false`: reachable again. */
  set(when: boolean | (() => boolean)): void {
    this.when = typeof when === 'function' ? when : () => when;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (when === false) return;
    const cut = () => {
      if (!this.when()) return;
      for (const socket of this.open) socket.destroy();
      this.open.clear();
      this.dropOthers();
    };
    cut();
    if (typeof when === 'function') {
      this.timer = setInterval(cut, 50);
      this.timer.unref();
    }
  }

  dispose(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
