import { createTask, validate } from 'node-cron';
import { afterAll, describe, expect, it } from 'vitest';
import { isHvError } from '../../src/errors.js';
import { isCatchUpDue, parseSchedule, randomizedDelay } from '../../src/schedule/index.js';

// A zone with DST, so "local time" and the DST rules are exercised for real.
// Set at load time: describe bodies below build dates before any hook would run.
const savedTz = process.env.TZ;
process.env.TZ = 'Europe/Berlin';
afterAll(() => {
  if (savedTz === undefined) delete process.env.TZ;
  else process.env.TZ = savedTz;
});

const DAY = 86_400_000;

/** Local wall-clock rendering, independent of the zone's offset. */
function local(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function fires(expr: string, from: Date, count: number): string[] {
  return parseSchedule(expr).next(from, count).map(local);
}

function parseError(expr: string): string {
  try {
    parseSchedule(expr);
  } catch (e) {
    expect(isHvError(e) && e.code).toBe('config-invalid');
    return (e as Error).message;
  }
  throw new Error(`expected ${JSON.stringify(expr)} to be rejected`);
}

describe('parseSchedule: systemd calendar expressions', () => {
  it('Mon *-*-* 02:00:00 gives the next three Mondays at 02:00 local time', () => {
    // Wednesday 2024-01-10 12:00
    expect(fires('Mon *-*-* 02:00:00', new Date(2024, 0, 10, 12), 3)).toEqual([
      '2024-01-15 02:00:00',
      '2024-01-22 02:00:00',
      '2024-01-29 02:00:00',
    ]);
    const s = parseSchedule('Mon *-*-* 02:00:00');
    expect(s.cron).toBe('0 2 * * 1');
    expect(s.kind).toBe('calendar');
    expect(s.periodMs).toBe(7 * DAY);
  });

  it('starts strictly after `from`, even when `from` is a fire time', () => {
    expect(fires('Mon *-*-* 02:00:00', new Date(2024, 0, 15, 2), 1)).toEqual(['2024-01-22 02:00:00']);
    expect(fires('Mon *-*-* 02:00:00', new Date(2024, 0, 15, 1, 59, 59, 999), 1)).toEqual([
      '2024-01-15 02:00:00',
    ]);
  });

  it('Sat,Sun *-*-* 04:30 fires on weekends only', () => {
    expect(fires('Sat,Sun *-*-* 04:30', new Date(2024, 0, 10), 4)).toEqual([
      '2024-01-13 04:30:00',
      '2024-01-14 04:30:00',
      '2024-01-20 04:30:00',
      '2024-01-21 04:30:00',
    ]);
    expect(parseSchedule('Sat,Sun *-*-* 04:30').cron).toBe('30 4 * * 0,6');
  });

  it('understands weekday ranges, day lists, bare times, repetitions and ~', () => {
    expect(fires('Mon..Fri *-*-* 02:00', new Date(2024, 0, 12, 3), 2)).toEqual([
      '2024-01-15 02:00:00',
      '2024-01-16 02:00:00',
    ]);
    expect(fires('*-*-1,15 03:00', new Date(2024, 0, 10), 3)).toEqual([
      '2024-01-15 03:00:00',
      '2024-02-01 03:00:00',
      '2024-02-15 03:00:00',
    ]);
    expect(fires('*-*-01 03:00:00', new Date(2024, 0, 10), 2)).toEqual([
      '2024-02-01 03:00:00',
      '2024-03-01 03:00:00',
    ]);
    expect(fires('02:00', new Date(2024, 0, 10, 3), 1)).toEqual(['2024-01-11 02:00:00']);
    expect(fires('*-*-* 02:00', new Date(2024, 0, 10, 1), 1)).toEqual(['2024-01-10 02:00:00']);
    expect(fires('*:0/20', new Date(2024, 0, 10, 1, 5), 3)).toEqual([
      '2024-01-10 01:20:00',
      '2024-01-10 01:40:00',
      '2024-01-10 02:00:00',
    ]);
    expect(fires('*-*~01 23:00', new Date(2024, 0, 10), 2)).toEqual([
      '2024-01-31 23:00:00',
      '2024-02-29 23:00:00',
    ]);
    expect(fires('Fri..Mon 12:00:30', new Date(2024, 0, 10), 2)).toEqual([
      '2024-01-12 12:00:30',
      '2024-01-13 12:00:30',
    ]);
  });

  it('produces cron expressions node-cron accepts', () => {
    for (const expr of [
      'Mon *-*-* 02:00:00',
      '*-*-01 03:00:00',
      'Sat,Sun *-*-* 04:30',
      'Mon..Fri *-*-* 02:00',
      '*-*-* 02:00',
      '02:00',
      '*-*-1,15 03:00',
      '*-01,07-01 00:00',
      '*:0/15',
      '*-*~03',
      'Sun 10:15:30',
    ]) {
      const { cron } = parseSchedule(expr);
      expect(validate(cron), `${expr} -> ${cron}`).toBe(true);
    }
  });
});

describe('parseSchedule: keywords and cron', () => {
  it('monthly is the first day of each month at 00:00', () => {
    expect(fires('monthly', new Date(2024, 0, 10), 3)).toEqual([
      '2024-02-01 00:00:00',
      '2024-03-01 00:00:00',
      '2024-04-01 00:00:00',
    ]);
    const s = parseSchedule('monthly');
    expect(s).toMatchObject({ kind: 'keyword', cron: '0 0 1 * *', periodMs: 31 * DAY });
  });

  it('weekly is Monday 00:00 and daily is midnight, like systemd', () => {
    expect(fires('weekly', new Date(2024, 0, 10), 1)).toEqual(['2024-01-15 00:00:00']);
    expect(fires('daily', new Date(2024, 0, 10, 5), 1)).toEqual(['2024-01-11 00:00:00']);
    expect(fires('hourly', new Date(2024, 0, 10, 5, 1), 1)).toEqual(['2024-01-10 06:00:00']);
    expect(parseSchedule('weekly').periodMs).toBe(7 * DAY);
    expect(parseSchedule('daily').periodMs).toBe(DAY);
  });

  it('*/15 * * * * fires every quarter hour', () => {
    expect(fires('*/15 * * * *', new Date(2024, 0, 10, 23, 40), 3)).toEqual([
      '2024-01-10 23:45:00',
      '2024-01-11 00:00:00',
      '2024-01-11 00:15:00',
    ]);
    const s = parseSchedule('*/15 * * * *');
    expect(s).toMatchObject({ kind: 'cron', cron: '*/15 * * * *', periodMs: 15 * 60_000 });
  });

  it('accepts 6-field cron with seconds, names and node-cron extensions', () => {
    expect(fires('30 */20 * * * *', new Date(2024, 0, 10, 1, 0, 31), 2)).toEqual([
      '2024-01-10 01:20:30',
      '2024-01-10 01:40:30',
    ]);
    expect(fires('0 9 * * MON-FRI', new Date(2024, 0, 12, 10), 1)).toEqual(['2024-01-15 09:00:00']);
    expect(fires('0 0 L * *', new Date(2024, 0, 10), 2)).toEqual([
      '2024-01-31 00:00:00',
      '2024-02-29 00:00:00',
    ]);
    expect(fires('0 0 * * 1#2', new Date(2024, 0, 1), 2)).toEqual([
      '2024-01-08 00:00:00',
      '2024-02-12 00:00:00',
    ]);
    expect(fires('0 0 * * 5L', new Date(2024, 0, 1), 1)).toEqual(['2024-01-26 00:00:00']);
    // node-cron's nicknames keep cron's meaning: @weekly is Sunday (systemd's `weekly` is Monday).
    expect(fires('@weekly', new Date(2024, 0, 10), 1)).toEqual(['2024-01-14 00:00:00']);
    // 2024-06-15 is a Saturday: the nearest weekday is Friday the 14th.
    expect(fires('0 0 15W 6 *', new Date(2024, 0, 1), 1)).toEqual(['2024-06-14 00:00:00']);
  });

  it('means what node-cron means by the same expression', () => {
    // node-cron's own matcher decides on a grid of local times that holds every true fire time,
    // so any fire of ours off the grid shows as a difference too. (node-cron's match is slow.)
    const cases: Array<{ expr: string; from: Date; days: number; offsetMin: number; stepMin: number }> = [
      { expr: '*/15 * * * *', from: new Date(2024, 0, 10), days: 2, offsetMin: 0, stepMin: 15 },
      { expr: '0 22-2 * * *', from: new Date(2024, 0, 10), days: 4, offsetMin: 0, stepMin: 60 },
      { expr: '5 4 1,15 * 1-5', from: new Date(2024, 0, 1), days: 120, offsetMin: 5, stepMin: 60 },
      { expr: '0 0 L * *', from: new Date(2024, 0, 1), days: 366, offsetMin: 0, stepMin: 1440 },
      { expr: '0 0 * * 2#3', from: new Date(2024, 0, 1), days: 366, offsetMin: 0, stepMin: 1440 },
      { expr: '0 0 1W * *', from: new Date(2024, 0, 1), days: 366, offsetMin: 0, stepMin: 1440 },
      {
        expr: parseSchedule('Sat,Sun *-*-* 04:30').cron,
        from: new Date(2024, 0, 1),
        days: 20,
        offsetMin: 30,
        stepMin: 60,
      },
    ];
    for (const { expr, from, days, offsetMin, stepMin } of cases) {
      const task = createTask(expr, () => undefined);
      const expected: string[] = [];
      for (let day = 0; day < days; day++) {
        for (let minute = offsetMin; minute < 1440; minute += stepMin) {
          const t = new Date(from.getFullYear(), from.getMonth(), from.getDate() + day, 0, minute);
          if (task.match(t)) expected.push(local(t));
        }
      }
      void task.destroy();
      const end = new Date(from.getFullYear(), from.getMonth(), from.getDate() + days).getTime();
      const ours = parseSchedule(expr)
        .next(new Date(from.getTime() - 1), expected.length + 1)
        .filter((d) => d.getTime() < end)
        .map(local);
      expect(ours, expr).toEqual(expected);
      expect(expected.length, expr).toBeGreaterThan(1);
    }
  });

  it('computes 100 fires of a monthly schedule in milliseconds', () => {
    const s = parseSchedule('monthly');
    const t0 = performance.now();
    const result = s.next(new Date(2024, 0, 10), 100);
    expect(performance.now() - t0).toBeLessThan(100);
    expect(result).toHaveLength(100);
    expect(local(result[99]!)).toBe('2032-05-01 00:00:00');
  });
});

describe('parseSchedule: DST (Europe/Berlin)', () => {
  it('a daily time inside the spring-forward gap runs when the gap ends (03:00), not skipped', () => {
    expect(fires('*-*-* 02:30', new Date(2024, 2, 30, 12), 2)).toEqual([
      '2024-03-31 03:00:00',
      '2024-04-01 02:30:00',
    ]);
    // Several times in the gap are one run, also with a real 03:00 of the same schedule.
    expect(fires('0,30 2,3 * * *', new Date(2024, 2, 30, 12), 3)).toEqual([
      '2024-03-31 03:00:00',
      '2024-03-31 03:30:00',
      '2024-04-01 02:00:00',
    ]);
  });

  it('a schedule repeating by the clock skips the missing hour and runs in the repeated one', () => {
    expect(fires('*/30 * * * *', new Date(2024, 2, 31, 1, 10), 3)).toEqual([
      '2024-03-31 01:30:00',
      '2024-03-31 03:00:00',
      '2024-03-31 03:30:00',
    ]);
    const s = parseSchedule('*/30 * * * *');
    const fall = s.next(new Date(2024, 9, 27, 1, 50), 6).map((d) => d.getTime());
    // 02:00 and 02:30 twice (CEST, then CET), every 30 minutes of real time.
    expect(fall.slice(1).map((t, k) => t - (fall[k] ?? 0))).toEqual(Array(5).fill(30 * 60_000));
  });

  it('a time that exists twice (fall back) fires once', () => {
    const s = parseSchedule('*-*-* 02:30');
    const [first, second] = s.next(new Date(2024, 9, 26, 12), 2);
    expect(second!.getTime() - first!.getTime()).toBe(25 * 3_600_000);
  });

  it('a weekly schedule keeps its nominal 7-day period across DST', () => {
    expect(parseSchedule('Mon *-*-* 02:00:00', 'schedule', new Date(2024, 2, 20)).periodMs).toBe(7 * DAY);
  });
});

describe('parseSchedule: errors', () => {
  it('"every tuesday" names the key and gives examples', () => {
    const message = parseError('every tuesday');
    expect(message).toMatch(/^schedule: "every tuesday" is not a schedule/);
    expect(message).toContain('monthly');
    expect(message).toContain('"0 2 * * 1"');
    expect(message).toContain('"Mon *-*-* 02:00:00"');
    expect(message).toContain('"*-*-01 03:00:00"');
  });

  it('names the given key', () => {
    expect(() => parseSchedule('sometimes', 'notify.channels[2].digestSchedule')).toThrow(
      /^notify\.channels\[2\]\.digestSchedule: "sometimes" is not a schedule/,
    );
  });

  it('rejects garbage, bad cron fields, impossible dates, years and time zones with a reason', () => {
    expect(parseError('garbage')).toContain('"garbage" is not a weekday');
    expect(parseError('')).toContain('empty');
    expect(parseError('0 61 * * *')).toContain('61');
    expect(parseError('1 2 3 4 5 6 7')).toContain('cron');
    expect(parseError('*-02-30 00:00')).toContain('impossible');
    expect(parseError('2030-*-01')).toContain('year');
    expect(parseError('*-*-* 02:00 UTC')).toContain('time zones');
    expect(parseError('*-*-* 25:00')).toContain('hour');
    expect(parseError('Mon *-*-* 02:00 Tue')).toContain('weekdays come first');
    expect(parseError('Funday 02:00')).toContain('"Funday" is not a weekday');
    expect(parseError('0 0 1 * 1#2')).toContain('fires less than twice');
    expect(parseError('0 2 * *')).toContain('5 or 6 fields');
  });
});

describe('isCatchUpDue', () => {
  const monthly = parseSchedule('monthly');
  const now = new Date(2024, 2, 10, 12);

  it('is due when there was never a successful run', () => {
    expect(isCatchUpDue(undefined, monthly, now)).toBe(true);
  });

  it('is due when a scheduled time passed since the last success', () => {
    expect(isCatchUpDue(new Date(2024, 1, 20), monthly, now)).toBe(true);
    // Just before the March 1st run: that run was missed.
    expect(isCatchUpDue(new Date(2024, 1, 29, 23, 59), monthly, now)).toBe(true);
  });

  it('is not due when the last success is after the latest scheduled time', () => {
    expect(isCatchUpDue(new Date(2024, 2, 1, 0, 40), monthly, now)).toBe(false);
    expect(isCatchUpDue(new Date(2024, 2, 9), monthly, now)).toBe(false);
  });

  it('treats the scheduled instant itself as due', () => {
    expect(isCatchUpDue(new Date(2024, 1, 15), monthly, new Date(2024, 2, 1, 0, 0))).toBe(true);
  });

  it('is not due when the clock went backwards past the last success', () => {
    expect(isCatchUpDue(new Date(2024, 5, 1), monthly, now)).toBe(false);
  });
});

describe('randomizedDelay', () => {
  it('spreads within [0, max) seconds in ms', () => {
    expect(randomizedDelay(3600, () => 0)).toBe(0);
    expect(randomizedDelay(3600, () => 0.5)).toBe(1_800_000);
    expect(randomizedDelay(3600, () => 0.999999)).toBeLessThan(3_600_000);
    expect(randomizedDelay(3600, () => 1)).toBeLessThan(3_600_000);
  });

  it('is 0 for no delay', () => {
    expect(randomizedDelay(0)).toBe(0);
    expect(randomizedDelay(-5)).toBe(0);
    expect(randomizedDelay(Number.NaN)).toBe(0);
  });

  it('uses Math.random by default', () => {
    const d = randomizedDelay(10);
    expect(d).toBeGreaterThanOrEqual(0);
    expect(d).toBeLessThan(10_000);
  });
});
