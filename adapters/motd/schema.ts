import { z } from 'zod';
import { channelBase } from '../../src/config/fields.js';

/** The motd channel writes `paths.motd`; it has no options of its own. */
export const MotdChannel = z.strictObject({ type: z.literal('motd'), ...channelBase });
export type MotdChannel = z.infer<typeof MotdChannel>;
