import { z } from 'zod';
import { Exit, HvError } from '../src/errors.js';
import type { Command, CommandResult } from '../src/ports/command.js';

function localIso(d: Date): string {
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const pad = (n: number) => String(Math.floor(Math.abs(n))).padStart(2, '0');
  const local = new Date(d.getTime() + off * 60_000).toISOString().slice(0, 19);
  return `${local}${sign}${pad(off / 60)}:${pad(off % 60)}`;
}

/** `--from`: ISO 8601; without an offset (or date only) it is the host's local time. */
function parseFrom(text: string): Date {
  const m = /^(\d{4}-\d{2}-\d{2})(T.*)?$/.exec(text.trim());
  // A date alone is UTC midnight to JavaScript; an admin means local midnight.
  const d = m ? new Date(m[2] === undefined ? `${m[1]}T00:00:00` : text.trim()) : new Date(Number.NaN);
  if (Number.isNaN(d.getTime()))
    throw new HvError(
      'usage',
      `--from: "${text}" is not a time; use ISO 8601 such as 2026-03-28T12:00:00+01:00 (without an offset: local time)`,
    );
  return d;
}

/**
 * `hv schedule next [EXPR] [--count N] [--from ISO]`: what a schedule expression means, as run
 * times. They come from `Schedule.next`, the same computation the daemon arms its timer with.
 */
export const scheduleCommand: Command<{ action: 'next'; expr?: string; count: number; from?: string }> = {
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
    from: z.string().optional().describe('start from this instant (ISO 8601; without an offset: local time)'),
  }),
  async run({ config, services }, args): Promise<CommandResult> {
    const { parseSchedule } = await import('../src/schedule/index.js');
    const expr = args.expr ?? config.schedule;
    const schedule = parseSchedule(expr, args.expr === undefined ? 'schedule' : 'EXPR');
    const from = args.from === undefined ? services.now() : parseFrom(args.from);
    const times = schedule.next(from, args.count);
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
