import { type ChannelType, type ChannelTypes, defineChannel } from '../src/ports/channel.js';
import { DiscordChannel } from './discord/schema.js';
import { EmailChannel } from './email/schema.js';
import { MotdChannel } from './motd/schema.js';
import { SlackChannel } from './slack/schema.js';
import { WallChannel } from './wall/schema.js';

/**
 * Every channel type: `{type, schema, load}`, one entry per adapter. The schemas are zod only; an
 * adapter and its platform library (nodemailer, bolt, discord.js) are imported only when a channel
 * of its type is configured. The composition roots pass this to the config and the hub.
 */
const all: ChannelType[] = [
  defineChannel({
    type: 'motd',
    schema: MotdChannel,
    load: async () => (await import('./motd/index.js')).motd,
  }),
  defineChannel({
    type: 'wall',
    schema: WallChannel,
    load: async () => (await import('./wall/index.js')).wall,
  }),
  defineChannel({
    type: 'email',
    schema: EmailChannel,
    load: async () => (await import('./email/index.js')).email,
    // SMTP notifications stay in the engine; command intake (a spool the MTA fills, IMAP) runs in
    // the chat process, and only the engine's DKIM check of the raw message decides who sent it.
    placement: (c) => ({ intake: !!c.intake, notifier: 'engine' }),
    requiresEvidence: (c) => !!c.intake,
    verifier: async () => (await import('./email/intake/verify.js')).verifyEmail,
  }),
  defineChannel({
    type: 'slack',
    schema: SlackChannel,
    load: async () => (await import('./slack/index.js')).slack,
    placement: () => ({ intake: true, notifier: 'chat' }),
    requiresEvidence: (c) => c.mode === 'http',
    verifier: async () => (await import('./slack/verify.js')).verifySlack,
    // Only the engine verifies request signatures, so a compromised chat process cannot forge one.
    engineSecrets: ['signingSecretFile'],
  }),
  defineChannel({
    type: 'discord',
    schema: DiscordChannel,
    load: async () => (await import('./discord/index.js')).discord,
    placement: () => ({ intake: true, notifier: 'chat' }),
  }),
];

export const channelTypes: ChannelTypes = new Map(all.map((c) => [c.type, c]));

/** A config entry of any built-in channel type. */
export type ChannelConfig = MotdChannel | WallChannel | EmailChannel | SlackChannel | DiscordChannel;
