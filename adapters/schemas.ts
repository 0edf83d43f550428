import type { z } from 'zod';
import { DiscordChannel } from './discord/schema.js';
import { EmailChannel } from './email/schema.js';
import { MotdChannel } from './motd/schema.js';
import { SlackChannel } from './slack/schema.js';
import { WallChannel } from './wall/schema.js';

/**
 * Config schemas of every channel type, keyed by `type`. Only zod here: the adapters' platform
 * libraries are loaded lazily by `adapters/registry.ts` when a channel of that type is configured.
 */
export const channelSchemas = new Map<string, z.ZodTypeAny>([
  ['motd', MotdChannel],
  ['wall', WallChannel],
  ['email', EmailChannel],
  ['slack', SlackChannel],
  ['discord', DiscordChannel],
]);

export type ChannelConfig = MotdChannel | WallChannel | EmailChannel | SlackChannel | DiscordChannel;
