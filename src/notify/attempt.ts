import { errorMessage } from '../errors.js';
import type { ChannelAdapter, Delivery } from '../ports/channel.js';
import { DeliveryError } from '../ports/channel.js';
import type { DeliveryRecord, Outbox } from './outbox.js';
import { withTimeout } from './timing.js';

export type HubLog = (
  level: 'info' | 'warn' | 'error',
  msg: string,
  fields?: Record<string, unknown>,
) => void;

export interface AttemptSettings {
  timeoutMs: number;
  maxAttempts: number;
  now: () => number;
  /** Delay before the next attempt after `attempts` attempts. */
  backoff: (attempts: number) => number;
  log: HubLog;
}

function send(adapter: ChannelAdapter, rec: DeliveryRecord): Promise<void> {
  const delivery: Delivery = { id: rec.id, attempt: rec.attempts };
  const { deliver } = adapter;
  // Nothing to send on a channel that is no notifier (any more): the delivery is done.
  if (!deliver) return Promise.resolve();
  if (rec.kind === 'digest' && adapter.sendDigest) return adapter.sendDigest(rec.events, delivery);
  return (async () => {
    // A digest on a channel without digests (its config changed since): one message per event.
    for (const [i, e] of rec.events.entries())
      await deliver.call(
        adapter,
        e,
        rec.events.length > 1 ? { ...delivery, id: `${rec.id}.${i}` } : delivery,
      );
  })();
}

/**
 * One attempt of one delivery, claimed against other processes (lock file). The attempt is counted
 * on disk before it starts, so a delivery that crashes the process still runs out of attempts; the
 * outcome is written as soon as it is known: `done`, `dead` (permanent error or out of attempts),
 * or `pending` again at the Retry-After or backoff time. Returns false when it was not attempted
 * (claimed elsewhere, or no longer due).
 */
export async function attemptDelivery(
  outbox: Outbox,
  adapter: ChannelAdapter,
  id: string,
  s: AttemptSettings,
): Promise<boolean> {
  const release = outbox.claim(id, s.timeoutMs + 60_000);
  if (!release) return false;
  try {
    const rec = outbox.get(id);
    if (rec?.state !== 'pending' || Date.parse(rec.nextAt) > s.now()) return false;
    rec.attempts += 1;
    rec.lastAttemptAt = new Date(s.now()).toISOString();
    rec.nextAt = new Date(s.now() + s.backoff(rec.attempts)).toISOString();
    outbox.put(rec);
    const fields = {
      channel: rec.channel,
      delivery: rec.id,
      event: rec.events[0]?.type,
      attempt: rec.attempts,
    };
    try {
      await withTimeout(send(adapter, rec), s.timeoutMs);
      rec.state = 'done';
      rec.doneAt = new Date(s.now()).toISOString();
      outbox.put(rec);
      s.log('info', 'notification delivered', fields);
    } catch (e) {
      const err = e instanceof DeliveryError ? e : new DeliveryError(errorMessage(e));
      rec.lastError = err.message;
      if (err.permanent || rec.attempts >= s.maxAttempts) {
        rec.state = 'dead';
        s.log('error', 'notification delivery given up', { ...fields, error: err.message });
      } else {
        const delay = Math.max(0, err.retryAfterMs ?? s.backoff(rec.attempts));
        rec.nextAt = new Date(s.now() + delay).toISOString();
        s.log('warn', 'notification delivery failed, will retry', {
          ...fields,
          error: err.message,
          retryInMs: delay,
        });
      }
      outbox.put(rec);
    }
    return true;
  } finally {
    release();
  }
}
