import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import {
  type AdapterContext,
  type ChannelAdapter,
  type ChannelSettings,
  type ChannelTypes,
  DeliveryError,
} from '../ports/channel.js';
import { type Channel, NotificationHub } from './hub.js';

/** Stands in for a channel whose adapter could not be loaded: its deliveries fail, kept and retried. */
function brokenAdapter(name: string, type: string, error: string): ChannelAdapter {
  return {
    name,
    type,
    async deliver() {
      throw new DeliveryError(`channel could not be started: ${error}`);
    },
  };
}

/**
 * The hub with every configured channel. Adapters load concurrently and lazily (a platform library
 * is imported only when a channel of its type is configured); one that fails to load does not stop
 * the others, its deliveries stay in the outbox with the error.
 */
export async function buildHub(
  config: Config,
  ctx: AdapterContext,
  stateDir: string,
  channelTypes: ChannelTypes,
  notifierFor?: (channel: ChannelSettings) => ChannelAdapter | undefined,
): Promise<NotificationHub> {
  const channels: Channel[] = await Promise.all(
    config.notify.channels.map(async (channel): Promise<Channel> => {
      const name = channel.name ?? channel.type;
      try {
        const type = channelTypes.get(channel.type);
        if (!type)
          throw new Error(
            `unknown channel type "${channel.type}"; must be one of ${[...channelTypes.keys()].join(', ')}`,
          );
        return { config: channel, adapter: notifierFor?.(channel) ?? (await type.open(channel, ctx)) };
      } catch (e) {
        ctx.log('error', 'notification channel could not be started', {
          channel: name,
          error: errorMessage(e),
        });
        return { config: channel, adapter: brokenAdapter(name, channel.type, errorMessage(e)) };
      }
    }),
  );
  const n = config.notify;
  return new NotificationHub(channels, stateDir, {
    timeoutSec: n.timeoutSec,
    reminderDays: n.reminderDays,
    maxAttempts: n.maxAttempts,
    backoffSec: n.backoffSec,
    maxBackoffSec: n.maxBackoffSec,
    host: config.host,
    now: ctx.now,
    log: ctx.log,
  });
}
