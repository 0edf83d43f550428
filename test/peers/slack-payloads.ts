import { randomUUID } from 'node:crypto';

/** The workspace a SlackPeer pretends to be; ids appear in every payload it sends. */
export interface SlackWorkspace {
  teamId: string;
  teamDomain: string;
  appId: string;
  botUserId: string;
  botId: string;
  /** Default user for slash commands and button clicks. */
  userId: string;
  userName: string;
  /** Default channel for slash commands and button clicks. */
  channelId: string;
  channelName: string;
}

export const defaultWorkspace: SlackWorkspace = {
  teamId: 'T0HVTEST',
  teamDomain: 'hv-test',
  appId: 'A0HVAPP',
  botUserId: 'U0HVBOT',
  botId: 'B0HVBOT',
  userId: 'U0ADMIN',
  userName: 'admin',
  channelId: 'C0OPS',
  channelName: 'ops',
};

/** The form fields Slack sends for a slash command (all strings, as on the wire). */
export interface SlashCommandPayload {
  token: string;
  team_id: string;
  team_domain: string;
  channel_id: string;
  channel_name: string;
  user_id: string;
  user_name: string;
  command: string;
  text: string;
  api_app_id: string;
  is_enterprise_install: string;
  response_url: string;
  trigger_id: string;
  [field: string]: string;
}

/** Fills in what a test leaves out of a slash command. */
export function buildSlashCommand(
  ws: SlackWorkspace,
  fields: Partial<SlashCommandPayload>,
  responseUrl: string,
): SlashCommandPayload {
  return {
    token: 'verification-token-unused',
    team_id: ws.teamId,
    team_domain: ws.teamDomain,
    channel_id: ws.channelId,
    channel_name: ws.channelName,
    user_id: ws.userId,
    user_name: ws.userName,
    command: '/hv',
    text: '',
    api_app_id: ws.appId,
    is_enterprise_install: 'false',
    response_url: responseUrl,
    trigger_id: triggerId(),
    ...definedOnly(fields),
  };
}

/** One element of a block_actions payload's `actions`. */
export interface BlockActionInput {
  action_id: string;
  value?: string;
  block_id?: string;
  type?: string;
  [field: string]: unknown;
}

/** What a test may give for an interactive payload; everything else gets a default. */
export interface InteractiveInput {
  type?: string;
  actions?: BlockActionInput[];
  user?: { id: string; team_id?: string; username?: string; name?: string };
  channel?: { id: string; name?: string };
  message?: Record<string, unknown>;
  [field: string]: unknown;
}

/** Builds a block_actions (button click) payload as Slack sends it. */
export function buildInteractive(
  ws: SlackWorkspace,
  input: InteractiveInput,
  responseUrl: string,
): Record<string, unknown> {
  const now = (Date.now() / 1000).toFixed(6);
  const channel = input.channel ?? { id: ws.channelId, name: ws.channelName };
  const message = input.message ?? {
    type: 'message',
    user: ws.botUserId,
    bot_id: ws.botId,
    ts: now,
    text: '',
  };
  const actions = (input.actions ?? []).map((action) => ({
    type: 'button',
    block_id: 'hv-block',
    action_ts: now,
    text: { type: 'plain_text', text: action.action_id, emoji: true },
    ...action,
  }));
  return {
    type: 'block_actions',
    token: 'verification-token-unused',
    api_app_id: ws.appId,
    trigger_id: triggerId(),
    is_enterprise_install: false,
    enterprise: null,
    team: { id: ws.teamId, domain: ws.teamDomain },
    container: {
      type: 'message',
      message_ts: String(message.ts ?? now),
      channel_id: channel.id,
      is_ephemeral: false,
    },
    channel,
    message,
    response_url: responseUrl,
    state: { values: {} },
    ...input,
    user: {
      id: ws.userId,
      username: ws.userName,
      name: ws.userName,
      team_id: ws.teamId,
      ...input.user,
    },
    actions,
  };
}

/** Builds an events_api payload around one event. */
export function buildEventCallback(
  ws: SlackWorkspace,
  event: Record<string, unknown>,
): Record<string, unknown> {
  return {
    token: 'verification-token-unused',
    team_id: ws.teamId,
    api_app_id: ws.appId,
    event: { event_ts: (Date.now() / 1000).toFixed(6), ...event },
    type: 'event_callback',
    event_id: `Ev${randomUUID().replaceAll('-', '').slice(0, 10).toUpperCase()}`,
    event_time: Math.floor(Date.now() / 1000),
    authorizations: [
      {
        enterprise_id: null,
        team_id: ws.teamId,
        user_id: ws.botUserId,
        is_bot: true,
        is_enterprise_install: false,
      },
    ],
    is_ext_shared_channel: false,
  };
}

function triggerId(): string {
  return `${Date.now()}.${Math.floor(Math.random() * 1e12)}.${randomUUID().replaceAll('-', '')}`;
}

function definedOnly<T extends Record<string, unknown>>(fields: T): Partial<T> {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as Partial<T>;
}
