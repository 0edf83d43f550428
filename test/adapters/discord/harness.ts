import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiscordAdapter, type DiscordAdapterOptions } from '../../../adapters/discord/index.js';
import { DiscordChannel } from '../../../adapters/discord/schema.js';
import { channelTypes } from '../../../adapters/registry.js';
import type { CommandBus } from '../../../src/bus/types.js';
import { parseConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import type { HvEvent } from '../../../src/events.js';
import type { AdapterContext } from '../../../src/ports/channel.js';
import { ExecaRunner } from '../../../src/proc.js';
import { readSecret } from '../../../src/services.js';
import {
  DISCORD_IDS,
  type DiscordMemberSeed,
  type DiscordMessageRecord,
  DiscordPeer,
  type SentInteraction,
} from '../../peers/discord-peer.js';
import type { ChatButton, ChatHarness, ChatUser, SentCommand } from '../chat-contract.js';
import { FakeBus } from '../chat-contract.js';

const EPHEMERAL = 1 << 6;

/** A Discord user the harness acts as: the peer's member seed plus the actor the bus must see. */
export interface DiscordUser extends ChatUser {
  member: DiscordMemberSeed;
}

export function discordUser(member: DiscordMemberSeed): DiscordUser {
  return {
    member,
    actor: {
      channel: 'discord',
      id: `user:${member.user.id}`,
      groups: (member.roles ?? []).map((r) => `role:${r}`),
    },
  };
}

export interface DiscordWorld {
  peer: DiscordPeer;
  adapter: DiscordAdapter;
  bus: CommandBus;
  channel: DiscordChannel;
  config: Config;
  logs: { level: string; msg: string; fields?: Record<string, unknown> }[];
  /** Moves the adapter's clock (interaction token expiry). */
  advanceClock(ms: number): void;
  admin: DiscordUser;
  outsider: DiscordUser;
  /** `/hv <command> [--opt value]` as `user`, as Discord delivers it. */
  command(user: DiscordUser, command: string, argv?: string[]): SentInteraction;
  /** Every message that belongs to an interaction (its reply, follow-ups, clicks on its messages). */
  related(interactionId: string): DiscordMessageRecord[];
  close(): Promise<void>;
}

export interface DiscordWorldOptions {
  bus?: CommandBus;
  adapter?: DiscordAdapterOptions;
  channel?: (peer: DiscordPeer) => Partial<DiscordChannel>;
  config?: Record<string, unknown>;
  /** Don't start the adapter (notification-only, or start failures). */
  noStart?: boolean;
}

/** A Discord peer, a token file, and a started DiscordAdapter pointed at the peer. */
export async function startDiscord(opts: DiscordWorldOptions = {}): Promise<DiscordWorld> {
  const peer = await DiscordPeer.start();
  const dir = mkdtempSync(join(tmpdir(), 'hv-discord-'));
  const tokenFile = join(dir, 'discord-token');
  writeFileSync(tokenFile, `${peer.token}\n`, { mode: 0o600 });
  const channel = DiscordChannel.parse({
    type: 'discord',
    tokenFile,
    applicationId: peer.applicationId,
    guildId: DISCORD_IDS.guild,
    channelId: DISCORD_IDS.channel,
    apiUrl: peer.apiUrl,
    ...opts.channel?.(peer),
  });
  const config = parseConfig(
    {
      host: 'hv01',
      allowNonRoot: true,
      paths: { state: join(dir, 'state'), log: join(dir, 'log') },
      notify: { channels: [channel] },
      ...opts.config,
    },
    channelTypes,
  );
  let offset = 0;
  const logs: DiscordWorld['logs'] = [];
  const ctx: AdapterContext = {
    config,
    runner: new ExecaRunner(),
    now: () => new Date(Date.now() + offset),
    readSecret,
    log: (level, msg, fields) => logs.push({ level, msg, fields }),
  };
  const bus = opts.bus ?? new FakeBus();
  const adapter = new DiscordAdapter(channel, ctx, opts.adapter);
  const member = (id: string) => {
    const m = peer.guild.members.find((x) => x.user.id === id);
    if (!m) throw new Error(`no member ${id}`);
    return m;
  };
  const world: DiscordWorld = {
    peer,
    adapter,
    bus,
    channel,
    config,
    logs,
    advanceClock: (ms) => {
      offset += ms;
    },
    admin: discordUser(member(DISCORD_IDS.admin)),
    outsider: discordUser(member(DISCORD_IDS.outsider)),
    command: (user, command, argv = []) =>
      peer.sendInteraction({
        type: 2,
        data: { name: 'hv', options: [{ type: 1, name: command, options: optionsOf(argv) }] },
        member: { user: user.member.user, roles: user.member.roles ?? [] },
      }),
    related: (interactionId) => relatedMessages(peer, interactionId),
    async close() {
      await adapter.stop();
      await peer.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  if (!opts.noStart) await adapter.start({ bus });
  return world;
}

/** `["--to", "42"]` → the options Discord sends for `to:42` (integers as numbers). */
function optionsOf(argv: string[]): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i]?.replace(/^--/, '') ?? '';
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) out.push({ name, type: 5, value: true });
    else {
      out.push(/^\d+$/.test(next) ? { name, type: 4, value: Number(next) } : { name, type: 3, value: next });
      i++;
    }
  }
  return out;
}

