/**
 * systemd calendar expressions (systemd.time(7), OnCalendar=) of the forms admins write, translated
 * into an equivalent node-cron expression:
 *
 *   `[WEEKDAYS] [[YEAR-]MONTH-DAY] [HOUR:MINUTE[:SECOND]]`
 *
 * WEEKDAYS is a list of names and `..` ranges (`Sat,Sun`, `Mon..Fri`); every date and time component
 * is `*`, a number, a list (`1,15`), a range (`1..5`) or a repetition (`0/15`, `*\/15`); the day may be
 * counted from the month's end with `~` (`*-*~01` is the last day). The date defaults to `*-*-*`, the
 * time to `00:00:00`. Like systemd, weekday and date must both match. Not supported (no cron
 * equivalent, or not worth guessing at): a specific year, time zones, fractional seconds.
 */

/** Thrown for an expression that is not a calendar expression we understand; the message says why. */
export class CalendarError extends Error {}

const WEEKDAY_NAMES = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'];

/** The node-cron expression (5 fields, or 6 when seconds matter) equivalent to a calendar expression. */
export function calendarToCron(expr: string): string {
  const tokens = expr.trim().split(/\s+/).filter(Boolean);
  if (tokens.length === 0) throw new CalendarError('it is empty');
  let i = 0;
  let weekdays: number[] | undefined;
  let date: { months: number[]; days: string } | undefined;
  let time: { hours: number[]; minutes: number[]; seconds: number[] } | undefined;
  const first = tokens[0] ?? '';
  if (/^[a-z]/i.test(first)) {
    if (!isWeekdayList(first) && !/[.,-]/.test(first))
      throw new CalendarError(`"${first}" is not a weekday (Mon..Sun), a date (*-*-01) or a time (02:00)`);
    weekdays = parseWeekdays(first);
    i++;
  }
  const dateToken = tokens[i];
  if (dateToken !== undefined && !dateToken.includes(':') && /[-~]/.test(dateToken)) {
    date = parseDate(dateToken);
    i++;
  }
  const timeToken = tokens[i];
  if (timeToken?.includes(':')) {
    time = parseTime(timeToken);
    i++;
  }
  const rest = tokens[i];
  if (rest !== undefined) {
    if (i > 0 && isWeekdayList(rest))
      throw new CalendarError(`weekdays come first, as in "Mon *-*-* 02:00" (found "${rest}" later)`);
    if (i > 0 && /^[A-Za-z][A-Za-z0-9_+/-]*$/.test(rest))
      throw new CalendarError(
        `time zones ("${rest}") are not supported; schedules use the host's local time`,
      );
    throw new CalendarError(`"${rest}" is not a weekday (Mon..Sun), a date (*-*-01) or a time (02:00)`);
  }
  const seconds = time?.seconds ?? [0];
  const fields = [
    render(time?.minutes ?? [0], 0, 59),
    render(time?.hours ?? [0], 0, 23),
    date?.days ?? '*',
    render(date?.months ?? [], 1, 12),
    render(weekdays ?? [], 0, 6),
  ];
  if (seconds.length !== 1 || seconds[0] !== 0) fields.unshift(render(seconds, 0, 59));
  return fields.join(' ');
}

function parseWeekdays(token: string): number[] {
  const days = new Set<number>();
  for (const item of token.split(',')) {
    const [from, to, extra] = item.split(/\.\.|-/);
    if (extra !== undefined || from === undefined)
      throw new CalendarError(`"${item}" is not a weekday range`);
    const start = weekdayNumber(from);
    const end = to === undefined ? start : weekdayNumber(to);
    // Ranges run forward through the week, wrapping after Sunday (Fri..Mon is Fri, Sat, Sun, Mon).
    const span = (((end - start) % 7) + 7) % 7;
    for (let k = 0; k <= span; k++) days.add((start + k) % 7);
  }
  return [...days];
}

function isWeekdayList(token: string): boolean {
  try {
    parseWeekdays(token);
    return true;
  } catch {
    return false;
  }
}

function weekdayNumber(name: string): number {
  const lower = name.toLowerCase();
  const index = WEEKDAY_NAMES.findIndex((full) => lower.length >= 3 && full.startsWith(lower));
  if (index < 0 || !(lower.length === 3 || lower === WEEKDAY_NAMES[index]))
    throw new CalendarError(`"${name}" is not a weekday (Mon, Tue, Wed, Thu, Fri, Sat, Sun)`);
  return index;
}

