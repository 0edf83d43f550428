import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { channelTypes } from '../../../adapters/registry.js';
import { SlackAdapter } from '../../../adapters/slack/adapter.js';
import { SlackChannel } from '../../../adapters/slack/schema.js';
import { commandRegistry } from '../../../commands/index.js';
import { createCommandBus } from '../../../src/bus/bus.js';
import { parseConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import type { AdapterContext } from '../../../src/ports/channel.js';
import { ExecaRunner } from '../../../src/proc.js';
import { createServices, readSecret } from '../../../src/services.js';
import { buildSlashCommand } from '../../peers/slack-payloads.js';
import type { SlackAck, SlackPeer, SlackPostedMessage } from '../../peers/slack-peer.js';
import { poll } from '../chat-contract.js';

export const BOT_TOKEN = 'xoxb-hv-test';
export const APP_TOKEN = 'xapp-1-hv-test';
export const SIGNING_SECRET = 'hv-signing-secret-for-tests';
/** Commands are typed in the peer's default channel; notifications go to this one. */
export const NOTIFY_CHANNEL = 'C0NOTIFY';

/** Secret files and a Slack channel config pointing at the peer. */
export function slackChannelConfig(
  peer: SlackPeer,
  dir: string,
  extra: Partial<SlackChannel> & Record<string, unknown> = {},
): Record<string, unknown> {
  writeFileSync(join(dir, 'slack-bot'), `${BOT_TOKEN}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'slack-app'), `${APP_TOKEN}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'slack-signing'), `${SIGNING_SECRET}\n`, { mode: 0o600 });
  return {
    type: 'slack',
    name: 'slack',
    mode: 'socket',
    botTokenFile: join(dir, 'slack-bot'),
    appTokenFile: join(dir, 'slack-app'),
    signingSecretFile: join(dir, 'slack-signing'),
    channel: NOTIFY_CHANNEL,
    apiUrl: peer.apiUrl,
    ...extra,
  };
}

export interface AdapterLogLine {
  level: string;
  msg: string;
  fields?: Record<string, unknown>;
}

/** The adapter as the daemon would create it, with a log and the secret files it read. */
export function makeAdapter(
  config: Config,
  channelName = 'slack',
): { adapter: SlackAdapter; logs: AdapterLogLine[]; secretsRead: string[] } {
  const logs: AdapterLogLine[] = [];
  const secretsRead: string[] = [];
  const entry = config.notify.channels.find((c) => (c.name ?? c.type) === channelName);
  if (!entry) throw new Error(`no channel ${channelName}`);
  const ctx: AdapterContext = {
    config,
    runner: new ExecaRunner(),
    now: () => new Date(),
    readSecret: (path) => {
      secretsRead.push(path);
      return readSecret(path);
    },
    log: (level, msg, fields) => logs.push({ level, msg, fields }),
  };
  return { adapter: new SlackAdapter(SlackChannel.parse(entry), ctx), logs, secretsRead };
}

