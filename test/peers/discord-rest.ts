import { snowflake, userObject } from './discord-fixtures.js';
import type { DiscordPeer } from './discord-peer.js';
import type { DiscordMessageRecord, DiscordRestCall, InteractionState } from './discord-types.js';
import { validateMessageBody } from './discord-validate.js';

/** An HTTP answer; `body` undefined means no body (204). */
export interface RestReply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

type Params = Record<string, string>;
type Json = Record<string, unknown>;

/** One REST route of the peer. */
export interface DiscordRoute {
  method: string;
  pattern: RegExp;
  /** Needs `Authorization: Bot <token>` (interaction callbacks and webhooks do not). */
  auth: boolean;
  handle(params: Params, call: DiscordRestCall): RestReply;
}

/** Interaction webhook tokens last 15 minutes on Discord. */
const WEBHOOK_TOKEN_TTL_MS = 15 * 60_000;
const LOADING = 1 << 7;
const EPHEMERAL = 1 << 6;

const err = (status: number, code: number, message: string): RestReply => ({
  status,
  body: { message, code },
});
const ok = (body: unknown): RestReply => ({ status: 200, body });
const noContent: RestReply = { status: 204 };

/** The REST API of a DiscordPeer, as a route table. */
export function discordRoutes(peer: DiscordPeer): DiscordRoute[] {
  const routes: DiscordRoute[] = [];
  const add = (method: string, path: string, auth: boolean, handle: DiscordRoute['handle']): void => {
    const source = path.replace(/:(\w+)/g, '(?<$1>[^/]+)');
    routes.push({ method, pattern: new RegExp(`^${source}$`), auth, handle });
  };
  const asJson = (call: DiscordRestCall): Json =>
    call.body && typeof call.body === 'object' && !Array.isArray(call.body) ? (call.body as Json) : {};

  const gatewayInfo = () => ({
    url: peer.gatewayUrl,
    shards: 1,
    session_start_limit: { total: 1000, remaining: 999, reset_after: 14_400_000, max_concurrency: 1 },
  });
  add('GET', '/gateway/bot', true, () => ok(gatewayInfo()));
  add('GET', '/gateway', false, () => ok({ url: peer.gatewayUrl }));
  const botUser = () => ({
    ...userObject(peer.botUser),
    bot: true,
    verified: true,
    mfa_enabled: false,
    flags: 0,
  });
  add('GET', '/users/@me', true, () => ok(botUser()));
  add('POST', '/users/@me/channels', true, (_, call) => {
    const dm = peer.openDm(String(asJson(call).recipient_id ?? ''));
    return dm ? ok(dm) : err(400, 50033, 'Invalid Recipient(s)');
  });
  add('GET', '/users/:userId', true, ({ userId = '' }) => {
    const user = peer.knownUser(userId);
    return user ? ok(userObject(user)) : err(404, 10013, 'Unknown User');
  });
  const application = () =>
    ok({
      id: peer.applicationId,
      name: peer.botUser.username,
      icon: null,
      description: '',
      bot_public: false,
      bot_require_code_grant: false,
      verify_key: '0'.repeat(64),
      flags: 0,
      team: null,
      owner: { id: peer.guild.ownerId, username: 'admin', discriminator: '0', avatar: null },
      bot: botUser(),
    });
  add('GET', '/applications/@me', true, application);
  add('GET', '/oauth2/applications/@me', true, application);

  // Guild and channels.
  add('GET', '/guilds/:guildId', true, ({ guildId }) =>
    guildId === peer.guild.id
      ? ok({ id: peer.guild.id, name: peer.guild.name })
      : err(404, 10004, 'Unknown Guild'),
  );
  add('GET', '/guilds/:guildId/members/:userId', true, ({ guildId, userId }) => {
    const member =
      guildId === peer.guild.id ? peer.guild.members.find((m) => m.user.id === userId) : undefined;
    if (!member) return err(404, 10007, 'Unknown Member');
    return ok({
      user: {
        id: member.user.id,
        username: member.user.username ?? member.user.id,
        discriminator: '0',
        avatar: null,
      },
      roles: member.roles ?? [],
      joined_at: '2024-01-01T00:00:00.000000+00:00',
      deaf: false,
      mute: false,
      flags: 0,
    });
  });
  add('GET', '/channels/:channelId', true, ({ channelId }) => {
    const channel = peer.channelObject(channelId ?? '');
    return channel ? ok(channel) : err(404, 10003, 'Unknown Channel');
  });
  add('POST', '/channels/:channelId/typing', true, ({ channelId }) =>
    peer.channelObject(channelId ?? '') ? noContent : err(404, 10003, 'Unknown Channel'),
  );
  add('POST', '/channels/:channelId/messages', true, ({ channelId = '' }, call) => {
    if (!peer.channelObject(channelId)) return err(404, 10003, 'Unknown Channel');
    const body = asJson(call);
    const invalid = validateMessageBody(body, call.files.length === 0);
    if (invalid) return { status: 400, body: invalid };
    // enforce_nonce: a repeat of a recent nonce returns the first message instead of a new one.
    const nonce =
      typeof body.nonce === 'string' || typeof body.nonce === 'number' ? String(body.nonce) : undefined;
    const repeat =
      nonce && body.enforce_nonce === true
        ? peer.messagesIn(channelId).find((m) => m.wire.nonce === nonce)
        : undefined;
    if (repeat) return ok(repeat.wire);
    const record = createMessage(peer, channelId, 'channel', undefined, peer.botMessage(channelId, body));
    if (nonce) record.wire.nonce = nonce;
    return ok(record.wire);
  });
  add('GET', '/channels/:channelId/messages/:messageId', true, ({ channelId, messageId }) => {
    const record = findMessage(peer, messageId, channelId);
    return record ? ok(record.wire) : err(404, 10008, 'Unknown Message');
  });
  add('PATCH', '/channels/:channelId/messages/:messageId', true, ({ channelId, messageId }, call) =>
    editMessage(findMessage(peer, messageId, channelId), asJson(call)),
  );
  add('DELETE', '/channels/:channelId/messages/:messageId', true, ({ channelId, messageId }) =>
    deleteMessage(findMessage(peer, messageId, channelId)),
  );

  // Application commands.
  const putCommands = (guildId: string | null, call: DiscordRestCall): RestReply => {
    if (!Array.isArray(call.body)) return err(400, 50035, 'Invalid Form Body');
    const previous = peer.commands.get(guildId ?? '') ?? [];
    const commands = (call.body as Json[]).map((command) => ({
      id: previous.find((p) => p.name === command.name)?.id ?? snowflake(),
      application_id: peer.applicationId,
      version: snowflake(),
      type: 1,
      description: '',
      options: [],
      default_member_permissions: null,
      nsfw: false,
      ...(guildId ? { guild_id: guildId } : {}),
      ...command,
    }));
    peer.commands.set(guildId ?? '', commands);
    peer.commandWrites.push({ guildId, commands, at: Date.now() });
    return ok(commands);
  };
  const checkApp = (appId: string | undefined): RestReply | undefined =>
    appId === peer.applicationId ? undefined : err(403, 50001, 'Missing Access');
  add(
    'PUT',
    '/applications/:appId/commands',
    true,
    ({ appId }, call) => checkApp(appId) ?? putCommands(null, call),
  );
  add(
    'GET',
    '/applications/:appId/commands',
    true,
    ({ appId }) => checkApp(appId) ?? ok(peer.commands.get('') ?? []),
  );
  add('PUT', '/applications/:appId/guilds/:guildId/commands', true, ({ appId, guildId = '' }, call) => {
    if (guildId !== peer.guild.id) return err(403, 50001, 'Missing Access');
    return checkApp(appId) ?? putCommands(guildId, call);
  });
  add(
    'GET',
    '/applications/:appId/guilds/:guildId/commands',
    true,
    ({ appId, guildId = '' }) => checkApp(appId) ?? ok(peer.commands.get(guildId) ?? []),
  );

  // Interactions: the callback, then the interaction webhook (no bot auth on either).
  add('POST', '/interactions/:interactionId/:token/callback', false, ({ interactionId = '', token }, call) =>
    interactionCallback(peer, interactionId, token, call),
  );
  const webhook = (
    appId: string | undefined,
    token: string | undefined,
    then: (interaction: InteractionState) => RestReply,
  ): RestReply => {
    if (appId !== peer.applicationId) return err(404, 10015, 'Unknown Webhook');
    const interaction = [...peer.interactions.values()].find((i) => i.token === token);
    if (!interaction || performance.now() - interaction.sentAt > WEBHOOK_TOKEN_TTL_MS) {
      return err(401, 50027, 'Invalid Webhook Token');
    }
    return then(interaction);
  };
  const webhookMessage = (interaction: InteractionState, messageId: string | undefined) => {
    const id = messageId === '@original' ? interaction.originalMessageId : messageId;
    const record = findMessage(peer, id);
    return record && (record.interactionId === interaction.id || id === interaction.originalMessageId)
      ? record
      : undefined;
  };
  add('POST', '/webhooks/:appId/:token', false, ({ appId, token }, call) =>
    webhook(appId, token, (interaction) => {
      if (!interaction.responded) return err(404, 10015, 'Unknown Webhook');
      const body = asJson(call);
      const invalid = validateMessageBody(body, call.files.length === 0);
      if (invalid) return { status: 400, body: invalid };
      const wire = peer.botMessage(interaction.channelId, body, {
        webhookId: peer.applicationId,
        applicationId: peer.applicationId,
      });
      const record = createMessage(peer, interaction.channelId, 'followup', interaction.id, wire);
      return call.query.wait === 'true' ? ok(record.wire) : noContent;
    }),
  );
  add('GET', '/webhooks/:appId/:token/messages/:messageId', false, ({ appId, token, messageId }) =>
    webhook(appId, token, (interaction) => {
      const record = webhookMessage(interaction, messageId);
      return record && !record.deleted ? ok(record.wire) : err(404, 10008, 'Unknown Message');
    }),
  );
  add('PATCH', '/webhooks/:appId/:token/messages/:messageId', false, ({ appId, token, messageId }, call) =>
    webhook(appId, token, (interaction) => editMessage(webhookMessage(interaction, messageId), asJson(call))),
  );
  add('DELETE', '/webhooks/:appId/:token/messages/:messageId', false, ({ appId, token, messageId }) =>
    webhook(appId, token, (interaction) => deleteMessage(webhookMessage(interaction, messageId))),
  );
  return routes;
}