function parseDate(token: string): { months: number[]; days: string } {
  const parts = token.split(/([-~])/);
  // [YEAR, '-', MONTH, sep, DAY] or [MONTH, sep, DAY]
  const [year, yearSep, month, daySep, day] = parts.length === 5 ? parts : ['*', '-', ...parts];
  if (parts.length !== 5 && parts.length !== 3)
    throw new CalendarError(`"${token}" is not a date like *-*-01`);
  if (yearSep !== '-' || month === undefined || day === undefined || daySep === undefined)
    throw new CalendarError(`"${token}" is not a date like *-*-01`);
  if (year !== '*')
    throw new CalendarError(`a specific year ("${year}") cannot repeat; use * for the year, as in *-*-01`);
  const months = parseComponent(month, 1, 12, 'month');
  if (daySep === '-') return { months, days: render(parseComponent(day, 1, 31, 'day'), 1, 31) };
  // `~N` counts from the end of the month: ~1 is the last day (cron L), ~2 the one before (L-1).
  if (!/^\d+(,\d+)*$/.test(day))
    throw new CalendarError(`"~${day}" must be days counted from the month's end, as in *-*~01`);
  const fromEnd = parseComponent(day, 1, 28, 'day counted from the end');
  return { months, days: fromEnd.map((n) => (n === 1 ? 'L' : `L-${n - 1}`)).join(',') };
}

function parseTime(token: string): { hours: number[]; minutes: number[]; seconds: number[] } {
  const parts = token.split(':');
  const [hour, minute, second] = parts;
  if (parts.length < 2 || parts.length > 3 || hour === undefined || minute === undefined)
    throw new CalendarError(`"${token}" is not a time like 02:00 or 02:00:00`);
  return {
    hours: parseComponent(hour, 0, 23, 'hour'),
    minutes: parseComponent(minute, 0, 59, 'minute'),
    seconds: second === undefined ? [0] : parseComponent(second, 0, 59, 'second'),
  };
}

const ITEM = /^(\*|\d{1,4})(?:\.\.(\d{1,4}))?(?:\/(\d{1,4}))?$/;

/** One component: `*`, `N`, `N..M`, `N/R`, `N..M/R`, `*\/R`, and comma lists of those. */
function parseComponent(text: string, min: number, max: number, what: string): number[] {
  const values = new Set<number>();
  for (const item of text.split(',')) {
    const m = ITEM.exec(item);
    if (!m) throw new CalendarError(`"${item}" is not a valid ${what} (a number, a..b, a/step or *)`);
    const [, startText = '*', endText, stepText] = m;
    if (startText === '*' && endText !== undefined)
      throw new CalendarError(`"${item}" is not a valid ${what}`);
    const start = startText === '*' ? min : Number(startText);
    const step = stepText === undefined ? 1 : Number(stepText);
    const end = endText !== undefined ? Number(endText) : startText === '*' || stepText ? max : start;
    if (start < min || start > max || end < min || end > max)
      throw new CalendarError(`${what} "${item}" is out of range (${min}..${max})`);
    if (end < start || step < 1) throw new CalendarError(`"${item}" is not a valid ${what} range`);
    for (let v = start; v <= end; v += step) values.add(v);
  }
  return [...values].sort((a, b) => a - b);
}

/** A cron field for a set of values: `*`, `*\/S`, `A-B/S`, or a list of values and `A-B` runs. */
function render(values: number[], min: number, max: number): string {
  const sorted = [...new Set(values)].sort((a, b) => a - b);
  if (sorted.length === 0 || sorted.length === max - min + 1) return '*';
  const first = sorted[0] ?? min;
  const last = sorted[sorted.length - 1] ?? max;
  if (sorted.length >= 3) {
    const step = (sorted[1] ?? first) - first;
    const arithmetic = step > 1 && sorted.every((v, k) => v === first + k * step);
    if (arithmetic) return first === min && last + step > max ? `*/${step}` : `${first}-${last}/${step}`;
  }
  const runs: string[] = [];
  let runStart = first;
  let previous = first;
  for (const v of [...sorted.slice(1), Number.NaN]) {
    if (v === previous + 1) {
      previous = v;
      continue;
    }
    runs.push(runStart === previous ? `${runStart}` : `${runStart}-${previous}`);
    runStart = v;
    previous = v;
  }
  return runs.join(',');
}
