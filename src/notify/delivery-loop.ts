import { errorMessage } from '../errors.js';
import { attemptDelivery, type HubLog } from './attempt.js';
import { type Channel, channelName, channelTimeoutMs } from './channels.js';
import { closeDigests } from './digest.js';
import type { DeliveryRecord, Outbox } from './outbox.js';
import { backoffMs, sleep } from './timing.js';

/** Timing of delivery attempts (the `notify` config, and a clock and jitter tests can set). */
export interface DeliverySettings {
  /** Default bound on one attempt, for channels without their own `timeoutSec`. */
  timeoutSec: number;
  /** The hub's clock: when a delivery is due. */
  now: () => Date;
  log: HubLog;
  /** Attempts before a delivery is kept as dead (default 8). */
  maxAttempts?: number;
  /** First retry delay in seconds, doubled per attempt with jitter (default 30). */
  backoffSec?: number;
  maxBackoffSec?: number;
  /** Jitter source, injectable for tests. */
  random?: () => number;
}

/**
 * Moves deliveries out of the outbox: every channel on its own, so that a hung or slow channel
 * costs only its own timeout and never delays another channel. All waiting is asynchronous
 * (timers), never a blocking sleep: the daemon's event loop keeps serving requests meanwhile.
 *
 * - `drain()` attempts what is due and waits for retries within each channel's timeout window.
 * - `tick()` is one pass without waiting.
 * - `runLoop(signal)` is the daemon's loop; `wake()` makes its idle workers look again now.
 */
export class DeliveryLoop {
  private readonly waiters = new Set<() => void>();

  constructor(
    private readonly outbox: Outbox,
    private readonly channels: Channel[],
    private readonly s: DeliverySettings,
  ) {}

  private now(): number {
    return this.s.now().getTime();
  }

  private timeoutMs(ch: Channel): number {
    return channelTimeoutMs(ch, this.s.timeoutSec);
  }

  /** One attempt of one delivery (see attemptDelivery); false when not attempted. */
  private attempt(ch: Channel, id: string): Promise<boolean> {
    const s = this.s;
    return attemptDelivery(this.outbox, ch.adapter, id, {
      timeoutMs: this.timeoutMs(ch),
      maxAttempts: s.maxAttempts ?? 8,
      now: () => this.now(),
      backoff: (n) => backoffMs(n, s.backoffSec ?? 30, s.maxBackoffSec ?? 3600, s.random ?? Math.random),
      log: s.log,
    });
  }

  private pendingOf(name: string): DeliveryRecord[] {
    return this.outbox.all().filter((r) => r.channel === name && r.state === 'pending');
  }

  /** One pass on one channel: close ended digests, attempt every due delivery in order. */
  private async pass(
    ch: Channel,
    budget?: { started: number; ms: number },
  ): Promise<{ attempted: number; busy: number }> {
    const name = channelName(ch);
    let attempted = 0;
    let busy = 0;
    if (ch.adapter.deferred) return { attempted, busy };
    closeDigests(this.outbox, name, this.now());
    const nowMs = this.now();
    for (const r of this.pendingOf(name)) {
      if (Date.parse(r.nextAt) > nowMs) continue;
      if (budget && attempted > 0 && performance.now() - budget.started >= budget.ms) break;
      if (await this.attempt(ch, r.id)) attempted++;
      else busy++;
    }
    return { attempted, busy };
  }

  /**
   * Attempt every due delivery, each channel independently, waiting for retries that fall within
   * the channel's timeout window; returns when each channel is done or says "later". What is left
   * stays pending for the daemon's loop or the next run. `channels` limits it to those names.
   */
  async drain(opts: { channels?: string[] } = {}): Promise<void> {
    const chosen = this.channels.filter(
      (c) => !c.adapter.deferred && (!opts.channels || opts.channels.includes(channelName(c))),
    );
    await Promise.all(
      chosen.map(async (ch) => {
        const budget = { started: performance.now(), ms: this.timeoutMs(ch) };
        const name = channelName(ch);
        for (;;) {
          const { busy } = await this.pass(ch, budget);
          const pending = this.pendingOf(name);
          if (!pending.length) return;
          const elapsed = performance.now() - budget.started;
          if (elapsed >= budget.ms) return;
          const wait = Math.min(...pending.map((r) => Date.parse(r.nextAt))) - this.now();
          if (wait <= 0) {
            if (busy > 0) return; // due but claimed by another process: theirs to finish
            continue;
          }
          if (elapsed + wait > budget.ms) return;
          await sleep(wait);
        }
      }),
    );
  }

  /** One delivery pass over every channel, concurrently, without waiting for backoffs. */
  async tick(): Promise<void> {
    await Promise.all(
      this.channels.map((ch) =>
        this.pass(ch).catch((e) => {
          this.s.log('error', 'notification pass failed', {
            channel: channelName(ch),
            error: errorMessage(e),
          });
        }),
      ),
    );
  }

  /** When the next delivery or digest of a channel falls due (ms since epoch), or null. */
  private nextDue(name: string): number | null {
    const times = this.outbox
      .all()
      .filter((r) => r.channel === name && (r.state === 'pending' || r.state === 'held'))
      .map((r) => Date.parse(r.nextAt));
    return times.length ? Math.min(...times) : null;
  }

  /**
   * The daemon's delivery loop: one worker per channel (a hung channel never holds up another),
   * each attempting what is due, then sleeping until its next retry or digest, a `wake()` (a
   * publish in this process), or `idleMs` (to pick up deliveries queued by other processes).
   * Resolves when `signal` aborts (an attempt in flight finishes first, bounded by the channel's
   * timeout).
   */
  async runLoop(signal: AbortSignal, opts: { idleMs?: number } = {}): Promise<void> {
    const idleMs = opts.idleMs ?? 60_000;
    await Promise.all(
      this.channels.map(async (ch) => {
        const name = channelName(ch);
        while (!signal.aborted) {
          let busy = 0;
          try {
            busy = (await this.pass(ch)).busy;
          } catch (e) {
            this.s.log('error', 'notification pass failed', { channel: name, error: errorMessage(e) });
          }
          const next = this.nextDue(name);
          let wait = next === null ? idleMs : Math.min(idleMs, Math.max(0, next - this.now()));
          // Due but not attempted: another process holds it; look again shortly, not in a spin.
          if (wait === 0 && busy > 0) wait = 1000;
          if (wait > 0) await this.sleepOrWake(wait, signal);
        }
      }),
    );
  }

  /** Cut short the idle waits of `runLoop`'s workers: something new may be due. */
  wake(): void {
    for (const w of [...this.waiters]) w();
  }

  private sleepOrWake(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }
}
