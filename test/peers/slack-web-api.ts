import { parseMultipart } from './http-util.js';
import type { SlackWorkspace } from './slack-payloads.js';
import type { SlackFailure } from './slack-types.js';

/** A message the app posted (or posted ephemerally) through the Web API. */
export interface SlackPostedMessage {
  channel: string;
  ts: string;
  text: string | undefined;
  blocks: unknown[] | undefined;
  threadTs: string | undefined;
  /** Set for chat.postEphemeral: the only user who sees it. */
  ephemeralTo: string | undefined;
  /** How many times chat.update changed it. */
  updates: number;
  /** Message metadata (`{ event_type, event_payload }`) the app attached, if any. */
  metadata: { event_type: string; event_payload: Record<string, unknown> } | undefined;
  postedAt: number;
}

/** What the Web API methods read and change. */
export interface SlackApiState {
  workspace: SlackWorkspace;
  botTokens: ReadonlySet<string>;
  appTokens: ReadonlySet<string>;
  /** When set, other channel ids answer `channel_not_found`. */
  channels: ReadonlySet<string> | undefined;
  messages: SlackPostedMessage[];
  /** Issues a one-use Socket Mode URL. */
  issueSocketUrl(): string;
  nextTs(): string;
}

type Body = Record<string, unknown>;
type Method = (state: SlackApiState, body: Body, token: string) => Body;

const MAX_TEXT = 40_000;
const MAX_BLOCKS = 50;

/** Answers one Web API call the way slack.com does (HTTP 200, `ok` in the body). */
export function callSlackMethod(
  state: SlackApiState,
  method: string,
  body: Body,
  token: string | undefined,
): Body {
  if (token === undefined || token === '') return { ok: false, error: 'not_authed' };
  if (method === 'apps.connections.open') {
    if (state.appTokens.has(token)) return { ok: true, url: state.issueSocketUrl() };
    return { ok: false, error: state.botTokens.has(token) ? 'not_allowed_token_type' : 'invalid_auth' };
  }
  if (!state.botTokens.has(token)) {
    return { ok: false, error: state.appTokens.has(token) ? 'not_allowed_token_type' : 'invalid_auth' };
  }
  const handler = methods[method];
  return handler ? handler(state, body, token) : { ok: false, error: 'unknown_method' };
}

const methods: Record<string, Method> = {
  'auth.test': (state) => ({
    ok: true,
    url: `https://${state.workspace.teamDomain}.slack.com/`,
    team: state.workspace.teamDomain,
    user: 'hv-bot',
    team_id: state.workspace.teamId,
    user_id: state.workspace.botUserId,
    bot_id: state.workspace.botId,
    is_enterprise_install: false,
  }),

  'chat.postMessage': (state, body) => {
    const problem = checkMessage(state, body);
    if (problem) return { ok: false, error: problem };
    const message = record(state, body, undefined);
    return { ok: true, channel: message.channel, ts: message.ts, message: wireMessage(state, message) };
  },

  'chat.postEphemeral': (state, body) => {
    const problem = checkMessage(state, body);
    if (problem) return { ok: false, error: problem };
    if (typeof body.user !== 'string' || body.user === '') return { ok: false, error: 'user_not_in_channel' };
    const message = record(state, body, body.user);
    return { ok: true, message_ts: message.ts };
  },

  'chat.update': (state, body) => {
    const channel = String(body.channel ?? '');
    const message = state.messages.find(
      (m) => m.channel === channel && m.ts === body.ts && m.ephemeralTo === undefined,
    );
    if (!message)
      return { ok: false, error: channelKnown(state, channel) ? 'message_not_found' : 'channel_not_found' };
    const problem = checkContent(body, false);
    if (problem) return { ok: false, error: problem };
    if (typeof body.text === 'string') message.text = body.text;
    if (Array.isArray(body.blocks)) message.blocks = body.blocks;
    message.updates += 1;
    return { ok: true, channel, ts: message.ts, text: message.text, message: wireMessage(state, message) };
  },

  'chat.delete': (state, body) => {
    const index = state.messages.findIndex((m) => m.channel === body.channel && m.ts === body.ts);
    if (index < 0) return { ok: false, error: 'message_not_found' };
    state.messages.splice(index, 1);
    return { ok: true, channel: body.channel, ts: body.ts };
  },

  // Top-level messages of a channel, newest first; metadata only with `include_all_metadata`.
  'conversations.history': (state, body) => {
    const channel = String(body.channel ?? '');
    if (!channelKnown(state, channel)) return { ok: false, error: 'channel_not_found' };
    const limit = Math.min(Math.max(Number(body.limit ?? 100) || 100, 1), 999);
    const offset = body.cursor ? Number(Buffer.from(String(body.cursor), 'base64').toString('utf8')) : 0;
    if (!Number.isInteger(offset) || offset < 0) return { ok: false, error: 'invalid_cursor' };
    const withMetadata = body.include_all_metadata === true || body.include_all_metadata === 'true';
    const all = state.messages
      .filter(
        (m) =>
          m.channel === channel &&
          m.ephemeralTo === undefined &&
          (m.threadTs === undefined || m.threadTs === m.ts),
      )
      .reverse();
    const page = all.slice(offset, offset + limit);
    const more = offset + limit < all.length;
    return {
      ok: true,
      messages: page.map((m) => ({
        ...wireMessage(state, m),
        ...(withMetadata && m.metadata ? { metadata: m.metadata } : {}),
      })),
      has_more: more,
      pin_count: 0,
      response_metadata: {
        next_cursor: more ? Buffer.from(String(offset + limit)).toString('base64') : '',
      },
    };
  },

  'conversations.info': (state, body) => {
    const channel = String(body.channel ?? '');
    if (!channelKnown(state, channel)) return { ok: false, error: 'channel_not_found' };
    const name = channel === state.workspace.channelId ? state.workspace.channelName : channel.toLowerCase();
    return {
      ok: true,
      channel: {
        id: channel,
        name,
        is_channel: true,
        is_private: false,
        is_member: true,
        is_archived: false,
      },
    };
  },

  'conversations.open': (_state, body) => {
    const users = String(body.users ?? '')
      .split(',')
      .filter(Boolean);
    if (users.length !== 1 || !/^[UW][A-Z0-9]+$/.test(users[0] ?? ''))
      return { ok: false, error: 'user_not_found' };
    return { ok: true, channel: { id: `D${users[0]?.slice(1)}`, is_im: true } };
  },

  'users.info': (state, body) => {
    const user = String(body.user ?? '');
    if (!/^[UW][A-Z0-9]+$/.test(user)) return { ok: false, error: 'user_not_found' };
    return {
      ok: true,
      user: {
        id: user,
        team_id: state.workspace.teamId,
        name: user.toLowerCase(),
        deleted: false,
        is_bot: false,
      },
    };
  },
};

