import type { ChannelFactory } from '../../src/ports/channel.js';
import { SlackAdapter } from './adapter.js';
import type { SlackChannel } from './schema.js';

export { SlackAdapter } from './adapter.js';
export { SlackReply } from './reply.js';

/** Slack on @slack/bolt: notifications as Block Kit messages; `/hv` commands when the daemon starts it. */
export const slack: ChannelFactory<SlackChannel> = {
  type: 'slack',
  create(channel, ctx) {
    return new SlackAdapter(channel, ctx);
  },
};
