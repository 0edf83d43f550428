import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DiscordAdapter } from '../../adapters/discord/index.js';
import type { DiscordChannel } from '../../adapters/discord/schema.js';
import { channelTypes } from '../../adapters/registry.js';
import type { SlackAdapter } from '../../adapters/slack/adapter.js';
import { commandRegistry } from '../../commands/index.js';
import { createCommandBus, type HostedCommandBus } from '../../src/bus/bus.js';
import { parseConfig } from '../../src/config/load.js';
import { createServices, readSecret } from '../../src/services.js';
import { poll } from '../adapters/chat-contract.js';
import { messageText as discordText } from '../adapters/discord/harness.js';
import {
  buttonsOf,
  makeAdapter,
  NOTIFY_CHANNEL,
  sendSlash,
  slackChannelConfig,
  messageText as slackText,
  threadsSince,
} from '../adapters/slack/harness.js';
import type { World } from '../fixtures/world.js';
import { emailChannel, MailSink, type Received } from '../notify/smtp.js';
import { DISCORD_IDS, type DiscordMemberSeed, DiscordPeer } from '../peers/discord-peer.js';
import type { DiscordMessageRecord } from '../peers/discord-types.js';
import { SlackPeer } from '../peers/slack-peer.js';
import type { SlackPostedMessage } from '../peers/slack-web-api.js';

export { discordText, slackText };

/** The Slack user who is an hv admin. */
export const SLACK_ADMIN = 'U0ADMIN';
const ADMIN: DiscordMemberSeed = {
  user: { id: DISCORD_IDS.admin, username: 'admin' },
  roles: [DISCORD_IDS.adminRole],
};

/** A World whose notifications go to Slack, Discord, email and wall, and whose chat runs here. */
export interface ChatWorld {
  slack: SlackPeer;
  discord: DiscordPeer;
  mail: MailSink;
  /** The notification on Slack whose text contains `what`. */
  slackNotice(what: string, timeoutMs?: number): Promise<SlackPostedMessage>;
  /** The notification on Discord whose text contains `what`. */
  discordNotice(what: string, timeoutMs?: number): Promise<DiscordMessageRecord>;
  /** The mail whose subject contains `what`. */
  mailAbout(what: string, timeoutMs?: number): Promise<Received['mail']>;
  /** `/hv <command>` by an admin on Slack: the prompt with the Confirm button. */
  slackPrompt(command: string): Promise<SlackPostedMessage>;
  /** `/hv <command>` by an admin on Discord: the reply with the Confirm button. */
  discordPrompt(command: string): Promise<DiscordMessageRecord>;
  close(): Promise<void>;
}

/**
 * Point `w`'s notifications at a loopback Slack, Discord and SMTP server (plus motd and wall) and
 * start the command bus and both chat adapters in this process, as `hv daemon` hosts them.
 */
export async function startChatWorld(w: World): Promise<ChatWorld> {
  const slack = await SlackPeer.start();
  const discord = await DiscordPeer.start({ guild: { members: [ADMIN] } });
  const mail = await MailSink.start(0);
  const tokenFile = join(w.root, 'discord-token');
  writeFileSync(tokenFile, discord.token, { mode: 0o600 });
  const wall = w.paths.wall;
  w.config.notify = {
    channels: [
      { type: 'motd' },
      { type: 'wall', command: ['sh', '-c', `cat >> '${wall}'; echo '--' >> '${wall}'`] },
      slackChannelConfig(slack, w.root),
      {
        type: 'discord',
        name: 'discord',
        tokenFile,
        applicationId: discord.applicationId,
        guildId: DISCORD_IDS.guild,
        channelId: DISCORD_IDS.channel,
        apiUrl: discord.apiUrl,
      },
      emailChannel('mail', mail.port),
    ],
  };
  w.config.chatops = {
    ...(w.config.chatops as Record<string, unknown>),
    roles: {
      [`slack:${slack.workspace.teamId}:${SLACK_ADMIN}`]: 'admin',
      [`discord:role:${DISCORD_IDS.adminRole}`]: 'admin',
    },
    confirmTimeoutSec: 300,
  };
  w.writeConfig();
  const config = parseConfig(w.config, channelTypes);
  const services = createServices(config, { channels: channelTypes });
  const bus: HostedCommandBus = createCommandBus(services, {
    ...commandRegistry,
    configPath: w.configPath,
    pollMs: 100,
  });
  const slackAdapter: SlackAdapter = makeAdapter(config).adapter;
  await slackAdapter.start({ bus });
  const discordAdapter = new DiscordAdapter(
    config.notify.channels.find((c) => c.type === 'discord') as DiscordChannel,
    { config, runner: services.runner, now: services.now, readSecret, log: () => {} },
  );
  await discordAdapter.start({ bus });
  return {
    slack,
    discord,
    mail,
    slackNotice: (what, timeoutMs = 10_000) =>
      poll(
        () => slack.messages.find((m) => m.channel === NOTIFY_CHANNEL && slackText(m).includes(what)),
        `the Slack notification "${what}"`,
        timeoutMs,
      ),
    discordNotice: (what, timeoutMs = 10_000) =>
      poll(
        () =>
          discord
            .messagesIn(DISCORD_IDS.channel)
            .find((m) => m.source === 'channel' && discordText(m).includes(what)),
        `the Discord notification "${what}"`,
        timeoutMs,
      ),
    mailAbout: async (what, timeoutMs = 10_000) =>
      (
        await poll(
          () => mail.mails.find((x) => x.mail.subject?.includes(what)),
          `the mail "${what}"`,
          timeoutMs,
        )
      ).mail,
    async slackPrompt(command) {
      const sent = sendSlash(slack, { id: SLACK_ADMIN }, command);
      if (!(await sent.ack).acked) throw new Error('Slack did not see an ack');
      return poll(
        () =>
          threadsSince(slack, slack.workspace.channelId, sent.sentAt)
            .flat()
            .find((m) => buttonsOf(m).length > 0),
        'the Slack prompt',
      );
    },
    async discordPrompt(command) {
      const i = discord.sendInteraction({
        type: 2,
        data: { name: 'hv', options: [{ type: 1, name: command, options: [] }] },
        member: { user: ADMIN.user, roles: ADMIN.roles ?? [] },
      });
      await discord.waitForCallback(i.id);
      return poll(
        () =>
          discord.messages.find(
            (m) =>
              m.interactionId === i.id &&
              m.source === 'interaction' &&
              ((m.wire.components ?? []) as unknown[]).length > 0,
          ),
        'the Discord prompt',
      );
    },
    async close() {
      await slackAdapter.stop();
      await discordAdapter.stop();
      await bus.stop();
      await slack.stop();
      await discord.stop();
      await mail.close();
    },
  };
}