function channelKnown(state: SlackApiState, channel: string): boolean {
  if (channel === '') return false;
  // DMs (D…) and user ids (U…, which Slack turns into the DM) always exist.
  if (/^[DU][A-Z0-9]+$/.test(channel)) return true;
  return state.channels === undefined || state.channels.has(channel);
}

function checkMessage(state: SlackApiState, body: Body): string | undefined {
  if (!channelKnown(state, String(body.channel ?? ''))) return 'channel_not_found';
  if (body.metadata !== undefined && metadataOf(body) === undefined) return 'invalid_metadata_format';
  return checkContent(body, true);
}

/** Message metadata as Slack accepts it: an `event_type` name and an object `event_payload`. */
function metadataOf(body: Body): SlackPostedMessage['metadata'] {
  const m = body.metadata as Record<string, unknown> | undefined;
  if (!m || typeof m !== 'object') return undefined;
  const { event_type: type, event_payload: payload } = m;
  if (typeof type !== 'string' || !/^[A-Za-z0-9_]{1,255}$/.test(type)) return undefined;
  if (!payload || typeof payload !== 'object' || Array.isArray(payload)) return undefined;
  return { event_type: type, event_payload: payload as Record<string, unknown> };
}

function checkContent(body: Body, required: boolean): string | undefined {
  const hasText = typeof body.text === 'string' && body.text !== '';
  const hasBlocks = body.blocks !== undefined;
  if (required && !hasText && !hasBlocks && body.attachments === undefined) return 'no_text';
  if (hasBlocks && (!Array.isArray(body.blocks) || body.blocks.length > MAX_BLOCKS)) return 'invalid_blocks';
  if (typeof body.text === 'string' && body.text.length > MAX_TEXT) return 'msg_too_long';
  return undefined;
}

function record(state: SlackApiState, body: Body, ephemeralTo: string | undefined): SlackPostedMessage {
  const message: SlackPostedMessage = {
    channel: String(body.channel),
    ts: state.nextTs(),
    text: typeof body.text === 'string' ? body.text : undefined,
    blocks: Array.isArray(body.blocks) ? body.blocks : undefined,
    threadTs: typeof body.thread_ts === 'string' && body.thread_ts !== '' ? body.thread_ts : undefined,
    ephemeralTo,
    updates: 0,
    metadata: ephemeralTo === undefined ? metadataOf(body) : undefined,
    postedAt: Date.now(),
  };
  state.messages.push(message);
  return message;
}

function wireMessage(state: SlackApiState, message: SlackPostedMessage): Body {
  return {
    type: 'message',
    user: state.workspace.botUserId,
    bot_id: state.workspace.botId,
    app_id: state.workspace.appId,
    team: state.workspace.teamId,
    ts: message.ts,
    text: message.text ?? '',
    ...(message.blocks ? { blocks: message.blocks } : {}),
    ...(message.threadTs ? { thread_ts: message.threadTs } : {}),
  };
}

const JSON_FIELDS = new Set(['blocks', 'attachments', 'metadata', 'view', 'unfurls']);

/** The HTTP answer for an injected failure. */
export function failureResponse(failure: SlackFailure): {
  status: number;
  response: Record<string, unknown>;
  headers: Record<string, string>;
} {
  const status = failure.status ?? 200;
  if (status === 429) {
    return {
      status,
      response: { ok: false, error: failure.error ?? 'ratelimited' },
      headers: { 'retry-after': String(failure.retryAfter ?? 1) },
    };
  }
  return { status, response: { ok: false, error: failure.error ?? 'internal_error' }, headers: {} };
}

/** Decodes a Web API request body (form, JSON or multipart); JSON-valued fields are parsed. */
export async function decodeApiBody(contentType: string, raw: Buffer): Promise<Record<string, unknown>> {
  let fields: Record<string, unknown>;
  if (contentType.startsWith('application/json')) {
    fields = raw.length > 0 ? (JSON.parse(raw.toString('utf8')) as Record<string, unknown>) : {};
  } else if (contentType.startsWith('multipart/form-data')) {
    fields = (await parseMultipart(raw, contentType)).fields;
  } else {
    fields = Object.fromEntries(new URLSearchParams(raw.toString('utf8')));
  }
  for (const key of JSON_FIELDS) {
    const value = fields[key];
    if (typeof value !== 'string') continue;
    try {
      fields[key] = JSON.parse(value);
    } catch {
      // Not JSON: keep the string, as Slack would reject it with invalid_blocks and the like.
    }
  }
  return fields;
}
