import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isCatchUpDue, MAX_WAIT_MS, parseSchedule, ScheduleTimer } from '../../src/schedule/index.js';
import { hvBin } from '../fixtures/world.js';
import { FakeTimers } from './fake-timers.js';

// One source of schedule truth: across both DST changes of 2026 in two zones, what
// `hv schedule next` prints (the built CLI, TZ set) is what the daemon's timer fires at.

const dir = mkdtempSync(join(process.env.HV_TEST_TMP ?? tmpdir(), 'hv-dst-'));
const configPath = join(dir, 'config.json');
writeFileSync(configPath, '{}');
const savedTz = process.env.TZ;
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  if (savedTz === undefined) delete process.env.TZ;
  else process.env.TZ = savedTz;
});

interface Case {
  what: string;
  expr: string;
  from: string;
  /** Local times as `hv schedule next` prints them. */
  expected: string[];
}

// Europe/Berlin: 2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET.
const BERLIN: Case[] = [
  {
    what: 'daily cron in the spring gap runs when the gap ends',
    expr: '30 2 * * *',
    from: '2026-03-28T12:00:00+01:00',
    expected: ['2026-03-29T03:00:00+02:00', '2026-03-30T02:30:00+02:00', '2026-03-31T02:30:00+02:00'],
  },
  {
    what: 'daily cron in the fall overlap runs once, at the first 02:30',
    expr: '30 2 * * *',
    from: '2026-10-24T12:00:00+02:00',
    expected: ['2026-10-25T02:30:00+02:00', '2026-10-26T02:30:00+01:00', '2026-10-27T02:30:00+01:00'],
  },
  {
    what: 'hourly cron: no 02:00 in spring',
    expr: '0 * * * *',
    from: '2026-03-29T00:10:00+01:00',
    expected: ['2026-03-29T01:00:00+01:00', '2026-03-29T03:00:00+02:00', '2026-03-29T04:00:00+02:00'],
  },
  {
    what: 'hourly cron: 02:00 twice in fall, an hour apart',
    expr: '0 * * * *',
    from: '2026-10-25T00:10:00+02:00',
    expected: [
      '2026-10-25T01:00:00+02:00',
      '2026-10-25T02:00:00+02:00',
      '2026-10-25T02:00:00+01:00',
      '2026-10-25T03:00:00+01:00',
    ],
  },
  {
    what: 'systemd calendar, Sundays 02:30, spring',
    expr: 'Sun *-*-* 02:30:00',
    from: '2026-03-28T12:00:00+01:00',
    expected: ['2026-03-29T03:00:00+02:00', '2026-04-05T02:30:00+02:00'],
  },
  {
    what: 'systemd calendar, Sundays 02:30, fall',
    expr: 'Sun *-*-* 02:30:00',
    from: '2026-10-24T12:00:00+02:00',
    expected: ['2026-10-25T02:30:00+02:00', '2026-11-01T02:30:00+01:00'],
  },
  {
    what: 'systemd calendar every half hour through the fall overlap',
    expr: '*:0/30',
    from: '2026-10-25T01:45:00+02:00',
    expected: [
      '2026-10-25T02:00:00+02:00',
      '2026-10-25T02:30:00+02:00',
      '2026-10-25T02:00:00+01:00',
      '2026-10-25T02:30:00+01:00',
      '2026-10-25T03:00:00+01:00',
    ],
  },
];

// America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST.
const NEW_YORK: Case[] = [
  {
    what: 'daily cron in the spring gap runs when the gap ends',
    expr: '30 2 * * *',
    from: '2026-03-07T12:00:00-05:00',
    expected: ['2026-03-08T03:00:00-04:00', '2026-03-09T02:30:00-04:00'],
  },
  {
    what: 'daily cron on the fall-back day (02:30 exists once)',
    expr: '30 2 * * *',
    from: '2026-10-31T12:00:00-04:00',
    expected: ['2026-11-01T02:30:00-05:00', '2026-11-02T02:30:00-05:00'],
  },
  {
    what: 'hourly keyword: no 02:00 in spring',
    expr: 'hourly',
    from: '2026-03-08T00:10:00-05:00',
    expected: ['2026-03-08T01:00:00-05:00', '2026-03-08T03:00:00-04:00', '2026-03-08T04:00:00-04:00'],
  },
  {
    what: 'hourly keyword: 01:00 twice in fall',
    expr: 'hourly',
    from: '2026-11-01T00:10:00-04:00',
    expected: [
      '2026-11-01T01:00:00-04:00',
      '2026-11-01T01:00:00-05:00',
      '2026-11-01T02:00:00-05:00',
      '2026-11-01T03:00:00-05:00',
    ],
  },
  {
    what: 'systemd calendar 02:15 in the spring gap runs when the gap ends',
    expr: '*-*-* 02:15:00',
    from: '2026-03-07T12:00:00-05:00',
    expected: ['2026-03-08T03:00:00-04:00', '2026-03-09T02:15:00-04:00'],
  },
  {
    what: 'systemd calendar 01:30 in the fall overlap runs once',
    expr: '*-*-* 01:30',
    from: '2026-10-31T12:00:00-04:00',
    expected: ['2026-11-01T01:30:00-04:00', '2026-11-02T01:30:00-05:00'],
  },
];

