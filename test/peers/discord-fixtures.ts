import { randomBytes } from 'node:crypto';

/** Discord's epoch (2015-01-01), the base of snowflake timestamps. */
const DISCORD_EPOCH = 1_420_070_400_000n;
let increment = 0n;

/** A fresh snowflake whose timestamp is now, so discord.js derives sensible creation dates. */
export function snowflake(): string {
  increment = (increment + 1n) & 0xfffn;
  return (((BigInt(Date.now()) - DISCORD_EPOCH) << 22n) | increment).toString();
}

/** An interaction token: long, opaque, unique. */
export function interactionToken(): string {
  return `aW50ZXJhY3Rpb24${randomBytes(48).toString('base64url')}`;
}

export interface DiscordUserSeed {
  id: string;
  username?: string;
  bot?: boolean;
}

export interface DiscordChannelSeed {
  id: string;
  name: string;
  /** 0 text (default), 2 voice, 4 category, 5 announcement. */
  type?: number;
}

export interface DiscordRoleSeed {
  id: string;
  name: string;
  /** Permission bitfield as a decimal string. Default '0'. */
  permissions?: string;
}

export interface DiscordMemberSeed {
  user: DiscordUserSeed;
  roles?: string[];
}

export interface DiscordGuildSeed {
  id: string;
  name: string;
  ownerId: string;
  channels: DiscordChannelSeed[];
  roles: DiscordRoleSeed[];
  members: DiscordMemberSeed[];
}

type Json = Record<string, unknown>;

/** The user object Discord sends. */
export function userObject(seed: DiscordUserSeed): Json {
  return {
    id: seed.id,
    username: seed.username ?? `user${seed.id.slice(-4)}`,
    discriminator: '0',
    global_name: null,
    avatar: null,
    bot: seed.bot ?? false,
    public_flags: 0,
  };
}

/** A guild member object. */
export function memberObject(seed: DiscordMemberSeed, extra: Json = {}): Json {
  return {
    user: userObject(seed.user),
    roles: seed.roles ?? [],
    nick: null,
    avatar: null,
    joined_at: '2024-01-01T00:00:00.000000+00:00',
    premium_since: null,
    deaf: false,
    mute: false,
    flags: 0,
    pending: false,
    communication_disabled_until: null,
    ...extra,
  };
}

/** A guild channel object. */
export function channelObject(guildId: string, seed: DiscordChannelSeed, position: number): Json {
  return {
    id: seed.id,
    type: seed.type ?? 0,
    guild_id: guildId,
    name: seed.name,
    position,
    permission_overwrites: [],
    topic: null,
    nsfw: false,
    parent_id: null,
    rate_limit_per_user: 0,
    last_message_id: null,
    flags: 0,
  };
}

function roleObject(seed: DiscordRoleSeed, position: number): Json {
  return {
    id: seed.id,
    name: seed.name,
    color: 0,
    colors: { primary_color: 0, secondary_color: null, tertiary_color: null },
    hoist: false,
    icon: null,
    unicode_emoji: null,
    position,
    permissions: seed.permissions ?? '0',
    managed: false,
    mentionable: false,
    flags: 0,
  };
}

/** The full GUILD_CREATE payload for a seed (the @everyone role is added, id = guild id). */
export function guildCreateObject(seed: DiscordGuildSeed): Json {
  const everyone: DiscordRoleSeed = { id: seed.id, name: '@everyone', permissions: '2248473465835073' };
  return {
    id: seed.id,
    name: seed.name,
    icon: null,
    splash: null,
    discovery_splash: null,
    owner_id: seed.ownerId,
    afk_channel_id: null,
    afk_timeout: 300,
    verification_level: 0,
    default_message_notifications: 0,
    explicit_content_filter: 0,
    features: [],
    mfa_level: 0,
    application_id: null,
    system_channel_id: null,
    system_channel_flags: 0,
    rules_channel_id: null,
    vanity_url_code: null,
    description: null,
    banner: null,
    premium_tier: 0,
    premium_subscription_count: 0,
    preferred_locale: 'en-US',
    public_updates_channel_id: null,
    nsfw_level: 0,
    premium_progress_bar_enabled: false,
    safety_alerts_channel_id: null,
    joined_at: '2024-01-01T00:00:00.000000+00:00',
    large: false,
    unavailable: false,
    member_count: seed.members.length,
    roles: [everyone, ...seed.roles].map(roleObject),
    emojis: [],
    stickers: [],
    channels: seed.channels.map((c, i) => channelObject(seed.id, c, i)),
    threads: [],
    members: seed.members.map((m) => memberObject(m)),
    presences: [],
    voice_states: [],
    stage_instances: [],
    guild_scheduled_events: [],
    soundboard_sounds: [],
  };
}

export interface MessageFields {
  id?: string;
  channelId: string;
  guildId?: string;
  author: DiscordUserSeed;
  body: Json;
  /** 0 default, 19 reply, 20 chat input command. */
  type?: number;
  webhookId?: string;
  applicationId?: string;
  interaction?: { id: string; user: DiscordUserSeed; name?: string; type: number };
}

/** A message object as Discord returns it, from the fields an app sent. */
export function messageObject(fields: MessageFields): Json {
  const body = fields.body;
  return {
    id: fields.id ?? snowflake(),
    type: fields.type ?? 0,
    channel_id: fields.channelId,
    ...(fields.guildId ? { guild_id: fields.guildId } : {}),
    author: userObject({ ...fields.author, bot: true }),
    content: typeof body.content === 'string' ? body.content : '',
    timestamp: new Date().toISOString(),
    edited_timestamp: null,
    tts: body.tts === true,
    mention_everyone: false,
    mentions: [],
    mention_roles: [],
    attachments: [],
    embeds: Array.isArray(body.embeds) ? body.embeds : [],
    components: Array.isArray(body.components) ? body.components : [],
    pinned: false,
    flags: typeof body.flags === 'number' ? body.flags : 0,
    ...(fields.webhookId ? { webhook_id: fields.webhookId } : {}),
    ...(fields.applicationId ? { application_id: fields.applicationId } : {}),
    ...(fields.interaction
      ? {
          interaction_metadata: {
            id: fields.interaction.id,
            type: fields.interaction.type,
            user: userObject(fields.interaction.user),
            authorizing_integration_owners: { '0': fields.guildId ?? '0' },
          },
        }
      : {}),
  };
}
