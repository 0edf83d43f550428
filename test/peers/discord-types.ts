import type { DiscordGuildSeed, DiscordUserSeed } from './discord-fixtures.js';

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