function interactionCallback(
  peer: DiscordPeer,
  interactionId: string,
  token: string | undefined,
  call: DiscordRestCall,
): RestReply {
  const interaction = peer.interactions.get(interactionId);
  const body = (call.body ?? {}) as { type?: unknown; data?: Json };
  const type = typeof body.type === 'number' ? body.type : -1;
  const latencyMs = interaction ? performance.now() - interaction.sentAt : Number.NaN;
  const record = { interactionId, type, data: body.data, latencyMs, at: Date.now(), accepted: false };
  peer.callbacks.push(record);
  if (!interaction || interaction.token !== token || latencyMs > peer.interactionDeadlineMs) {
    return err(404, 10062, 'Unknown interaction');
  }
  if (interaction.responded) return err(400, 40060, 'Interaction has already been acknowledged.');
  const data = body.data ?? {};
  if (type === 4 || type === 7) {
    const invalid = validateMessageBody(data, type === 4);
    if (invalid) return { status: 400, body: invalid };
  }
  let message: DiscordMessageRecord | undefined;
  if (type === 4 || type === 5) {
    const flags = (typeof data.flags === 'number' ? data.flags : 0) | (type === 5 ? LOADING : 0);
    const wire = peer.botMessage(interaction.channelId, type === 5 ? { flags } : { ...data, flags }, {
      type: interaction.type === 2 ? 20 : 0,
      webhookId: peer.applicationId,
      applicationId: peer.applicationId,
      interaction: {
        id: interaction.id,
        type: interaction.type,
        user: { id: invokerId(interaction) },
      },
    });
    message = createMessage(peer, interaction.channelId, 'interaction', interaction.id, wire);
    interaction.originalMessageId = message.id;
  } else if (type === 6 || type === 7) {
    message = findMessage(peer, interaction.originalMessageId);
    if (type === 7 && message) editMessage(message, data);
  } else if (type !== 8 && type !== 9 && type !== 12) {
    return {
      status: 400,
      body: { code: 50035, message: 'Invalid Form Body', errors: { type: { _errors: [] } } },
    };
  }
  interaction.responded = true;
  record.accepted = true;
  if (call.query.with_response !== 'true') return noContent;
  return ok({
    interaction: {
      id: interaction.id,
      type: interaction.type,
      activity_instance_id: null,
      response_message_id: message?.id ?? null,
      response_message_loading: type === 5,
      response_message_ephemeral: message ? ((message.wire.flags as number) & EPHEMERAL) !== 0 : false,
    },
    resource: { type, ...(message ? { message: message.wire } : {}) },
  });
}

