import { z } from 'zod';
import { Exit } from '../src/errors.js';
import type { Command, CommandResult } from './types.js';

function localIso(d: Date): string {
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const pad = (n: number) => String(Math.floor(Math.abs(n))).padStart(2, '0');
  const local = new Date(d.getTime() + off * 60_000).toISOString().slice(0, 19);
  return `${local}${sign}${pad(off / 60)}:${pad(off % 60)}`;
}

/** `hv schedule next [EXPR] [--count N]`: what a schedule expression means, as run times. */
export const scheduleCommand: Command<{ action: 'next'; expr?: string; count: number }> = {
  name: 'schedule',
  summary: 'show the next run times of the configured (or a given) schedule',
  role: 'viewer',
  unprivileged: true,
  positionals: ['action', 'expr'],
  args: z.strictObject({
    action: z
      .literal('next', { errorMap: () => ({ message: 'must be "next"' }) })
      .describe('next: list the next run times'),
    expr: z.string().optional().describe('a schedule expression (default: the configured schedule)'),
    count: z.coerce.number().int().min(1).max(1000).default(5).describe('how many run times (1-1000)'),
  }),
  async run({ config, services }, args): Promise<CommandResult> {
    const { parseSchedule } = await import('../src/schedule/index.js');
    const expr = args.expr ?? config.schedule;
    const schedule = parseSchedule(expr, args.expr === undefined ? 'schedule' : 'EXPR');
    const times = schedule.next(services.now(), args.count);
    return {
      status: 'ok',
      exitCode: Exit.ok,
      message: [
        `${expr} (${schedule.kind}, cron "${schedule.cron}"):`,
        ...times.map((t) => `  ${localIso(t)}`),
      ].join('\n'),
      data: {
        expr,
        kind: schedule.kind,
        cron: schedule.cron,
        next: times.map(localIso),
        nextUtc: times.map((t) => t.toISOString()),
      },
    };
  },
};
