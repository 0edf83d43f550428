import type { HvEvent } from '../events.js';
import type { ChannelAdapter, ChannelSettings } from '../ports/channel.js';
import type { DigestKind } from './digest.js';

/** An adapter and the config entry it was made from. */
export interface Channel {
  config: ChannelSettings;
  adapter: ChannelAdapter;
}

/** The name a channel goes by in the outbox, in reports and on the command line. */
export function channelName(ch: Channel): string {
  return ch.config.name ?? ch.adapter.name;
}

/** Whether the channel's `events` filter lets this event through (no filter: every event). */
export function wants(channel: ChannelSettings, event: HvEvent): boolean {
  return !channel.events || channel.events.includes(event.type);
}

/** The bound on one attempt: the channel's own `timeoutSec`, else `defaultSec` (`notify.timeoutSec`). */
export function channelTimeoutMs(ch: Channel, defaultSec: number): number {
  return (ch.config.timeoutSec ?? defaultSec) * 1000;
}

/** The channel's digest period, or null when it sends each event at once (or cannot digest). */
export function digestKind(ch: Channel): DigestKind | null {
  const digest = ch.config.digest;
  return digest && ch.adapter.sendDigest ? digest : null;
}
