import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import {
  closeServer,
  type LostResponse,
  listenLoopback,
  loseResponse,
  Reachability,
  readBody,
  sendJson,
  type WaitOptions,
  waitFor,
} from './http-util.js';
import {
  buildEventCallback,
  buildInteractive,
  buildSlashCommand,
  defaultWorkspace,
  type InteractiveInput,
  type SlackWorkspace,
  type SlashCommandPayload,
} from './slack-payloads.js';
import type {
  ResponseUrlPost,
  SlackAck,
  SlackApiCall,
  SlackFailure,
  SlackPeerOptions,
} from './slack-types.js';
import {
  callSlackMethod,
  decodeApiBody,
  failureResponse,
  type SlackApiState,
  type SlackPostedMessage,
} from './slack-web-api.js';

export type { SignedPostOptions, SignedPostResult, SlackSignatureHeaders } from './slack-http.js';
export { postInteractive, postSignedSlackRequest, postSlashCommand, signSlackRequest } from './slack-http.js';
export type { InteractiveInput, SlackWorkspace, SlashCommandPayload } from './slack-payloads.js';
export type * from './slack-types.js';
export type { SlackPostedMessage } from './slack-web-api.js';

interface SocketConnection {
  id: number;
  ws: WebSocket;
  openedAt: number;
}

interface PendingAck {
  sentAt: number;
  responseUrl: string | undefined;
  resolve: (ack: SlackAck) => void;
  timer: NodeJS.Timeout;
}

const RESPONSE_URL_USES = 5;

/**
 * A loopback Slack: Web API over HTTP and Socket Mode over WebSocket, enough for the real
 * `@slack/bolt` to run against it unmodified.
 *
 * ```ts
 * const peer = await SlackPeer.start();
 * const app = new App({ socketMode: true, appToken: 'xapp-1-hv-test', token: 'xoxb-hv-test',
 *   clientOptions: { slackApiUrl: peer.apiUrl } });
 * await app.start();                       // auth.test, apps.connections.open, hello
 * const ack = await peer.sendSlashCommand({ command: '/hv', text: 'status' });
 * await app.stop();                        // does not wait for the socket to close:
 * await waitFor(() => peer.openConnections === 0);
 * await peer.stop();
 * ```
 *
 * bolt reconnects `clientPingTimeout` ms after a drop (default 5000); for fast reconnect tests pass
 * `receiver: new SocketModeReceiver({ appToken, clientPingTimeout: 1000,
 * installerOptions: { clientOptions: { slackApiUrl } } })` instead of `socketMode/appToken`.
 */
export class SlackPeer {
  readonly workspace: SlackWorkspace;
  /** Every Web API call, in order. */
  readonly calls: SlackApiCall[] = [];
  /** Messages posted through chat.postMessage / chat.postEphemeral (updated in place by chat.update). */
  readonly messages: SlackPostedMessage[] = [];
  readonly responseUrlPosts: ResponseUrlPost[] = [];
  /** Every frame the app sent over Socket Mode (acks), parsed. */
  readonly socketFramesIn: Record<string, unknown>[] = [];
  /** How many Socket Mode connections were ever opened. */
  connectionsOpened = 0;
  /** Cut the peer off (`peer.reachability.set(true | condition)`), as a host that lost its network. */
  readonly reachability: Reachability;

  private readonly server: Server;
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly sockets = new Map<number, SocketConnection>();
  private readonly tickets = new Set<string>();
  private readonly failures: { method: string; failure: SlackFailure; left: number }[] = [];
  private readonly lost: { method: string; lost: LostResponse }[] = [];
  private readonly pending = new Map<string, PendingAck[]>();
  private readonly responseUrlUses = new Map<string, number>();
  private readonly state: SlackApiState;
  private readonly ackTimeoutMs: number;
  private port = 0;
  private tsCounter = 0;

