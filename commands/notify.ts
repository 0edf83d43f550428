import { z } from 'zod';
import { Exit, HvError } from '../src/errors.js';
import { type DeliveryRecord, deliveryStats, Outbox } from '../src/notify/outbox.js';
import type { Command, CommandResult } from '../src/ports/command.js';

const ACTIONS = ['test', 'list', 'retry'] as const;

function describe(r: DeliveryRecord): Record<string, unknown> {
  return {
    id: r.id,
    channel: r.channel,
    state: r.state === 'pending' && r.attempts > 0 ? 'retrying' : r.state,
    kind: r.kind,
    events: r.events.map((e) => ({ type: e.type, title: e.title, at: e.at })),
    attempts: r.attempts,
    nextAt: r.state === 'pending' || r.state === 'held' ? r.nextAt : undefined,
    lastError: r.lastError,
    createdAt: r.createdAt,
  };
}

function line(r: DeliveryRecord): string {
  const what = r.kind === 'digest' ? `digest of ${r.events.length}` : (r.events[0]?.title ?? '?');
  const state = r.state === 'pending' && r.attempts > 0 ? 'retrying' : r.state;
  const when =
    r.state === 'dead'
      ? `after ${r.attempts} attempt(s)`
      : r.state === 'held'
        ? `digest due ${r.nextAt}`
        : `next attempt ${r.nextAt}`;
  return `  ${r.channel}  ${state}  ${what}  (${when})${r.lastError ? `\n      last error: ${r.lastError}` : ''}`;
}

/** `hv notify test|list|retry`: try every channel, see what is undelivered, retry it now. */
export const notifyCommand: Command<{ action: (typeof ACTIONS)[number]; channel?: string }> = {
  name: 'notify',
  summary: 'send a test notification, list or retry undelivered ones',
  role: 'operator',
  positionals: ['action'],
  args: z.strictObject({
    action: z
      .enum(ACTIONS)
      .default('list')
      .describe('test: send a test notification; list or retry undelivered ones'),
    channel: z.string().min(1).optional().describe('only this notification channel (its name)'),
  }),
  async run({ config, services }, args): Promise<CommandResult> {
    const names = config.notify.channels.map((c) => c.name ?? c.type);
    if (args.channel && !names.includes(args.channel))
      throw new HvError(
        'usage',
        `unknown channel "${args.channel}"; configured channels: ${names.join(', ') || '(none)'}`,
      );

    if (args.action === 'list') {
      const all = new Outbox(services.paths.notify)
        .all()
        .filter((r) => r.state !== 'done' && (!args.channel || r.channel === args.channel));
      const stats = deliveryStats(services.paths.notify);
      return {
        status: 'ok',
        exitCode: Exit.ok,
        message: all.length
          ? [
              'Undelivered notifications:',
              ...Object.entries(stats)
                .filter(([name]) => !args.channel || name === args.channel)
                .map(
                  ([name, s]) =>
                    `${name}: ${s.pending} pending, ${s.retrying} retrying, ${s.dead} dead, ${s.held} held for digest`,
                ),
              '',
              ...all.map(line),
            ].join('\n')
          : 'No undelivered notifications.',
        data: { deliveries: all.map(describe), channels: stats },
      };
    }

    const hub = await services.hub();
    if (args.action === 'test') {
      const reports = await hub.sendTest(args.channel);
      const failed = reports.filter((r) => !r.ok);
      const width = Math.max(...reports.map((r) => r.channel.length));
      const lines = reports.map(
        (r) =>
          `  ${r.channel.padEnd(width)}  ${r.ok ? (r.note ?? 'delivered') : `FAILED: ${r.error}`} (${r.ms} ms)`,
      );
      const head = `Test notification from ${config.host}:`;
      const tail = failed.length
        ? `${failed.length} of ${reports.length} channel(s) failed: ${failed.map((r) => r.channel).join(', ')}`
        : `all ${reports.length} channel(s) delivered`;
      return {
        status: failed.length ? 'failed' : 'ok',
        exitCode: failed.length ? Exit.failed : Exit.ok,
        message: [head, ...lines, tail].join('\n'),
        data: { channels: reports },
      };
    }

    // retry: make dead and waiting deliveries due now, then deliver what can be.
    const ids = hub.retry(args.channel ? { channel: args.channel } : {});
    await hub.drain(args.channel ? { channels: [args.channel] } : {});
    const after = ids.map((id) => hub.outbox.get(id)).filter((r): r is DeliveryRecord => r !== null);
    const left = after.filter((r) => r.state !== 'done');
    const delivered = after.length - left.length;
    const message = !ids.length
      ? 'Nothing to retry.'
      : [
          `Retried ${ids.length} notification(s): ${delivered} delivered, ${left.length} still undelivered.`,
          ...left.map(line),
        ].join('\n');
    return {
      status: left.length ? 'failed' : 'ok',
      exitCode: left.length ? Exit.failed : Exit.ok,
      message,
      data: { retried: ids.length, delivered, undelivered: left.map(describe) },
    };
  },
};
