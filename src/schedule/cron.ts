import { validate, validateDetailed } from 'node-cron';

/**
 * A cron expression compiled for matching over local time.
 *
 * Fields are expanded by node-cron's own `validateDetailed`, so an expression means exactly what
 * node-cron makes of it (names, ranges, wrap-around ranges, steps, `?`, `L`, `W`, `#`; day of month
 * AND day of week must both match, unlike Vixie cron's OR). Only the search for the next fire time
 * is ours.
 */
export interface CronMatcher {
  readonly expr: string;
  /** The first fire time strictly after `from`, or undefined when none within `HORIZON_YEARS`. */
  nextAfter(from: Date): Date | undefined;
}

/** How far ahead a search looks before it gives up (an expression such as `0 0 1 * 1#2` never fires). */
export const HORIZON_YEARS = 100;

/** Why `expr` is not a node-cron expression, or undefined when it is one. */
export function cronProblem(expr: string): string | undefined {
  let ok = false;
  try {
    ok = validate(expr);
  } catch {
    ok = false;
  }
  if (ok) return undefined;
  const detailed = validateDetailed(expr);
  return detailed.errors[0]?.message ?? 'not a valid cron expression';
}

/**
 * Compile a node-cron expression; throws an Error naming the problem when node-cron rejects it.
 * `utc` matches against UTC instead of local time (a calendar without DST, for nominal periods).
 */
export function compileCron(expr: string, { utc = false }: { utc?: boolean } = {}): CronMatcher {
  const clock = utc ? UTC_CLOCK : LOCAL_CLOCK;
  const problem = cronProblem(expr);
  const fields = problem === undefined ? validateDetailed(expr).fields : undefined;
  if (problem !== undefined || fields === undefined)
    throw new Error(problem ?? 'not a valid cron expression');
  const days = new DayMatcher(fields.dayOfMonth, fields.month, fields.dayOfWeek);
  const hours = sortedUnique(fields.hour);
  const minutes = sortedUnique(fields.minute);
  const seconds = sortedUnique(fields.second);
  return {
    expr,
    nextAfter(from: Date): Date | undefined {
      const fromMs = from.getTime();
      if (Number.isNaN(fromMs)) throw new RangeError('invalid start date');
      let day = clock.dayOf(from);
      const lastYear = day.y + HORIZON_YEARS;
      // The day of `from` may also start before it (the fall-back hour); later days need no bound.
      let bounded = true;
      while (day.y <= lastYear) {
        if (!days.monthMatches(day.m)) {
          day = firstOfNextMonth(day);
          bounded = false;
          continue;
        }
        if (days.dayMatches(day.y, day.m, day.d)) {
          const after = bounded ? fromMs : Number.NEGATIVE_INFINITY;
          const found = firstOnDay(clock, day, hours, minutes, seconds, after);
          if (found !== undefined && found > fromMs) return new Date(found);
        }
        day = nextDay(day);
        bounded = false;
      }
      return undefined;
    },
  };
}

interface Day {
  y: number;
  m: number; // 1..12
  d: number;
}

/**
 * The earliest fire instant on a local calendar day that is after `afterMs`.
 *
 * DST: a local time that does not exist (spring forward) is taken as JavaScript does, shifted by
 * the gap (02:30 becomes 03:30), so a daily or monthly run is never silently skipped; a local time
 * that exists twice (fall back) fires once, at its first occurrence.
 */
function firstOnDay(
  clock: Clock,
  day: Day,
  hours: number[],
  minutes: number[],
  seconds: number[],
  afterMs: number,
): number | undefined {
  const lastMinute = minutes[minutes.length - 1] ?? 59;
  const lastSecond = seconds[seconds.length - 1] ?? 59;
  // A time shifted out of a DST gap can be later than real times after the gap: keep the first
  // shifted candidate and compare it with the first real one. On a day with a DST change, a margin
  // keeps the pruning of whole hours and minutes correct (no gap anywhere exceeds two hours).
  const margin = clock.changesOffset(day) ? 2 * 3600_000 : 0;
  let shifted: number | undefined;
  for (const h of hours) {
    if (clock.ms(day, h, lastMinute, lastSecond) + margin <= afterMs) continue;
    for (const mi of minutes) {
      if (clock.ms(day, h, mi, lastSecond) + margin <= afterMs) continue;
      for (const s of seconds) {
        const ms = clock.ms(day, h, mi, s);
        if (ms <= afterMs) continue;
        if (!clock.isGap(day, h, mi, s)) return shifted === undefined ? ms : Math.min(ms, shifted);
        shifted = shifted === undefined ? ms : Math.min(ms, shifted);
      }
    }
  }
  return shifted;
}

/** Calendar arithmetic in local time or in UTC. */
interface Clock {
  dayOf(t: Date): Day;
  ms(day: Day, h: number, mi: number, s: number): number;
  /** True when the time does not exist on that day (it falls into a DST gap). */
  isGap(day: Day, h: number, mi: number, s: number): boolean;
  /** True when the UTC offset changes during that day. */
  changesOffset(day: Day): boolean;
}

