import { HvError } from '../errors.js';
import { CalendarError, calendarToCron } from './calendar.js';
import { type CronMatcher, compileCron, cronProblem, HORIZON_YEARS } from './cron.js';

/** A parsed `schedule` setting. All times are the host's local time. */
export interface Schedule {
  /** The expression as the admin wrote it. */
  readonly expr: string;
  /** How it was written: a keyword (`monthly`), a cron expression, or a systemd calendar expression. */
  readonly kind: 'keyword' | 'cron' | 'calendar';
  /** An equivalent node-cron 4 expression (accepted by its `validate`). */
  readonly cron: string;
  /**
   * Nominal period in ms: the keyword's length for keywords (monthly: 31 days, weekly: 7 days, …),
   * otherwise the smallest gap between consecutive fires among the next few, measured on a
   * calendar without DST (so a weekly schedule is 7 days all year).
   */
  readonly periodMs: number;
  /**
   * The next `count` fire times strictly after `from`, ascending: the one computation behind
   * `hv schedule next`, the daemon's timer and the catch-up (DST rules: `firstOnDay` in cron.ts).
   */
  next(from: Date, count: number): Date[];
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** systemd's calendar shorthands (systemd.time(7)): monthly is the 1st at 00:00, weekly Monday 00:00. */
const KEYWORDS = new Map<string, { cron: string; periodMs: number }>([
  ['minutely', { cron: '* * * * *', periodMs: MINUTE }],
  ['hourly', { cron: '0 * * * *', periodMs: HOUR }],
  ['daily', { cron: '0 0 * * *', periodMs: DAY }],
  ['weekly', { cron: '0 0 * * 1', periodMs: 7 * DAY }],
  ['monthly', { cron: '0 0 1 * *', periodMs: 31 * DAY }],
  ['quarterly', { cron: '0 0 1 1,4,7,10 *', periodMs: 92 * DAY }],
  ['semiannually', { cron: '0 0 1 1,7 *', periodMs: 184 * DAY }],
  ['yearly', { cron: '0 0 1 1 *', periodMs: 366 * DAY }],
  ['annually', { cron: '0 0 1 1 *', periodMs: 366 * DAY }],
]);

const EXAMPLES =
  'use monthly, weekly, daily, a cron expression such as "0 2 * * 1", or a systemd calendar expression ' +
  'such as "Mon *-*-* 02:00:00" or "*-*-01 03:00:00"';

/** Fires sampled to compute `periodMs` of cron and calendar expressions. */
const PERIOD_SAMPLES = 16;

/**
 * Parse a `schedule` setting: a keyword (`monthly`, `weekly`, `daily`, `hourly`, …), a 5- or
 * 6-field cron expression, or a systemd calendar expression (`Mon *-*-* 02:00:00`,
 * `*-*-01 03:00:00`, `Sat,Sun *-*-* 04:30`, `Mon..Fri *-*-* 02:00`, `02:00`).
 *
 * @param key the config key, named in the error message
 * @param now where the sampling for `periodMs` starts
 * @throws HvError `config-invalid` naming the key, the reason and examples of what is accepted
 */
export function parseSchedule(expr: string, key = 'schedule', now: Date = new Date()): Schedule {
  const trimmed = expr.trim();
  const fail = (reason: string): HvError =>
    new HvError(
      'config-invalid',
      `${key}: ${JSON.stringify(expr)} is not a schedule (${reason}); ${EXAMPLES}`,
      {
        key,
        value: expr,
        reason,
      },
    );
  if (trimmed === '') throw fail('it is empty');

  const keyword = KEYWORDS.get(trimmed.toLowerCase());
  let kind: Schedule['kind'];
  let cron: string;
  if (keyword) {
    kind = 'keyword';
    cron = keyword.cron;
  } else if (trimmed.startsWith('@') || trimmed.split(/\s+/).length >= 5) {
    const problem = cronProblem(trimmed);
    if (problem !== undefined) throw fail(`as a cron expression: ${problem}`);
    kind = 'cron';
    cron = trimmed;
  } else {
    try {
      cron = calendarToCron(trimmed);
    } catch (e) {
      if (!(e instanceof CalendarError)) throw e;
      const fields = trimmed.split(/\s+/);
      if (fields.length > 1 && fields.every((f) => /^[\d*/,?-]+$/.test(f)))
        throw fail(
          `a cron expression has 5 or 6 fields (minute hour day month weekday), this has ${fields.length}`,
        );
      throw fail(e.message);
    }
    const problem = cronProblem(cron);
    if (problem !== undefined) throw fail(problem);
    kind = 'calendar';
  }

  const matcher = compileCron(cron);
  // The nominal period is measured on a calendar without DST, so a weekly schedule is 7 days.
  const sample = nextFires(compileCron(cron, { utc: true }), now, PERIOD_SAMPLES);
  if (sample.length < 2) throw fail(`it fires less than twice in the next ${HORIZON_YEARS} years`);
  const periodMs = keyword?.periodMs ?? smallestGap(sample);
  return Object.freeze({
    expr,
    kind,
    cron,
    periodMs,
    next: (from: Date, count: number): Date[] => nextFires(matcher, from, count),
  });
}

function nextFires(matcher: CronMatcher, from: Date, count: number): Date[] {
  const fires: Date[] = [];
  let cursor: Date | undefined = from;
  while (fires.length < count && cursor !== undefined) {
    cursor = matcher.nextAfter(cursor);
    if (cursor) fires.push(cursor);
  }
  return fires;
}

function smallestGap(fires: Date[]): number {
  let smallest = Number.POSITIVE_INFINITY;
  for (let k = 1; k < fires.length; k++) {
    const a = fires[k - 1];
    const b = fires[k];
    if (a && b) smallest = Math.min(smallest, b.getTime() - a.getTime());
  }
  return smallest;
}

/**
 * A random delay in ms in [0, maxSec s), spreading hosts like systemd's `RandomizedDelaySec=`.
 * A non-positive or non-finite `maxSec` gives 0.
 */
export function randomizedDelay(maxSec: number, rand: () => number = Math.random): number {
  if (!Number.isFinite(maxSec) || maxSec <= 0) return 0;
  const r = Math.min(Math.max(rand(), 0), 1 - Number.EPSILON);
  return Math.floor(r * maxSec * 1000);
}

/**
 * Whether a run was missed and should happen now, like systemd's `Persistent=true`: never
 * succeeded, or a fire time of `schedule` lies after the last success and at or before `now`.
 */
export function isCatchUpDue(lastSuccess: Date | undefined, schedule: Schedule, now: Date): boolean {
  if (lastSuccess === undefined || Number.isNaN(lastSuccess.getTime())) return true;
  const [fire] = schedule.next(lastSuccess, 1);
  return fire !== undefined && fire.getTime() <= now.getTime();
}
