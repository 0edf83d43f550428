import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import {
  channelObject,
  type DiscordGuildSeed,
  type DiscordUserSeed,
  guildCreateObject,
  messageObject,
  snowflake,
  userObject,
} from './discord-fixtures.js';
import { DiscordGateway, type GatewayConnectionInfo, type GatewayFrame } from './discord-gateway.js';
import { buildInteraction, defaultGuild } from './discord-interactions.js';
import { type DiscordRoute, discordRoutes, type RestReply } from './discord-rest.js';
import {
  type CommandWrite,
  DISCORD_IDS,
  type DiscordFailure,
  type DiscordMessageRecord,
  type DiscordPeerOptions,
  type DiscordRestCall,
  type InteractionCallback,
  type InteractionInput,
  type InteractionState,
  type SentInteraction,
} from './discord-types.js';
import {
  closeServer,
  type LostResponse,
  listenLoopback,
  loseResponse,
  parseMultipart,
  Reachability,
  readBody,
  routeMatches,
  sendJson,
  type WaitOptions,
  waitFor,
} from './http-util.js';

export type {
  DiscordChannelSeed,
  DiscordMemberSeed,
  DiscordRoleSeed,
  DiscordUserSeed,
} from './discord-fixtures.js';
export type { GatewayConnectionInfo, GatewayFrame } from './discord-gateway.js';
export * from './discord-types.js';
export { DISCORD_LIMITS, type DiscordErrorBody } from './discord-validate.js';

/**
 * A loopback Discord: REST API and gateway v10 (JSON, uncompressed), enough for the real
 * discord.js 14 to log in, receive interactions and answer them, unmodified.
 *
 * ```ts
 * const peer = await DiscordPeer.start();
 * const client = new Client({ intents: [GatewayIntentBits.Guilds], rest: { api: peer.apiUrl } });
 * await client.login(peer.token);          // GET /gateway/bot, HELLO, IDENTIFY, READY, GUILD_CREATE
 * const sent = peer.sendInteraction({ type: 2, data: { name: 'hv' } });
 * const callback = await peer.waitForCallback(sent.id);   // { type: 5, latencyMs, ... }
 * await client.destroy();
 * await peer.stop();
 * ```
 */
export class DiscordPeer {
  readonly token: string;
  readonly applicationId: string;
  readonly botUser: DiscordUserSeed;
  readonly guild: DiscordGuildSeed;
  readonly restCalls: DiscordRestCall[] = [];
  readonly callbacks: InteractionCallback[] = [];
  readonly messages: DiscordMessageRecord[] = [];
  readonly commandWrites: CommandWrite[] = [];
  readonly interactions = new Map<string, InteractionState>();
  readonly commands = new Map<string, Record<string, unknown>[]>();
  /** DM channel id per user id. */
  readonly dmChannels = new Map<string, string>();
  readonly interactionDeadlineMs: number;
  readonly gateway: DiscordGateway;
  /** Cut the peer off (`peer.reachability.set(true | condition)`), as a host that lost its network. */
  readonly reachability: Reachability;

  private readonly server: Server;
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly failures: { pattern: string | RegExp; failure: DiscordFailure; left: number }[] = [];
  private readonly lost: { pattern: string | RegExp; lost: LostResponse }[] = [];
  private readonly routes: DiscordRoute[];
  private port = 0;