/** A bare config with one Slack channel (adapter tests without a World). */
export function bareConfig(peer: SlackPeer, extra: Partial<SlackChannel> & Record<string, unknown> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'hv-slack-'));
  const config = parseConfig(
    {
      host: 'hv01',
      allowNonRoot: true,
      paths: { state: join(dir, 'state'), log: join(dir, 'log'), motd: join(dir, 'motd') },
      notify: { channels: [slackChannelConfig(peer, dir, extra)] },
    },
    channelTypes,
  );
  return { config, dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A config with one Slack channel and the real command bus over it (the engine's side: it holds
 * the signing secret and verifies), the peer's default user an operator.
 */
export function realBusConfig(peer: SlackPeer, extra: Partial<SlackChannel> & Record<string, unknown> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'hv-slack-'));
  const config = parseConfig(
    {
      host: 'hv01',
      allowNonRoot: true,
      paths: { state: join(dir, 'state'), log: join(dir, 'log'), motd: join(dir, 'motd') },
      flake: { dir: join(dir, 'flake') },
      notify: { channels: [slackChannelConfig(peer, dir, extra)] },
      chatops: { roles: { [`slack:${peer.workspace.teamId}:${peer.workspace.userId}`]: 'operator' } },
    },
    channelTypes,
  );
  const services = createServices(config, { channels: channelTypes });
  const bus = createCommandBus(services, commandRegistry);
  return {
    config,
    dir,
    bus,
    signingFile: join(dir, 'slack-signing'),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** One `/hv …` sent over Socket Mode, with the envelope kept for a redelivery. */
export interface SentSlash {
  triggerId: string;
  envelope: Record<string, unknown>;
  sentAt: number;
  ack: Promise<SlackAck>;
}

export function sendSlash(peer: SlackPeer, user: { id: string; name?: string }, text: string): SentSlash {
  const triggerId = `${Date.now()}.${randomUUID()}`;
  const payload = buildSlashCommand(
    peer.workspace,
    { user_id: user.id, user_name: user.name ?? user.id.toLowerCase(), text, trigger_id: triggerId },
    peer.newResponseUrl(),
  );
  const envelope = {
    envelope_id: randomUUID(),
    type: 'slash_commands',
    payload,
    accepts_response_payload: true,
  };
  const sentAt = Date.now();
  return { triggerId, envelope, sentAt, ack: peer.sendEnvelopeRaw(envelope) };
}

/** The same envelope again, as Slack retries one whose ack it did not see. */
export function redeliver(peer: SlackPeer, sent: SentSlash): Promise<SlackAck> {
  return peer.sendEnvelopeRaw({ ...sent.envelope, retry_attempt: 1, retry_reason: 'timeout' });
}

/** Every text a person sees in a message: text, block texts, field texts, button labels. */
export function messageText(m: SlackPostedMessage): string {
  const out: string[] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k === 'text' && typeof x === 'string') out.push(x);
        else walk(x);
      }
    }
  };
  if (m.blocks) walk(m.blocks);
  else if (m.text) out.push(m.text);
  return out.join('\n');
}

export interface Button {
  label: string;
  actionId: string;
  value: string;
  message: SlackPostedMessage;
}

export function buttonsOf(m: SlackPostedMessage): Button[] {
  const out: Button[] = [];
  for (const b of (m.blocks ?? []) as { type?: string; elements?: Record<string, unknown>[] }[]) {
    if (b.type !== 'actions') continue;
    for (const e of b.elements ?? [])
      if (e.type === 'button')
        out.push({
          label: String((e.text as { text?: string })?.text ?? ''),
          actionId: String(e.action_id),
          value: String(e.value ?? ''),
          message: m,
        });
  }
  return out;
}

/** Clicks a button as `userId`, as Slack delivers a block_actions payload over Socket Mode. */
export function click(peer: SlackPeer, b: Button, userId: string): Promise<SlackAck> {
  return peer.sendInteractive({
    actions: [{ action_id: b.actionId, value: b.value, block_id: 'hv_confirmation' }],
    user: { id: userId, team_id: peer.workspace.teamId, username: userId.toLowerCase() },
    channel: { id: b.message.channel },
    message: {
      type: 'message',
      ts: b.message.ts,
      text: b.message.text ?? '',
      ...(b.message.threadTs ? { thread_ts: b.message.threadTs } : {}),
    },
    container: {
      type: 'message',
      message_ts: b.message.ts,
      channel_id: b.message.channel,
      is_ephemeral: false,
      ...(b.message.threadTs ? { thread_ts: b.message.threadTs } : {}),
    },
  });
}

/** Public messages of the threads started at or after `since` in `channel`. */
export function threadsSince(peer: SlackPeer, channel: string, since: number): SlackPostedMessage[][] {
  const pub = peer.messages.filter((m) => m.channel === channel && m.ephemeralTo === undefined);
  const roots = new Set(pub.filter((m) => !m.threadTs && m.postedAt >= since).map((m) => m.ts));
  return [...roots].map((root) => pub.filter((m) => m.ts === root || m.threadTs === root));
}

/** Polls until `probe` is truthy (the shared contract's `poll`, with a longer default wait). */
export function until<T>(
  probe: () => T | undefined | null | false,
  what: string,
  timeoutMs = 10_000,
): Promise<T> {
  return poll(probe, what, timeoutMs);
}