/** What people see of a message: content, embed text, button labels. */
export function messageText(m: DiscordMessageRecord): string {
  const w = m.wire as {
    content?: string;
    embeds?: {
      title?: string;
      description?: string;
      footer?: { text?: string };
      fields?: { name: string; value: string }[];
    }[];
    components?: { components?: { label?: string }[] }[];
  };
  const parts: string[] = [];
  if (w.content) parts.push(w.content);
  for (const e of w.embeds ?? []) {
    if (e.title) parts.push(e.title);
    if (e.description) parts.push(e.description);
    for (const f of e.fields ?? []) parts.push(f.name, f.value);
    if (e.footer?.text) parts.push(e.footer.text);
  }
  for (const row of w.components ?? [])
    for (const c of row.components ?? []) if (c.label) parts.push(c.label);
  return parts.join('\n');
}

const isEphemeral = (m: DiscordMessageRecord) => ((m.wire.flags as number) & EPHEMERAL) !== 0;

function invoker(peer: DiscordPeer, interactionId: string | undefined): string | undefined {
  const p = interactionId ? peer.interactions.get(interactionId)?.payload : undefined;
  return (p?.member as { user?: { id?: string } } | undefined)?.user?.id;
}

/** The interaction, clicks on its messages, and every message any of them produced. */
function relatedMessages(peer: DiscordPeer, interactionId: string): DiscordMessageRecord[] {
  const ids = new Set([interactionId]);
  const msgIds = new Set<string>();
  // Clicks on the request's messages belong to the request; iterate until nothing new.
  for (let grew = true; grew; ) {
    grew = false;
    for (const m of peer.messages) if (m.interactionId && ids.has(m.interactionId)) msgIds.add(m.id);
    for (const i of peer.interactions.values()) {
      if (i.type === 3 && i.originalMessageId && msgIds.has(i.originalMessageId) && !ids.has(i.id)) {
        ids.add(i.id);
        grew = true;
      }
    }
  }
  return peer.messages.filter((m) => msgIds.has(m.id) || (m.interactionId && ids.has(m.interactionId)));
}

/** The Discord side of the shared chat adapter contract. */
export async function discordHarness(): Promise<ChatHarness> {
  const bus = new FakeBus();
  const w = await startDiscord({ bus });
  const { peer } = w;
  const sentOf = new WeakMap<SentCommand, SentInteraction>();
  const sentCommand = (sent: SentInteraction): SentCommand => {
    const visible = () => w.related(sent.id).filter((m) => !m.deleted);
    const handle: SentCommand = {
      acked: async () => (await peer.waitForCallback(sent.id)).latencyMs,
      publicText: () =>
        visible()
          .filter((m) => !isEphemeral(m))
          .map(messageText)
          .join('\n'),
      privateText: (user) =>
        visible()
          .filter(
            (m) => isEphemeral(m) && invoker(peer, m.interactionId) === (user as DiscordUser).member.user.id,
          )
          .map(messageText)
          .join('\n'),
      places: () =>
        visible()
          .filter((m) => !isEphemeral(m) && messageText(m).length > 0)
          .map((m) => m.id),
      buttons: () =>
        visible()
          .filter((m) => !isEphemeral(m))
          .flatMap((m) => {
            const rows = (m.wire.components ?? []) as {
              components?: { label?: string; custom_id?: string }[];
            }[];
            return rows.flatMap((r) =>
              (r.components ?? []).map(
                (c): ChatButton => ({
                  label: c.label ?? '',
                  click: async (user) => {
                    const u = user as DiscordUser;
                    peer.sendInteraction({
                      type: 3,
                      data: { custom_id: c.custom_id, component_type: 2 },
                      message: { id: m.id },
                      member: { user: u.member.user, roles: u.member.roles ?? [] },
                    });
                  },
                }),
              ),
            );
          }),
    };
    sentOf.set(handle, sent);
    return handle;
  };
  return {
    bus,
    channelName: w.adapter.name,
    users: { admin: w.admin, other: w.outsider },
    command: async (user, command, argv) => sentCommand(w.command(user as DiscordUser, command, argv)),
    deliver: (event: HvEvent) => w.adapter.deliver(event, { id: randomUUID(), attempt: 1 }),
    notifications: () =>
      peer
        .messagesIn(DISCORD_IDS.channel)
        .filter((m) => m.source === 'channel')
        .map(messageText),
    rateLimitNext: (sec) => peer.failNext('POST /channels/:id/messages', { status: 429, retryAfter: sec }),
    redeliver: async (sent) => {
      // Discord replays a dispatch after RESUME: the same interaction (same id) arrives again.
      const original = sentOf.get(sent);
      if (!original) throw new Error('unknown command');
      peer.dispatch('INTERACTION_CREATE', original.payload);
    },
    close: () => w.close(),
  };
}