  private constructor(opts: DiscordPeerOptions) {
    this.token = opts.token ?? 'hv-discord-test-token';
    this.applicationId = opts.applicationId ?? DISCORD_IDS.application;
    this.botUser = { id: this.applicationId, username: 'hv-bot', ...opts.botUser, bot: true };
    this.guild = defaultGuild(this.botUser, opts.guild ?? {});
    this.interactionDeadlineMs = opts.interactionDeadlineMs ?? 3_000;
    this.gateway = new DiscordGateway({
      token: this.token,
      heartbeatIntervalMs: opts.heartbeatIntervalMs ?? 41_250,
      ready: (sessionId) => this.readyPayload(sessionId),
      guilds: () => [guildCreateObject(this.guild)],
    });
    this.routes = discordRoutes(this);
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) =>
        sendJson(res, 500, { message: String(error), code: 0 }),
      );
    });
    this.server.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
    this.reachability = new Reachability(this.server, () => this.gateway.drop());
  }

  /** Starts a peer on a random loopback port. */
  static async start(opts: DiscordPeerOptions = {}): Promise<DiscordPeer> {
    const peer = new DiscordPeer(opts);
    peer.port = await listenLoopback(peer.server);
    return peer;
  }

  /** `http://127.0.0.1:PORT/api` — discord.js appends `/v10`. Give it as `rest: { api }`. */
  get apiUrl(): string {
    return `http://127.0.0.1:${this.port}/api`;
  }

  /** What `GET /gateway/bot` answers. */
  get gatewayUrl(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  get identifies(): number {
    return this.gateway.identifies;
  }

  get resumes(): number {
    return this.gateway.resumes;
  }

  get gatewayFrames(): readonly GatewayFrame[] {
    return this.gateway.frames;
  }

  get gatewayConnections(): readonly GatewayConnectionInfo[] {
    return this.gateway.connections;
  }

  /** The first text channel of the guild. */
  get channelId(): string {
    return this.guild.channels.find((c) => (c.type ?? 0) === 0)?.id ?? DISCORD_IDS.channel;
  }

  /**
   * Makes the next `times` requests matching `pattern` fail. Patterns: 'POST /channels/:id/messages',
   * '/interactions/*\/*\/callback' (any method), or a RegExp tested on 'METHOD /path'.
   */
  failNext(pattern: string | RegExp, failure: DiscordFailure): void {
    this.failures.push({ pattern, failure, left: failure.times ?? 1 });
  }

  /**
   * Carries out the next request matching `pattern` (see failNext), then loses its answer: the
   * connection is dropped, or the answer comes only after `delayMs`.
   */
  loseNextResponse(pattern: string | RegExp, lost: LostResponse): void {
    this.lost.push({ pattern, lost });
  }

  /** Dispatches any gateway event to every session. */
  dispatch(t: string, d: unknown): void {
    this.gateway.dispatch(t, d);
  }

  /** Closes gateway sockets: abruptly by default (clients RESUME), or with a close code. */
  dropGateway(opts: { code?: number } = {}): void {
    this.gateway.drop(opts.code);
  }

  /** Sends INVALID_SESSION (op 9). Non-resumable makes clients IDENTIFY again. */
  invalidateSession(resumable = false): void {
    this.gateway.invalidateSessions(resumable);
  }

  /** Sends RECONNECT (op 7). */
  requestReconnect(): void {
    this.gateway.requestReconnect();
  }

  /** Resolves when a session is live and at least `identifies` IDENTIFYs and `resumes` RESUMEs happened. */
  waitForSession(
    want: { identifies?: number; resumes?: number } = {},
    opts: WaitOptions = {},
  ): Promise<void> {
    return waitFor(
      () =>
        this.gateway.liveSessions > 0 &&
        this.identifies >= (want.identifies ?? 1) &&
        this.resumes >= (want.resumes ?? 0),
      { what: `gateway session ${JSON.stringify(want)}`, ...opts },
    ).then(() => undefined);
  }

  /** Delivers INTERACTION_CREATE with a fresh id and token. */
  sendInteraction(input: InteractionInput): SentInteraction {
    const state = buildInteraction(this, input);
    this.interactions.set(state.id, state);
    state.sentAt = performance.now();
    if (this.gateway.dispatch('INTERACTION_CREATE', state.payload) === 0) {
      throw new Error('no gateway session to deliver the interaction to; has the client logged in?');
    }
    return {
      id: state.id,
      token: state.token,
      type: state.type,
      payload: state.payload,
      sentAt: state.sentAt,
    };
  }

  /** Resolves with the first callback for an interaction. */
  waitForCallback(interactionId: string, opts: WaitOptions = {}): Promise<InteractionCallback> {
    return waitFor(() => this.callbacks.find((c) => c.interactionId === interactionId), {
      what: `callback for interaction ${interactionId}`,
      ...opts,
    });
  }

  /** Resolves with the first REST call matching `pattern` (see failNext) and `match`. */
  waitForRest(
    pattern: string | RegExp,
    match: (call: DiscordRestCall) => boolean = () => true,
    opts: WaitOptions = {},
  ): Promise<DiscordRestCall> {
    return waitFor(() => this.restCalls.find((c) => routeMatches(pattern, c.method, c.path) && match(c)), {
      what: String(pattern),
      ...opts,
    });
  }

  /** Messages in one channel, oldest first, without deleted ones. */
  messagesIn(channelId: string): DiscordMessageRecord[] {
    return this.messages.filter((m) => m.channelId === channelId && !m.deleted);
  }

  async stop(): Promise<void> {
    this.reachability.dispose();
    this.gateway.close();
    this.wss.close();
    await closeServer(this.server);
  }

  /** Builds a message object authored by the bot. */
  botMessage(
    channelId: string,
    body: Record<string, unknown>,
    extra: Partial<Parameters<typeof messageObject>[0]> = {},
  ) {
    return messageObject({
      channelId,
      guildId: this.guild.channels.some((c) => c.id === channelId) ? this.guild.id : undefined,
      author: this.botUser,
      body,
      ...extra,
    });
  }

  /** The channel object for a guild channel, if it exists. */
  channelObject(channelId: string): Record<string, unknown> | undefined {
    const index = this.guild.channels.findIndex((c) => c.id === channelId);
    const seed = this.guild.channels[index];
    if (seed) return channelObject(this.guild.id, seed, index);
    const recipient = [...this.dmChannels].find(([, id]) => id === channelId)?.[0];
    const user = recipient === undefined ? undefined : this.knownUser(recipient);
    return user
      ? { id: channelId, type: 1, last_message_id: null, flags: 0, recipients: [userObject(user)] }
      : undefined;
  }

  /** A user the peer knows: the bot or a guild member. */
  knownUser(userId: string): DiscordUserSeed | undefined {
    if (userId === this.botUser.id) return this.botUser;
    return this.guild.members.find((m) => m.user.id === userId)?.user;
  }

  /** The DM channel with a user, created on first use (POST /users/@me/channels). */
  openDm(userId: string): Record<string, unknown> | undefined {
    if (!this.knownUser(userId)) return undefined;
    if (!this.dmChannels.has(userId)) this.dmChannels.set(userId, snowflake());
    return this.channelObject(this.dmChannels.get(userId)!);
  }

  private readyPayload(sessionId: string): Record<string, unknown> {
    return {
      v: 10,
      user: { ...userObject(this.botUser), verified: true, mfa_enabled: false, flags: 0, email: null },
      guilds: [{ id: this.guild.id, unavailable: true }],
      session_id: sessionId,
      session_type: 'normal',
      resume_gateway_url: `${this.gatewayUrl}/resume`,
      shard: [0, 1],
      application: { id: this.applicationId, flags: 0 },
      private_channels: [],
      relationships: [],
      presences: [],
      guild_join_requests: [],
      geo_ordered_rtc_regions: [],
      user_settings: {},
      _trace: ['hv-discord-peer'],
    };
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', `http://127.0.0.1:${this.port}`);
    if (url.pathname.startsWith('/api')) {
      socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\n');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) =>
      this.gateway.accept(ws, url.pathname, url.searchParams),
    );
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', `http://127.0.0.1:${this.port}`);
    const method = (req.method ?? 'GET').toUpperCase();
    // discord.js encodes '@original' as '%40original'; routes and records use the decoded form.
    const path = decodeURIComponent(url.pathname).replace(/^\/api(\/v\d+)?/, '');
    const raw = await readBody(req);
    const { body, files } = await parseRestBody(req.headers['content-type'] ?? '', raw);
    const authorized = req.headers.authorization === `Bot ${this.token}`;
    const query = Object.fromEntries(url.searchParams);
    const call: DiscordRestCall = {
      method,
      path,
      query,
      body,
      files,
      authorized,
      status: 0,
      response: undefined,
      at: Date.now(),
    };
    this.restCalls.push(call);

    const reply = this.takeFailure(method, path) ?? this.dispatchRoute(method, path, call);
    call.status = reply.status;
    call.response = reply.body;
    const send = () => {
      if (reply.body === undefined) {
        res.writeHead(reply.status, reply.headers ?? {});
        res.end();
      } else {
        sendJson(res, reply.status, reply.body, reply.headers);
      }
    };
    const lostAt = this.lost.findIndex((l) => routeMatches(l.pattern, method, path));
    const lost = this.lost[lostAt];
    if (!lost) return send();
    this.lost.splice(lostAt, 1);
    loseResponse(res, lost.lost, send);
  }

  private dispatchRoute(method: string, path: string, call: DiscordRestCall): RestReply {
    for (const route of this.routes) {
      if (route.method !== method) continue;
      const match = route.pattern.exec(path);
      if (!match) continue;
      if (route.auth && !call.authorized)
        return { status: 401, body: { message: '401: Unauthorized', code: 0 } };
      return route.handle(match.groups ?? {}, call);
    }
    return { status: 404, body: { message: '404: Not Found', code: 0 } };
  }

  private takeFailure(method: string, path: string): RestReply | undefined {
    const index = this.failures.findIndex((f) => routeMatches(f.pattern, method, path));
    const entry = this.failures[index];
    if (!entry) return undefined;
    entry.left -= 1;
    if (entry.left <= 0) this.failures.splice(index, 1);
    const { failure } = entry;
    if (failure.status === 429) {
      const retryAfter = failure.retryAfter ?? 1;
      return {
        status: 429,
        body: failure.body ?? {
          message: 'You are being rate limited.',
          retry_after: retryAfter,
          global: failure.global ?? false,
        },
        headers: {
          'retry-after': String(retryAfter),
          'x-ratelimit-scope': failure.global ? 'global' : 'user',
          ...(failure.global ? { 'x-ratelimit-global': 'true' } : {}),
        },
      };
    }
    return {
      status: failure.status,
      body: failure.body ?? { message: `${failure.status}: Injected failure`, code: 0 },
    };
  }
}

async function parseRestBody(
  contentType: string,
  raw: Buffer,
): Promise<{ body: unknown; files: { field: string; name: string; size: number }[] }> {
  if (raw.length === 0) return { body: undefined, files: [] };
  if (contentType.startsWith('multipart/form-data')) {
    const { fields, files } = await parseMultipart(raw, contentType);
    return { body: fields.payload_json ? JSON.parse(fields.payload_json) : fields, files };
  }
  try {
    return { body: JSON.parse(raw.toString('utf8')), files: [] };
  } catch {
    return { body: raw.toString('utf8'), files: [] };
  }
}
