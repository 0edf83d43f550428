import { hostname } from 'node:os';
import { HV } from '../cli-name.js';
import { errorMessage, HvError } from '../errors.js';
import { type Channel, channelName, channelTimeoutMs } from './channels.js';
import { makeEvent } from './events.js';
import { withTimeout } from './timing.js';

/** The outcome of `hv notify test` on one channel. */
export interface TestReport {
  channel: string;
  type: string;
  ok: boolean;
  error?: string;
  /** What the result means when nothing could be sent (a notice board). */
  note?: string;
  ms: number;
}

/** What a test send needs besides the channels. */
export interface TestSendSettings {
  /** Default bound on the send, for channels without their own `timeoutSec`. */
  timeoutSec: number;
  now: () => Date;
  /** The host name the message carries (config `host`; default: this machine's). */
  host?: string;
}

/**
 * `hv notify test`: send a test message straight through each channel (or the one named), not
 * through the outbox and not deduplicated, all channels at once, each within its own timeout.
 * Failures are reported, not thrown; an unknown channel name is a usage error listing the names.
 */
export async function sendTest(
  channels: Channel[],
  s: TestSendSettings,
  channel?: string,
): Promise<TestReport[]> {
  const chosen = channel ? channels.filter((c) => channelName(c) === channel) : channels;
  if (channel && !chosen.length)
    throw new HvError(
      'usage',
      `unknown channel "${channel}"; configured channels: ${channels.map(channelName).join(', ') || '(none)'}`,
    );
  return Promise.all(chosen.map((ch) => sendOne(ch, s)));
}

async function sendOne(ch: Channel, s: TestSendSettings): Promise<TestReport> {
  const name = channelName(ch);
  const started = performance.now();
  const report = (outcome: { ok: true } | { ok: false; error: string }): TestReport => ({
    channel: name,
    type: ch.config.type,
    ...outcome,
    ms: Math.round(performance.now() - started),
  });
  const event = makeEvent(
    'notify.test',
    {
      host: s.host ?? hostname(),
      key: `test-${Date.now()}`,
      title: `Test notification from hv (channel ${name})`,
      data: { channel: name, type: ch.config.type },
      next: `${HV} status`,
    },
    s.now(),
  );
  const { deliver } = ch.adapter;
  if (!deliver)
    return { ...report({ ok: true }), note: 'a notice board: it shows what is pending, nothing is sent' };
  try {
    await withTimeout(
      deliver.call(ch.adapter, event, { id: `test.${event.id}.${name}`, attempt: 1 }),
      channelTimeoutMs(ch, s.timeoutSec),
    );
    return report({ ok: true });
  } catch (e) {
    return report({ ok: false, error: errorMessage(e) });
  }
}
