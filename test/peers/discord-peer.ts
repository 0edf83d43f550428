import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import {
  channelObject,
  type DiscordChannelSeed,
  type DiscordGuildSeed,
  type DiscordMemberSeed,
  type DiscordRoleSeed,
  type DiscordUserSeed,
  guildCreateObject,
  interactionToken,
  memberObject,
  messageObject,
  snowflake,
  userObject,
} from './discord-fixtures.js';
import { DiscordGateway, type GatewayConnectionInfo, type GatewayFrame } from './discord-gateway.js';
import { type DiscordRoute, discordRoutes, type RestReply } from './discord-rest.js';
import {
  closeServer,
  listenLoopback,
  parseMultipart,
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
export { DISCORD_LIMITS, type DiscordErrorBody } from './discord-validate.js';

/** Fixed ids of the default world, so tests can name them. */
export const DISCORD_IDS = {
  application: '1200000000000000001',
  bot: '1200000000000000001',
  guild: '1200000000000000100',
  channel: '1200000000000000200',
  otherChannel: '1200000000000000201',
  adminRole: '1200000000000000300',
  admin: '1200000000000000400',
  outsider: '1200000000000000401',
} as const;

export interface DiscordPeerOptions {
  /** The bot token discord.js logs in with. Default 'hv-discord-test-token'. */
  token?: string;
  applicationId?: string;
  /** The bot user (id defaults to the application id, as on Discord). */
  botUser?: Partial<DiscordUserSeed>;
  /** The one guild the bot is in; default has channels #ops and #general, role hv-admin and two users. */
  guild?: Partial<Omit<DiscordGuildSeed, 'ownerId'>>;
  /** HELLO's heartbeat_interval. Default 41250 (Discord's usual). */
  heartbeatIntervalMs?: number;
  /** Interaction callbacks later than this answer 10062 Unknown interaction. Default 3000. */
  interactionDeadlineMs?: number;
}

/** One REST request the app made. */
export interface DiscordRestCall {
  method: string;
  /** Without the `/api/v10` prefix, e.g. `/channels/123/messages`. */
  path: string;
  query: Record<string, string>;
  /** JSON body, or `payload_json` of a multipart body. */
  body: unknown;
  files: { field: string; name: string; size: number }[];
  /** Whether it carried the right `Authorization: Bot <token>`. */
  authorized: boolean;
  status: number;
  response: unknown;
  at: number;
}

/** A failure to serve instead of the real answer (see {@link DiscordPeer.failNext}). */
export interface DiscordFailure {
  status: number;
  /** Seconds, for 429 (may be fractional). Default 1. */
  retryAfter?: number;
  /** For 429: a global rate limit (adds `X-RateLimit-Global`). */
  global?: boolean;
  /** Replaces the default error body. */
  body?: Record<string, unknown>;
  /** How many matching requests fail. Default 1. */
  times?: number;
}

/** What a test gives to deliver an interaction; the rest is filled in like Discord does. */
export interface InteractionInput {
  /** 2 application command, 3 message component, 4 autocomplete, 5 modal submit. */
  type: 2 | 3 | 4 | 5;
  /** For type 2 at least `{ name }`; for type 3 at least `{ custom_id }`. */
  data?: Record<string, unknown>;
  /** The invoking member; default the admin user with the hv-admin role. */
  member?: { user: DiscordUserSeed; roles?: string[]; permissions?: string };
  /** For a DM interaction (set `guild_id: null`). */
  user?: DiscordUserSeed;
  /** Default the peer's guild; `null` for a DM. */
  guild_id?: string | null;
  channel_id?: string;
  /** For components: the message the component is on (default a bot message in the channel). */
  message?: Record<string, unknown>;
  locale?: string;
}

/** An interaction the peer delivered. */
export interface SentInteraction {
  id: string;
  token: string;
  type: number;
  payload: Record<string, unknown>;
  /** `performance.now()` when INTERACTION_CREATE went out. */
  sentAt: number;
}

/** One POST to /interactions/:id/:token/callback. */
export interface InteractionCallback {
  interactionId: string;
  /** 4 reply, 5 defer, 6 deferred update, 7 update, 8 autocomplete, 9 modal. */
  type: number;
  data: Record<string, unknown> | undefined;
  /** From INTERACTION_CREATE to this callback. */
  latencyMs: number;
  at: number;
  accepted: boolean;
}

/** A message the app created, through a channel, an interaction response or a follow-up. */
export interface DiscordMessageRecord {
  id: string;
  channelId: string;
  source: 'channel' | 'interaction' | 'followup' | 'component';
  interactionId: string | undefined;
  /** The message object as Discord would return it (updated on edit). */
  wire: Record<string, unknown>;
  edits: number;
  deleted: boolean;
}

/** A PUT of application commands. */
export interface CommandWrite {
  guildId: string | null;
  commands: Record<string, unknown>[];
  at: number;
}

/** Internal view the REST routes work on. */
export interface InteractionState extends SentInteraction {
  responded: boolean;
  originalMessageId: string | undefined;
  channelId: string;
  guildId: string | undefined;
}

/**
 * A loopback Discord: REST API and gateway, enough for the real discord.js 14 to log in with
 * `rest: { api: peer.apiUrl }`, receive interactions and answer them.
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

  private readonly server: Server;
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly failures: { pattern: string | RegExp; failure: DiscordFailure; left: number }[] = [];
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
    const state = this.buildInteraction(input);
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

  private buildInteraction(input: InteractionInput): InteractionState {
    const id = snowflake();
    const guildId = input.guild_id === undefined ? this.guild.id : (input.guild_id ?? undefined);
    const channelId = input.channel_id ?? this.channelId;
    const payload: Record<string, unknown> = {
      id,
      application_id: this.applicationId,
      type: input.type,
      token: interactionToken(),
      version: 1,
      channel_id: channelId,
      channel: this.channelObject(channelId) ?? { id: channelId, type: guildId ? 0 : 1 },
      app_permissions: '2248473465835073',
      locale: input.locale ?? 'en-US',
      entitlements: [],
      authorizing_integration_owners: guildId
        ? { '0': guildId }
        : { '1': input.user?.id ?? DISCORD_IDS.admin },
      context: guildId ? 0 : 1,
      attachment_size_limit: 10_485_760,
      data: this.interactionData(input, guildId),
    };
    if (guildId) {
      const seed = input.member ?? this.guild.members.find((m) => m.user.id === DISCORD_IDS.admin);
      const member = seed ?? { user: { id: DISCORD_IDS.admin } };
      payload.guild_id = guildId;
      payload.guild_locale = 'en-US';
      payload.guild = { id: guildId, locale: 'en-US', features: [] };
      payload.member = memberObject(member, { permissions: input.member?.permissions ?? '0' });
    } else {
      payload.user = userObject(input.user ?? { id: DISCORD_IDS.admin });
    }
    if (input.type === 3) payload.message = this.componentMessage(input, channelId);
    return {
      id,
      token: String(payload.token),
      type: input.type,
      payload,
      sentAt: 0,
      responded: false,
      originalMessageId: input.type === 3 ? String((payload.message as { id: string }).id) : undefined,
      channelId,
      guildId,
    };
  }

  private interactionData(input: InteractionInput, guildId: string | undefined): Record<string, unknown> {
    const data = input.data ?? {};
    if (input.type === 3) return { component_type: 2, custom_id: 'hv', ...data };
    if (input.type === 2 || input.type === 4) {
      const name = String(data.name ?? 'hv');
      const known = [...(this.commands.get(guildId ?? '') ?? []), ...(this.commands.get('') ?? [])].find(
        (c) => c.name === name,
      );
      return {
        id: known?.id ?? snowflake(),
        name,
        type: 1,
        ...(guildId ? { guild_id: guildId } : {}),
        ...data,
      };
    }
    return data;
  }

  private componentMessage(input: InteractionInput, channelId: string): Record<string, unknown> {
    const given = input.message;
    const existing = given?.id ? this.messages.find((m) => m.id === given.id) : undefined;
    if (existing) return existing.wire;
    const wire = { ...this.botMessage(channelId, { content: '' }), ...given };
    this.messages.push({
      id: String(wire.id),
      channelId,
      source: 'component',
      interactionId: undefined,
      wire,
      edits: 0,
      deleted: false,
    });
    return wire;
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
    if (reply.body === undefined) {
      res.writeHead(reply.status, reply.headers ?? {});
      res.end();
    } else {
      sendJson(res, reply.status, reply.body, reply.headers);
    }
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

function defaultGuild(
  bot: DiscordUserSeed,
  given: Partial<Omit<DiscordGuildSeed, 'ownerId'>>,
): DiscordGuildSeed {
  const channels: DiscordChannelSeed[] = given.channels ?? [
    { id: DISCORD_IDS.channel, name: 'ops' },
    { id: DISCORD_IDS.otherChannel, name: 'general' },
  ];
  const roles: DiscordRoleSeed[] = given.roles ?? [
    { id: DISCORD_IDS.adminRole, name: 'hv-admin', permissions: '0' },
  ];
  const members: DiscordMemberSeed[] = given.members ?? [
    { user: { id: DISCORD_IDS.admin, username: 'admin' }, roles: [DISCORD_IDS.adminRole] },
    { user: { id: DISCORD_IDS.outsider, username: 'outsider' }, roles: [] },
  ];
  if (!members.some((m) => m.user.id === bot.id)) members.unshift({ user: bot, roles: [] });
  return {
    id: given.id ?? DISCORD_IDS.guild,
    name: given.name ?? 'hv-test',
    ownerId: DISCORD_IDS.admin,
    channels,
    roles,
    members,
  };
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