  private constructor(opts: SlackPeerOptions) {
    this.workspace = { ...defaultWorkspace, ...opts.workspace };
    this.ackTimeoutMs = opts.ackTimeoutMs ?? 3_000;
    this.state = {
      workspace: this.workspace,
      botTokens: new Set(opts.botTokens ?? ['xoxb-hv-test']),
      appTokens: new Set(opts.appTokens ?? ['xapp-1-hv-test']),
      channels: opts.channels ? new Set(opts.channels) : undefined,
      messages: this.messages,
      issueSocketUrl: () => this.issueSocketUrl(),
      nextTs: () => this.nextTs(),
    };
    this.server = createServer((req, res) => {
      this.route(req, res).catch((error: unknown) => sendJson(res, 500, { ok: false, error: String(error) }));
    });
    this.server.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
    this.wss.on('connection', (ws) => this.onSocket(ws));
    this.reachability = new Reachability(this.server, () => this.dropConnections());
  }

  /** Starts a peer on a random loopback port. */
  static async start(opts: SlackPeerOptions = {}): Promise<SlackPeer> {
    const peer = new SlackPeer(opts);
    peer.port = await listenLoopback(peer.server);
    return peer;
  }

  /** `http://127.0.0.1:PORT/api/` — give it to bolt as `clientOptions.slackApiUrl`. */
  get apiUrl(): string {
    return `${this.baseUrl}/api/`;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Socket Mode connections currently open. */
  get openConnections(): number {
    return this.sockets.size;
  }

  /** Web API calls of one method. */
  callsTo(method: string): SlackApiCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  /** Makes the next `times` calls of `method` fail. Use 'response_url' for response_url posts. */
  failNext(method: string, failure: SlackFailure): void {
    this.failures.push({ method, failure, left: failure.times ?? 1 });
  }

  /**
   * Carries out the next call of `method`, then loses its answer: the connection is dropped, or the
   * answer comes only after `delayMs` (e.g. past the client's timeout).
   */
  loseNextResponse(method: string, lost: LostResponse): void {
    this.lost.push({ method, lost });
  }

  /** A fresh response_url pointing at this peer. */
  newResponseUrl(): string {
    return `${this.baseUrl}/response/${randomUUID()}`;
  }

  /** Resolves once at least `minOpened` connections were opened and one is open now. */
  waitForSocket(minOpened = 1, opts: WaitOptions = {}): Promise<void> {
    return waitFor(() => this.connectionsOpened >= minOpened && this.sockets.size > 0, {
      what: `Socket Mode connection #${minOpened}`,
      ...opts,
    }).then(() => undefined);
  }

  /** Resolves with the first Web API call matching, waiting for it if needed. */
  waitForCall(
    method: string,
    match: (call: SlackApiCall) => boolean = () => true,
    opts: WaitOptions = {},
  ): Promise<SlackApiCall> {
    return waitFor(() => this.calls.find((c) => c.method === method && match(c)), { what: method, ...opts });
  }

  /** Resolves with the posts made to one response_url once there are at least `count`. */
  waitForResponse(url: string, count = 1, opts: WaitOptions = {}): Promise<ResponseUrlPost[]> {
    return waitFor(
      () => {
        const posts = this.responseUrlPosts.filter((p) => p.url === url);
        return posts.length >= count && posts;
      },
      { what: `post to ${url}`, ...opts },
    );
  }

  /** Delivers a slash command over Socket Mode; resolves when the app acks (or the deadline passes). */
  sendSlashCommand(fields: Partial<SlashCommandPayload> = {}): Promise<SlackAck> {
    const payload = buildSlashCommand(this.workspace, fields, fields.response_url ?? this.newResponseUrl());
    return this.sendEnvelopeRaw({
      envelope_id: randomUUID(),
      type: 'slash_commands',
      payload,
      accepts_response_payload: true,
    });
  }

  /** Delivers an interactive payload (default type block_actions, e.g. a button click). */
  sendInteractive(input: InteractiveInput): Promise<SlackAck> {
    const responseUrl = typeof input.response_url === 'string' ? input.response_url : this.newResponseUrl();
    const payload = buildInteractive(this.workspace, input, responseUrl);
    return this.sendEnvelopeRaw({
      envelope_id: randomUUID(),
      type: 'interactive',
      payload,
      accepts_response_payload: payload.type === 'view_submission',
    });
  }

  /** Delivers an Events API event (e.g. `{ type: 'app_mention', text, user, channel }`). */
  sendEvent(event: Record<string, unknown>): Promise<SlackAck> {
    return this.sendEnvelopeRaw({
      envelope_id: randomUUID(),
      type: 'events_api',
      payload: buildEventCallback(this.workspace, event),
      accepts_response_payload: false,
      retry_attempt: 0,
      retry_reason: '',
    });
  }

  /**
   * Sends an envelope as given, to the newest open connection. Re-sending one with the same
   * `envelope_id` (and `retry_attempt: 1, retry_reason: 'timeout'`) is how Slack retries.
   */
  async sendEnvelopeRaw(envelope: Record<string, unknown>): Promise<SlackAck> {
    await this.waitForSocket(1, { what: 'a Socket Mode connection to deliver to' });
    const connection = [...this.sockets.values()].at(-1)!;
    const envelopeId = String(envelope.envelope_id);
    const payload = envelope.payload as Record<string, unknown> | undefined;
    const responseUrl = typeof payload?.response_url === 'string' ? payload.response_url : undefined;
    const sentAt = performance.now();
    const ack = new Promise<SlackAck>((resolve) => {
      const timer = setTimeout(() => {
        this.takePending(envelopeId, waiter);
        resolve({
          envelopeId,
          acked: false,
          latencyMs: performance.now() - sentAt,
          payload: undefined,
          responseUrl,
        });
      }, this.ackTimeoutMs);
      const waiter: PendingAck = { sentAt, responseUrl, resolve, timer };
      const list = this.pending.get(envelopeId) ?? [];
      list.push(waiter);
      this.pending.set(envelopeId, list);
    });
    connection.ws.send(JSON.stringify(envelope));
    return ack;
  }

  /** Closes every Socket Mode connection abruptly (no close frame), as a network failure would. */
  dropConnections(): void {
    for (const { ws } of this.sockets.values()) ws.terminate();
  }

  /** Asks every connected client to reconnect, as Slack does before recycling a server. */
  sendDisconnect(reason = 'refresh_requested'): void {
    const frame = JSON.stringify({ type: 'disconnect', reason, debug_info: { host: 'hv-slack-peer' } });
    for (const { ws } of this.sockets.values()) ws.send(frame);
  }

  async stop(): Promise<void> {
    this.reachability.dispose();
    for (const list of this.pending.values()) for (const waiter of list) clearTimeout(waiter.timer);
    this.pending.clear();
    for (const { ws } of this.sockets.values()) ws.terminate();
    this.wss.close();
    await closeServer(this.server);
  }

  private issueSocketUrl(): string {
    const ticket = randomUUID();
    this.tickets.add(ticket);
    return `ws://127.0.0.1:${this.port}/socket?ticket=${ticket}&app_id=${this.workspace.appId}`;
  }

  private nextTs(): string {
    this.tsCounter += 1;
    return `${Math.floor(Date.now() / 1000)}.${String(this.tsCounter).padStart(6, '0')}`;
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', this.baseUrl);
    const ticket = url.searchParams.get('ticket') ?? '';
    if (url.pathname !== '/socket' || !this.tickets.delete(ticket)) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nconnection: close\r\n\r\n');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.wss.emit('connection', ws, req));
  }

  private onSocket(ws: WebSocket): void {
    this.connectionsOpened += 1;
    const connection: SocketConnection = { id: this.connectionsOpened, ws, openedAt: Date.now() };
    this.sockets.set(connection.id, connection);
    ws.on('close', () => this.sockets.delete(connection.id));
    ws.on('error', () => this.sockets.delete(connection.id));
    ws.on('message', (data) => this.onSocketMessage(data.toString()));
    ws.send(
      JSON.stringify({
        type: 'hello',
        num_connections: this.sockets.size,
        debug_info: { host: 'hv-slack-peer', build_number: 1, approximate_connection_time: 18_060 },
        connection_info: { app_id: this.workspace.appId },
      }),
    );
  }

  private onSocketMessage(text: string): void {
    let frame: Record<string, unknown>;
    try {
      frame = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return;
    }
    this.socketFramesIn.push(frame);
    const envelopeId = String(frame.envelope_id ?? '');
    const waiter = this.pending.get(envelopeId)?.[0];
    if (!waiter) return;
    this.takePending(envelopeId, waiter);
    clearTimeout(waiter.timer);
    const payload = frame.payload as Record<string, unknown> | undefined;
    waiter.resolve({
      envelopeId,
      acked: true,
      latencyMs: performance.now() - waiter.sentAt,
      payload,
      responseUrl: waiter.responseUrl,
    });
  }

  private takePending(envelopeId: string, waiter: PendingAck): void {
    const list = this.pending.get(envelopeId) ?? [];
    const rest = list.filter((w) => w !== waiter);
    if (rest.length > 0) this.pending.set(envelopeId, rest);
    else this.pending.delete(envelopeId);
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.baseUrl);
    const raw = await readBody(req);
    if (req.method === 'POST' && url.pathname.startsWith('/api/')) {
      await this.webApi(url.pathname.slice('/api/'.length), req, raw, res);
    } else if (req.method === 'POST' && url.pathname.startsWith('/response/')) {
      this.responseUrl(`${this.baseUrl}${url.pathname}`, raw, res);
    } else {
      sendJson(res, 404, { ok: false, error: 'not_found' });
    }
  }

