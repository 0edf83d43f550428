import type { AdapterFactory } from '../types.js';
import { SlackAdapter } from './adapter.js';
import { SlackChannel } from './schema.js';

export { SlackAdapter } from './adapter.js';
export { SlackReply } from './reply.js';

/** Slack on @slack/bolt: notifications as Block Kit messages; `/hv` commands when the daemon starts it. */
export const slack: AdapterFactory = {
  type: 'slack',
  create(channel, ctx) {
    return new SlackAdapter(SlackChannel.parse(channel), ctx);
  },
};
