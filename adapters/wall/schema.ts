import { z } from 'zod';
import { Argv, channelBase } from '../../src/config/fields.js';

/** The wall channel pipes a short message into `command` (default `wall -g wheel`). */
export const WallChannel = z.strictObject({
  type: z.literal('wall'),
  ...channelBase,
  command: Argv.default(['wall', '-g', 'wheel']),
});
export type WallChannel = z.infer<typeof WallChannel>;
