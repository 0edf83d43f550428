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
  const times: TimesOfDay = {
    hours: sortedUnique(fields.hour),
    minutes: sortedUnique(fields.minute),
    seconds: sortedUnique(fields.second),
    wildcard: repeatsByTheClock(expr),
  };
  return {
    expr,
    nextAfter(from: Date): Date | undefined {
      const fromMs = from.getTime();
      if (Number.isNaN(fromMs)) throw new RangeError('invalid start date');
      // Start a day early: around a DST change a local day's instants reach into its neighbours.
      let day = previousDay(clock.dayOf(from));
      const lastYear = day.y + HORIZON_YEARS;
      while (day.y <= lastYear) {
        if (!days.monthMatches(day.m)) {
          day = firstOfNextMonth(day);
          continue;
        }
        if (days.dayMatches(day.y, day.m, day.d)) {
          const found = firstOnDay(clock, day, times, fromMs);
          if (found !== undefined) return new Date(found);
        }
        day = nextDay(day);
      }
      return undefined;
    },
  };
}

/**
 * Whether an expression repeats by the clock rather than naming fixed times of day: its minute or
 * hour field starts with `*` (`*\/15 * * * *`, `0 * * * *`, `@hourly`). This is cronie's
 * MIN_STAR/HR_STAR distinction (src/entry.c), which decides what happens at a DST change.
 */
export function repeatsByTheClock(expr: string): boolean {
  const trimmed = expr.trim().toLowerCase();
  if (trimmed.startsWith('@')) return trimmed === '@hourly';
  const fields = trimmed.split(/\s+/);
  const [minute, hour] = fields.length === 6 ? fields.slice(1) : fields;
  return (minute ?? '').startsWith('*') || (hour ?? '').startsWith('*');
}

interface Day {
  y: number;
  m: number; // 1..12
  d: number;
}

interface TimesOfDay {
  hours: number[];
  minutes: number[];
  seconds: number[];
  /** See `repeatsByTheClock`. */
  wildcard: boolean;
}

/**
 * The earliest fire instant on a local calendar day that is after `afterMs`.
 *
 * DST, as cronie does it (src/cron.c, "DST begins" / "DST ends"):
 * - A local time that does not exist (spring forward, 02:30 on the last Sunday of March in
 *   Europe/Berlin) fires once at the first instant after the gap (03:00), when the expression names
 *   fixed times of day (`30 2 * * *`, `*-*-* 02:30`, daily, monthly): a daily or monthly run is never
 *   skipped. Several such times coalesce into that one run. (systemd's OnCalendar= skips the run
 *   instead: `systemd-analyze calendar` gives the next day's 02:30.)
 * - A local time that occurs twice (fall back) fires once, at its first occurrence, for those same
 *   fixed-time expressions (systemd agrees).
 * - An expression that repeats by the clock (`repeatsByTheClock`: hourly, `*\/15 * * * *`) follows
 *   the clock as it is: the skipped hour has no runs and the repeated hour runs again, as cronie
 *   runs its wildcard jobs, so an hourly check never waits two hours.
 */
function firstOnDay(clock: Clock, day: Day, times: TimesOfDay, afterMs: number): number | undefined {
  const { hours, minutes, seconds, wildcard } = times;
  const lastMinute = minutes[minutes.length - 1] ?? 59;
  const lastSecond = seconds[seconds.length - 1] ?? 59;
  const zone = clock.offsets(day);
  // Every instant of local time L lies in [L - maxOffset, L - minOffset] (L read as if it were UTC):
  // these bounds prune whole hours and minutes, and stop the search once nothing can be earlier.
  const minOffset = Math.min(zone.before, zone.after);
  const maxOffset = Math.max(zone.before, zone.after);
  const wall = (h: number, mi: number, s: number) => Date.UTC(day.y, day.m - 1, day.d, h, mi, s, 0);
  let best: number | undefined;
  const beaten = (wallMs: number) => best !== undefined && wallMs - maxOffset > best;
  for (const h of hours) {
    if (beaten(wall(h, 0, 0))) break;
    if (wall(h, lastMinute, lastSecond) - minOffset <= afterMs) continue;
    for (const mi of minutes) {
      if (beaten(wall(h, mi, 0))) break;
      if (wall(h, mi, lastSecond) - minOffset <= afterMs) continue;
      for (const s of seconds) {
        const wallMs = wall(h, mi, s);
        if (beaten(wallMs)) break;
        if (wallMs - minOffset <= afterMs) continue;
        const { occurrences, gapEnd } = instantsOf(zone, wallMs);
        const fires = wildcard ? occurrences : [occurrences[0] ?? gapEnd];
        for (const t of fires)
          if (t !== undefined && t > afterMs && (best === undefined || t < best)) best = t;
      }
    }
  }
  return best;
}

/** The UTC offsets (ms, local = UTC + offset) around a day, and when it changes if it does. */
interface DayOffsets {
  before: number;
  after: number;
  /** The instant the offset changes from `before` to `after`. */
  change?: number;
}

/**
 * The instants at which the local clock reads `wallMs` (a local time written as if it were UTC):
 * one, two in a fall-back overlap (ascending), or none in a spring-forward gap, then with the
 * instant the gap ends (the first instant after it).
 */
function instantsOf(zone: DayOffsets, wallMs: number): { occurrences: number[]; gapEnd?: number } {
  const { before, after, change } = zone;
  if (change === undefined) return { occurrences: [wallMs - before] };
  const occurrences: number[] = [];
  if (wallMs - before < change) occurrences.push(wallMs - before);
  if (wallMs - after >= change) occurrences.push(wallMs - after);
  occurrences.sort((a, b) => a - b);
  return occurrences.length > 0 ? { occurrences } : { occurrences, gapEnd: change };
}

const DAY_MS = 86_400_000;

/** Calendar arithmetic in local time or in UTC. */
interface Clock {
  dayOf(t: Date): Day;
  /** The offsets that apply to the local times of that day (at most one change per day). */
  offsets(day: Day): DayOffsets;
}

const offsetAt = (ms: number) => -new Date(ms).getTimezoneOffset() * 60_000;

const LOCAL_CLOCK: Clock = {
  dayOf: (t) => ({ y: t.getFullYear(), m: t.getMonth() + 1, d: t.getDate() }),
  offsets(day) {
    // Every instant of the day's local times lies within a day of its midnight read as UTC.
    const midnight = Date.UTC(day.y, day.m - 1, day.d);
    let lo = midnight - DAY_MS;
    let hi = midnight + 2 * DAY_MS;
    const before = offsetAt(lo);
    const after = offsetAt(hi);
    if (before === after) return { before, after };
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (offsetAt(mid) === before) lo = mid;
      else hi = mid;
    }
    return { before, after, change: hi };
  },
};

const UTC_CLOCK: Clock = {
  dayOf: (t) => ({ y: t.getUTCFullYear(), m: t.getUTCMonth() + 1, d: t.getUTCDate() }),
  offsets: () => ({ before: 0, after: 0 }),
};

function previousDay({ y, m, d }: Day): Day {
  const t = new Date(Date.UTC(y, m - 1, d - 1));
  return { y: t.getUTCFullYear(), m: t.getUTCMonth() + 1, d: t.getUTCDate() };
}

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
