import type { TimerHost } from '../../src/schedule/index.js';

interface Pending {
  fn: () => void;
  at: number;
}

/**
 * A clock that moves only when told, with the timers the schedule timer arms on it: a test sees
 * every delay that was armed and lets time pass to the next timer without waiting. Like Node's,
 * timers count elapsed time: a step of the wall clock does not move them.
 */
export class FakeTimers implements TimerHost {
  /** Every delay passed to setTimeout, in order. */
  readonly waits: number[] = [];
  private pending: Pending[] = [];

  /** Elapsed time, which timers count. */
  private elapsed = 0;

  /** @param wall the wall-clock time to start at (ms since the epoch) */
  constructor(private wall: number) {}

  now(): number {
    return this.wall + this.elapsed;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const p = { fn, at: this.elapsed + ms };
    this.pending.push(p);
    this.waits.push(ms);
    return p;
  }

  clearTimeout(handle: unknown): void {
    this.pending = this.pending.filter((p) => p !== handle);
  }

  /** How many timers are armed. */
  get armed(): number {
    return this.pending.length;
  }

  /** The wall-clock time at which the earliest armed timer runs. */
  get nextAt(): number | undefined {
    const first = this.earliest();
    return first === undefined ? undefined : this.wall + first.at;
  }

  /** Let time pass to the earliest armed timer and run it. */
  runNext(): void {
    const p = this.earliest();
    if (p === undefined) throw new Error('no timer is armed');
    this.pending = this.pending.filter((q) => q !== p);
    this.elapsed = p.at;
    p.fn();
  }

  /** Step the wall clock; armed timers still run after their delay (an admin's `date -s`). */
  step(ms: number): void {
    this.wall += ms;
  }

  private earliest(): Pending | undefined {
    return this.pending.reduce<Pending | undefined>(
      (m, p) => (m === undefined || p.at < m.at ? p : m),
      undefined,
    );
  }
}