const LOCAL_CLOCK: Clock = {
  dayOf: (t) => ({ y: t.getFullYear(), m: t.getMonth() + 1, d: t.getDate() }),
  ms: (day, h, mi, s) => new Date(day.y, day.m - 1, day.d, h, mi, s, 0).getTime(),
  isGap(day, h, mi, s) {
    const t = new Date(day.y, day.m - 1, day.d, h, mi, s, 0);
    return t.getHours() !== h || t.getMinutes() !== mi || t.getSeconds() !== s || t.getDate() !== day.d;
  },
  changesOffset: (day) =>
    new Date(day.y, day.m - 1, day.d).getTimezoneOffset() !==
    new Date(day.y, day.m - 1, day.d + 1).getTimezoneOffset(),
};

const UTC_CLOCK: Clock = {
  dayOf: (t) => ({ y: t.getUTCFullYear(), m: t.getUTCMonth() + 1, d: t.getUTCDate() }),
  ms: (day, h, mi, s) => Date.UTC(day.y, day.m - 1, day.d, h, mi, s, 0),
  isGap: () => false,
  changesOffset: () => false,
};

function nextDay({ y, m, d }: Day): Day {
  const t = new Date(Date.UTC(y, m - 1, d + 1));
  return { y: t.getUTCFullYear(), m: t.getUTCMonth() + 1, d: t.getUTCDate() };
}

function firstOfNextMonth({ y, m }: Day): Day {
  return m === 12 ? { y: y + 1, m: 1, d: 1 } : { y, m: m + 1, d: 1 };
}

function sortedUnique(values: number[]): number[] {
  return [...new Set(values)].sort((a, b) => a - b);
}

function lastDayOfMonth(y: number, m: number): number {
  return new Date(Date.UTC(y, m, 0)).getUTCDate();
}

function weekdayOf(y: number, m: number, d: number): number {
  return new Date(Date.UTC(y, m - 1, d)).getUTCDay();
}

const NEAREST_WEEKDAY = /^(\d{1,2}|L)W$/;
const LAST_OFFSET = /^L-(\d{1,2})$/;
const NTH_WEEKDAY = /^([0-7])#([1-5])$/;
const LAST_WEEKDAY = /^([0-7])L$/;

/** Calendar-day part of a cron expression, with node-cron's extensions. */
class DayMatcher {
  private readonly months: Set<number>;
  private readonly monthDays: Set<number>;
  private readonly monthDayTokens: string[];
  private readonly weekdays: Set<number>;
  private readonly weekdayTokens: string[];

  constructor(dayOfMonth: (number | string)[], month: number[], dayOfWeek: (number | string)[]) {
    this.months = new Set(month);
    this.monthDays = new Set(dayOfMonth.filter((v): v is number => typeof v === 'number'));
    this.monthDayTokens = dayOfMonth.filter((v): v is string => typeof v === 'string');
    this.weekdays = new Set(dayOfWeek.filter((v): v is number => typeof v === 'number').map((v) => v % 7));
    this.weekdayTokens = dayOfWeek.filter((v): v is string => typeof v === 'string');
  }

  monthMatches(m: number): boolean {
    return this.months.has(m);
  }

  dayMatches(y: number, m: number, d: number): boolean {
    return this.monthDayMatches(y, m, d) && this.weekdayMatches(y, m, d);
  }

  private monthDayMatches(y: number, m: number, d: number): boolean {
    if (this.monthDays.has(d)) return true;
    const last = lastDayOfMonth(y, m);
    for (const token of this.monthDayTokens) {
      if (token === 'L' && d === last) return true;
      const offset = LAST_OFFSET.exec(token);
      if (offset && d === last - Number(offset[1])) return true;
      const nearest = NEAREST_WEEKDAY.exec(token);
      if (nearest && d === nearestWeekday(y, m, nearest[1] === 'L' ? last : Number(nearest[1]))) return true;
    }
    return false;
  }

  private weekdayMatches(y: number, m: number, d: number): boolean {
    const weekday = weekdayOf(y, m, d);
    if (this.weekdays.has(weekday)) return true;
    for (const token of this.weekdayTokens) {
      const nth = NTH_WEEKDAY.exec(token);
      if (nth && Number(nth[1]) % 7 === weekday && Math.floor((d - 1) / 7) + 1 === Number(nth[2]))
        return true;
      const lastOf = LAST_WEEKDAY.exec(token);
      if (lastOf && Number(lastOf[1]) % 7 === weekday && d + 7 > lastDayOfMonth(y, m)) return true;
    }
    return false;
  }
}

/** The weekday (Mon-Fri) nearest to `target` within the month, as Quartz's `W` (never crossing months). */
function nearestWeekday(y: number, m: number, target: number): number {
  const last = lastDayOfMonth(y, m);
  if (target < 1 || target > last) return -1;
  const weekday = weekdayOf(y, m, target);
  if (weekday === 6) return target === 1 ? 3 : target - 1;
  if (weekday === 0) return target === last ? target - 2 : target + 1;
  return target;
}
