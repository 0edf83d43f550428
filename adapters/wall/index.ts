import type { HvEvent } from '../../src/events.js';
import type { ChannelAdapter, ChannelFactory } from '../../src/ports/channel.js';
import { DeliveryError } from '../../src/ports/channel.js';
import type { WallChannel } from './schema.js';

/** A terminal broadcast is short: a few lines, no markup. */
export function wallText(e: HvEvent): string {
  const lines = [`hv on ${e.host}: ${e.title}`];
  if (e.next) lines.push(`Next: ${e.next}`);
  if (e.detailsFile) lines.push(`Details: ${e.detailsFile}`);
  return `${lines.join('\n')}\n`;
}

/** The wall channel: runs its configured command (default `wall -g wheel`) with the message on stdin. */
export const wall: ChannelFactory<WallChannel> = {
  type: 'wall',
  create(channel, ctx): ChannelAdapter {
    const { command } = channel;
    return {
      name: channel.name ?? 'wall',
      type: 'wall',
      async deliver(event) {
        const r = await ctx.runner.run(command, { input: wallText(event), timeoutMs: 15_000 });
        if (r.exitCode !== 0)
          throw new DeliveryError(
            `${command[0]} failed: ${r.spawnError ?? (r.stderr.trim() || `exit ${r.exitCode}`)}`,
          );
      },
    };
  },
};