  private async webApi(
    method: string,
    req: IncomingMessage,
    raw: Buffer,
    res: ServerResponse,
  ): Promise<void> {
    const body = await decodeApiBody(req.headers['content-type'] ?? '', raw);
    const header = req.headers.authorization ?? '';
    const token = header.startsWith('Bearer ')
      ? header.slice('Bearer '.length)
      : (body.token as string | undefined);
    const at = Date.now();
    const failure = this.takeFailure(method);
    if (failure) {
      const { status, response, headers } = failureResponse(failure);
      this.calls.push({ method, body, token, at, status, response });
      sendJson(res, status, response, headers);
      return;
    }
    const response = callSlackMethod(this.state, method, body, token);
    this.calls.push({ method, body, token, at, status: 200, response });
    const lostAt = this.lost.findIndex((l) => l.method === method);
    const lost = this.lost[lostAt];
    if (!lost) return sendJson(res, 200, response);
    this.lost.splice(lostAt, 1);
    loseResponse(res, lost.lost, () => sendJson(res, 200, response));
  }

  private responseUrl(url: string, raw: Buffer, res: ServerResponse): void {
    const failure = this.takeFailure('response_url');
    if (failure) {
      const { status, response, headers } = failureResponse(failure);
      sendJson(res, status === 200 ? 404 : status, response, headers);
      return;
    }
    const uses = (this.responseUrlUses.get(url) ?? 0) + 1;
    this.responseUrlUses.set(url, uses);
    if (uses > RESPONSE_URL_USES) {
      sendJson(res, 404, { ok: false, error: 'used_url' });
      return;
    }
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
    } catch {
      sendJson(res, 400, { ok: false, error: 'invalid_payload' });
      return;
    }
    this.responseUrlPosts.push({ url, body, at: Date.now() });
    sendJson(res, 200, { ok: true });
  }

  private takeFailure(method: string): SlackFailure | undefined {
    const index = this.failures.findIndex((f) => f.method === method);
    const entry = this.failures[index];
    if (!entry) return undefined;
    entry.left -= 1;
    if (entry.left <= 0) this.failures.splice(index, 1);
    return entry.failure;
  }
}
