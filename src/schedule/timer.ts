import { randomizedDelay, type Schedule } from './schedule.js';

/**
 * The clock and timers the schedule timer runs on. The daemon uses the real ones; a test passes a
 * fake to see which delay is armed without waiting for it.
 */
export interface TimerHost {
  /** Wall-clock time in ms since the epoch (`Date.now()`). */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: TimerHost = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/**
 * The longest single wait. Far below Node's 2^31-1 ms timer limit, and short enough that a step of
 * the wall clock (NTP at boot, an admin's `date -s`), which a timer measured in elapsed time does not
 * see, is noticed within a quarter of an hour.
 */
export const MAX_WAIT_MS = 15 * 60_000;

/** A wake-up this far from when it was expected means the wall clock was stepped. */
export const CLOCK_STEP_MS = 10_000;

/** The firing the timer is armed for. */
export interface ArmedFire {
  /** The schedule's instant, as `hv schedule next` prints it. */
  readonly instant: Date;
  /** When it fires: the instant plus this firing's random delay (ms since the epoch). */
  readonly dueAt: number;
}

export interface ScheduleTimerOptions {
  /** The largest random delay after each instant, in ms (hosts spread like RandomizedDelaySec=). */
  spreadMs: number;
  timers?: TimerHost;
  rand?: () => number;
  log?: (level: 'info' | 'warn', msg: string, fields: Record<string, unknown>) => void;
}

/**
 * Fires `onFire` at each instant of a schedule, computed by the same `Schedule.next` that
 * `hv schedule next` and the catch-up use, so the three cannot disagree (DST included). A plain
 * timer, re-armed after each firing: no polling loop, nothing blocks the event loop.
 */
export class ScheduleTimer {
  private readonly timers: TimerHost;
  private armedFire: ArmedFire | undefined;
  private handle: unknown;
  private expectedWake = 0;

  constructor(
    private readonly schedule: Schedule,
    private readonly onFire: (instant: Date) => void,
    private readonly opts: ScheduleTimerOptions,
  ) {
    this.timers = opts.timers ?? realTimers;
  }

  /** The firing it is armed for; undefined when stopped or when the schedule never fires again. */
  get armed(): ArmedFire | undefined {
    return this.armedFire;
  }

  /** Arm for the first instant after now. */
  start(): ArmedFire | undefined {
    this.stop();
    this.arm(this.timers.now());
    return this.armedFire;
  }

  stop(): void {
    if (this.handle !== undefined) this.timers.clearTimeout(this.handle);
    this.handle = undefined;
    this.armedFire = undefined;
  }

  /** Arm for the first instant strictly after `afterMs`. */
  private arm(afterMs: number): void {
    const [instant] = this.schedule.next(new Date(afterMs), 1);
    if (instant === undefined) {
      this.armedFire = undefined;
      this.opts.log?.('warn', 'schedule has no further runs', { schedule: this.schedule.expr });
      return;
    }
    const delay = randomizedDelay(this.opts.spreadMs / 1000, this.opts.rand);
    this.armedFire = { instant, dueAt: instant.getTime() + delay };
    this.wait();
  }

  private wait(): void {
    const fire = this.armedFire;
    if (fire === undefined) return;
    const now = this.timers.now();
    const ms = Math.min(Math.max(fire.dueAt - now, 0), MAX_WAIT_MS);
    this.expectedWake = now + ms;
    this.handle = this.timers.setTimeout(() => this.wake(), ms);
  }

  private wake(): void {
    this.handle = undefined;
    const fire = this.armedFire;
    if (fire === undefined) return;
    const now = this.timers.now();
    if (Math.abs(now - this.expectedWake) > CLOCK_STEP_MS && now < fire.instant.getTime()) {
      // Stepped back (or forward, but not past the instant): the next instant may be another one.
      this.opts.log?.('info', 'clock stepped; schedule recomputed', {
        expected: new Date(this.expectedWake).toISOString(),
        now: new Date(now).toISOString(),
      });
      this.arm(now);
      return;
    }
    if (now < fire.dueAt) {
      this.wait();
      return;
    }
    // Due (or overdue after a step forward: then one run stands for all missed ones, as the
    // catch-up does). Arm the next one first, so a failing run cannot stop the schedule.
    this.arm(Math.max(now, fire.instant.getTime()));
    this.onFire(fire.instant);
  }
}
