import { webApi } from '@slack/bolt';
import type { HvEvent } from '../../src/events.js';
import type { AdapterContext, Delivery } from '../../src/ports/channel.js';
import { eventMessage } from './blocks.js';

type WebClient = InstanceType<typeof webApi.WebClient>;

/** The `event_type` of the metadata every notification carries. */
export const NOTIFICATION_EVENT_TYPE = 'hv_notification';

/** How many of the channel's latest messages a retry looks through for its earlier post. */
export const HISTORY_LOOKBACK = 50;

/** The metadata a notification carries: its delivery id, the idempotency key of the outbox. */
export function notificationMetadata(delivery: Delivery): {
  event_type: string;
  event_payload: { delivery: string };
} {
  return { event_type: NOTIFICATION_EVENT_TYPE, event_payload: { delivery: delivery.id } };
}

/**
 * Whether a message carrying this delivery id is among the channel's latest messages: an earlier
 * attempt was posted although its answer never arrived (a timeout, a dropped connection, a chat
 * process killed between Slack's answer and the outbox's acknowledgement).
 */
export async function alreadyPosted(
  client: WebClient,
  channel: string,
  deliveryId: string,
): Promise<boolean> {
  const res = await client.conversations.history({
    channel,
    limit: HISTORY_LOOKBACK,
    include_all_metadata: true,
  });
  return (res.messages ?? []).some((m) => {
    const meta = m.metadata as { event_type?: string; event_payload?: Record<string, unknown> } | undefined;
    return meta?.event_type === NOTIFICATION_EVENT_TYPE && meta.event_payload?.delivery === deliveryId;
  });
}

/**
 * Posts one notification at most once per delivery id. Slack's chat.postMessage has no
 * idempotency key, so the delivery id travels as message metadata, and a retry (attempt > 1) first
 * looks for it in the channel's history. A lookup Slack refuses (e.g. the app lacks the
 * `channels:history` scope) is logged and the message is posted: a rare duplicate is better than a
 * lost notification. A lookup that fails in transit throws, and the outbox tries again later.
 */
export async function postNotification(
  client: WebClient,
  channel: string,
  event: HvEvent,
  delivery: Delivery,
  log: AdapterContext['log'],
): Promise<void> {
  if (delivery.attempt > 1) {
    let found = false;
    try {
      found = await alreadyPosted(client, channel, delivery.id);
    } catch (e) {
      const err = e as { code?: string; data?: { error?: string } };
      if (err.code !== webApi.ErrorCode.PlatformError) throw e;
      const code = err.data?.error;
      log('warn', 'slack history lookup failed; posting the retried notification anyway', {
        channel,
        delivery: delivery.id,
        error: code,
        hint: code === 'missing_scope' ? 'add the channels:history (or groups:history) scope' : undefined,
      });
    }
    if (found) {
      log('info', 'slack notification already posted by an earlier attempt', {
        channel,
        delivery: delivery.id,
      });
      return;
    }
  }
  await client.chat.postMessage({
    channel,
    ...eventMessage(event),
    metadata: notificationMetadata(delivery),
  });
}