function invokerId(interaction: InteractionState): string {
  const member = interaction.payload.member as { user?: { id?: string } } | undefined;
  const user = interaction.payload.user as { id?: string } | undefined;
  return member?.user?.id ?? user?.id ?? '0';
}

function createMessage(
  peer: DiscordPeer,
  channelId: string,
  source: DiscordMessageRecord['source'],
  interactionId: string | undefined,
  wire: Json,
): DiscordMessageRecord {
  const record: DiscordMessageRecord = {
    id: String(wire.id),
    channelId,
    source,
    interactionId,
    wire,
    edits: 0,
    deleted: false,
  };
  peer.messages.push(record);
  return record;
}

function findMessage(
  peer: DiscordPeer,
  messageId: string | undefined,
  channelId?: string,
): DiscordMessageRecord | undefined {
  return peer.messages.find(
    (m) => m.id === messageId && !m.deleted && (channelId === undefined || m.channelId === channelId),
  );
}

function editMessage(record: DiscordMessageRecord | undefined, body: Json): RestReply {
  if (!record) return err(404, 10008, 'Unknown Message');
  const invalid = validateMessageBody(body, false);
  if (invalid) return { status: 400, body: invalid };
  for (const key of ['content', 'embeds', 'components', 'attachments', 'allowed_mentions'] as const) {
    if (body[key] !== undefined) record.wire[key] = body[key];
  }
  const flags = typeof record.wire.flags === 'number' ? record.wire.flags : 0;
  record.wire.flags = (typeof body.flags === 'number' ? body.flags : flags) & ~LOADING;
  record.wire.edited_timestamp = new Date().toISOString();
  record.edits += 1;
  return ok(record.wire);
}

function deleteMessage(record: DiscordMessageRecord | undefined): RestReply {
  if (!record) return err(404, 10008, 'Unknown Message');
  record.deleted = true;
  return noContent;
}
