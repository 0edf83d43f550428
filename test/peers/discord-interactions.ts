import {
  type DiscordChannelSeed,
  type DiscordGuildSeed,
  type DiscordMemberSeed,
  type DiscordRoleSeed,
  type DiscordUserSeed,
  interactionToken,
  memberObject,
  snowflake,
  userObject,
} from './discord-fixtures.js';
import type { DiscordPeer } from './discord-peer.js';
import { DISCORD_IDS, type InteractionInput, type InteractionState } from './discord-types.js';

/** Builds INTERACTION_CREATE's payload as Discord fills it in, from what a test gave. */
export function buildInteraction(peer: DiscordPeer, input: InteractionInput): InteractionState {
  const id = snowflake();
  const guildId = input.guild_id === undefined ? peer.guild.id : (input.guild_id ?? undefined);
  const channelId = input.channel_id ?? peer.channelId;
  const payload: Record<string, unknown> = {
    id,
    application_id: peer.applicationId,
    type: input.type,
    token: interactionToken(),
    version: 1,
    channel_id: channelId,
    channel: peer.channelObject(channelId) ?? { id: channelId, type: guildId ? 0 : 1 },
    app_permissions: '2248473465835073',
    locale: input.locale ?? 'en-US',
    entitlements: [],
    authorizing_integration_owners: guildId ? { '0': guildId } : { '1': input.user?.id ?? DISCORD_IDS.admin },
    context: guildId ? 0 : 1,
    attachment_size_limit: 10_485_760,
    data: interactionData(peer, input, guildId),
  };
  if (guildId) {
    const seed = input.member ?? peer.guild.members.find((m) => m.user.id === DISCORD_IDS.admin);
    const member = seed ?? { user: { id: DISCORD_IDS.admin } };
    payload.guild_id = guildId;
    payload.guild_locale = 'en-US';
    payload.guild = { id: guildId, locale: 'en-US', features: [] };
    payload.member = memberObject(member, { permissions: input.member?.permissions ?? '0' });
  } else {
    payload.user = userObject(input.user ?? { id: DISCORD_IDS.admin });
  }
  if (input.type === 3) payload.message = componentMessage(peer, input, channelId);
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

function interactionData(
  peer: DiscordPeer,
  input: InteractionInput,
  guildId: string | undefined,
): Record<string, unknown> {
  const data = input.data ?? {};
  if (input.type === 3) return { component_type: 2, custom_id: 'hv', ...data };
  if (input.type === 2 || input.type === 4) {
    const name = String(data.name ?? 'hv');
    const known = [...(peer.commands.get(guildId ?? '') ?? []), ...(peer.commands.get('') ?? [])].find(
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

function componentMessage(
  peer: DiscordPeer,
  input: InteractionInput,
  channelId: string,
): Record<string, unknown> {
  const given = input.message;
  const existing = given?.id ? peer.messages.find((m) => m.id === given.id) : undefined;
  if (existing) return existing.wire;
  const wire = { ...peer.botMessage(channelId, { content: '' }), ...given };
  peer.messages.push({
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

/** The default guild (channels #ops and #general, role hv-admin, users admin and outsider), with overrides. */
export function defaultGuild(
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