/** `hv schedule next EXPR --count N --from ISO --json` in a zone: local times and UTC instants. */
function cliNext(tz: string, c: Case): { next: string[]; nextUtc: string[] } {
  const args = ['schedule', 'next', c.expr, '--count', String(c.expected.length), '--from', c.from, '--json'];
  const r = spawnSync(process.execPath, [hvBin, ...args, '--config', configPath], {
    encoding: 'utf8',
    env: { ...process.env, TZ: tz },
  });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

/** The instants the daemon's timer fires at (no random delay), with the clock time of each firing. */
function timerFires(tz: string, c: Case): { instant: string; firedAt: string }[] {
  process.env.TZ = tz;
  const clock = new FakeTimers(new Date(c.from).getTime());
  const fired: { instant: string; firedAt: string }[] = [];
  const timer = new ScheduleTimer(
    parseSchedule(c.expr),
    (instant) => fired.push({ instant: instant.toISOString(), firedAt: new Date(clock.now()).toISOString() }),
    { spreadMs: 0, timers: clock },
  );
  timer.start();
  while (fired.length < c.expected.length) clock.runNext();
  timer.stop();
  expect(clock.armed).toBe(0);
  for (const ms of clock.waits) expect(ms).toBeLessThanOrEqual(MAX_WAIT_MS);
  return fired;
}

for (const [tz, cases] of [
  ['Europe/Berlin', BERLIN],
  ['America/New_York', NEW_YORK],
] as const) {
  describe(`hv schedule next and the daemon's timer agree (TZ=${tz})`, () => {
    for (const c of cases) {
      it(`${c.what}: ${c.expr}`, () => {
        const cli = cliNext(tz, c);
        expect(cli.next).toEqual(c.expected);
        const fires = timerFires(tz, c);
        expect(fires.map((f) => f.instant)).toEqual(cli.nextUtc);
        expect(fires.map((f) => f.firedAt)).toEqual(cli.nextUtc);
      });
    }
  });
}

describe('the catch-up uses the same instants', () => {
  it('a run in the spring gap is missed from 03:00 CEST on, not before, and not at 03:30', () => {
    process.env.TZ = 'Europe/Berlin';
    const daily = parseSchedule('30 2 * * *');
    const last = new Date('2026-03-28T12:00:00+01:00');
    expect(isCatchUpDue(last, daily, new Date('2026-03-29T01:59:59+01:00'))).toBe(false);
    expect(isCatchUpDue(last, daily, new Date('2026-03-29T03:00:00+02:00'))).toBe(true);
  });

  it('a run in the fall overlap is not due again in the repeated hour', () => {
    process.env.TZ = 'America/New_York';
    const daily = parseSchedule('*-*-* 01:30');
    const ranFirst = new Date('2026-11-01T01:31:00-04:00');
    expect(isCatchUpDue(ranFirst, daily, new Date('2026-11-01T01:45:00-05:00'))).toBe(false);
  });
});

describe("the daemon's timer", () => {
  it('splits a month-long wait into chunks below the timer limit and still fires on the instant', () => {
    process.env.TZ = 'Europe/Berlin';
    const clock = new FakeTimers(new Date('2026-03-01T00:00:01+01:00').getTime());
    const fired: number[] = [];
    const timer = new ScheduleTimer(parseSchedule('monthly'), () => fired.push(clock.now()), {
      spreadMs: 0,
      timers: clock,
    });
    timer.start();
    while (fired.length === 0) clock.runNext();
    expect(new Date(fired[0] ?? 0).toISOString()).toBe('2026-03-31T22:00:00.000Z'); // April 1st 00:00 CEST
    expect(Math.max(...clock.waits)).toBe(MAX_WAIT_MS);
    expect(clock.waits.length).toBeGreaterThan(2900);
    timer.stop();
  });

  it('recomputes after the wall clock is stepped back, and fires once after a step forward', () => {
    process.env.TZ = 'Europe/Berlin';
    const clock = new FakeTimers(new Date('2026-06-10T12:00:00+02:00').getTime());
    const fired: string[] = [];
    const logs: string[] = [];
    const timer = new ScheduleTimer(parseSchedule('30 2 * * *'), (i) => fired.push(i.toISOString()), {
      spreadMs: 0,
      timers: clock,
      log: (_level, msg) => logs.push(msg),
    });
    expect(timer.start()?.instant.toISOString()).toBe('2026-06-11T00:30:00.000Z');
    clock.step(-3 * 86_400_000); // back to June 7th, noon
    clock.runNext();
    expect(logs).toContain('clock stepped; schedule recomputed');
    expect(timer.armed?.instant.toISOString()).toBe('2026-06-08T00:30:00.000Z');

    clock.step(5 * 86_400_000); // forward to June 12th, past four instants
    clock.runNext();
    expect(fired).toEqual(['2026-06-08T00:30:00.000Z']);
    expect(new Date(timer.armed?.instant ?? 0).getTime()).toBeGreaterThan(clock.now());
    timer.stop();
  });

  it('waits the random delay after the instant, within the spread', () => {
    process.env.TZ = 'America/New_York';
    const clock = new FakeTimers(new Date('2026-03-07T12:00:00-05:00').getTime());
    const fired: number[] = [];
    const timer = new ScheduleTimer(parseSchedule('30 2 * * *'), () => fired.push(clock.now()), {
      spreadMs: 600_000,
      timers: clock,
      rand: () => 0.5,
    });
    const armed = timer.start();
    expect(armed?.instant.toISOString()).toBe('2026-03-08T07:00:00.000Z');
    while (fired.length === 0) clock.runNext();
    expect(fired[0]).toBe(new Date('2026-03-08T07:05:00.000Z').getTime());
    timer.stop();
  });
});
