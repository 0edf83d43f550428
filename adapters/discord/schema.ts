import { z } from 'zod';
import { AbsPath, channelBase } from '../../src/config/fields.js';

const Snowflake = z.string().regex(/^\d{1,20}$/, 'must be a Discord ID (digits)');

/** Discord through discord.js: gateway for /hv, REST for notifications. */
export const DiscordChannel = z.strictObject({
  type: z.literal('discord'),
  ...channelBase,
  tokenFile: AbsPath,
  applicationId: Snowflake,
  guildId: Snowflake,
  channelId: Snowflake,
  /** REST base URL without version, e.g. https://discord.com/api (point at a local peer in tests). */
  apiUrl: z.string().url().optional(),
  /** Gateway URL override; by default the one the REST API answers to GET /gateway/bot. */
  gatewayUrl: z.string().url().optional(),
});
export type DiscordChannel = z.infer<typeof DiscordChannel>;
