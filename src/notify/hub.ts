import { hostname } from 'node:os';
import { join } from 'node:path';
import type { ChannelConfig } from '../../adapters/schemas.js';
import type { ChannelAdapter, PendingNotice } from '../../adapters/types.js';
import { errorMessage, HvError } from '../errors.js';
import { type HvEvent, URGENT_EVENTS } from '../events.js';
import { Announcements, factKey } from './announced.js';
import { attemptDelivery, type HubLog } from './attempt.js';
import { closeDigests, type DigestKind, periodOf } from './digest.js';
import { makeEvent } from './events.js';
import { type DeliveryRecord, Outbox } from './outbox.js';
import { backoffMs, sleep, withTimeout } from './timing.js';

export interface ChannelReport {
  channel: string;
  event: string;
  /**
   * `delivered`; `pending`: failed for now, kept in the outbox and retried with backoff; `failed`:
   * given up (dead) until `hv notify retry`; `held`: gathered for the channel's digest;
   * `skipped-repeat`: this channel already announced the same fact.
   */
  outcome: 'delivered' | 'skipped-repeat' | 'failed' | 'pending' | 'held';
  error?: string;
  deliveryId?: string;
}

/** The outcome of `hv notify test` on one channel. */
export interface TestReport {
  channel: string;
  type: string;
  ok: boolean;
  error?: string;
  ms: number;
}

export type { HubLog };

/** An adapter and the config entry it was made from. */
export interface Channel {
  config: ChannelConfig;
  adapter: ChannelAdapter;
}

export interface HubOptions {
  timeoutSec: number;
  reminderDays: number | null;
  now: () => Date;
  log: HubLog;
  /** Attempts before a delivery is kept as dead (default 8). */
  maxAttempts?: number;
  /** First retry delay in seconds, doubled per attempt with jitter (default 30). */
  backoffSec?: number;
  maxBackoffSec?: number;
  /** Jitter source, injectable for tests. */
  random?: () => number;
  /** The host name test messages carry (config `host`). */
  host?: string;
}

export function wants(channel: ChannelConfig, event: HvEvent): boolean {
  return !channel.events || channel.events.includes(event.type);
}

/**
 * The notification hub: events in, deliveries out, through a durable outbox (`<state>/notify/`).
 *
 * - `publish(events)` persists one delivery per (event, channel) before any attempt, then drains.
 * - `drain()` attempts what is due, each channel on its own (a hung channel costs only its own
 *   timeout), waiting for short backoffs within the channel's timeout; the rest stays pending.
 * - `tick()` is one pass without waiting; `runLoop(signal)` is the daemon's delivery loop.
 * - The same fact (event type + key) is announced once per channel, again after `reminderDays`.
 * - Delivery is at-least-once; each delivery's id is the idempotency key handed to the adapter;
 *   a completed delivery is never attempted again.
 */
export class NotificationHub {
  readonly outbox: Outbox;
  private readonly announcedFile: string;
  private readonly waiters = new Set<() => void>();

  constructor(
    readonly channels: Channel[],
    stateDir: string,
    private readonly opts: HubOptions,
  ) {
    this.outbox = new Outbox(join(stateDir, 'notify'));
    this.announcedFile = join(stateDir, 'notify', 'announced.json');
  }

  private nameOf(ch: Channel): string {
    return ch.config.name ?? ch.adapter.name;
  }

  private timeoutMs(ch: Channel): number {
    return (ch.config.timeoutSec ?? this.opts.timeoutSec) * 1000;
  }

  private digestKind(ch: Channel): DigestKind | null {
    const digest = (ch.config as { digest?: DigestKind | null }).digest;
    return digest && ch.adapter.sendDigest ? digest : null;
  }

  private now(): number {
    return this.opts.now().getTime();
  }

  async reconcile(pending: PendingNotice | null): Promise<void> {
    await Promise.all(
      this.channels.map(async ({ adapter }) => {
        try {
          await adapter.reconcile?.(pending);
        } catch (e) {
          this.opts.log('error', 'notice reconcile failed', {
            channel: adapter.name,
            error: errorMessage(e),
          });
        }
      }),
    );
  }

  /** Publish and (by default) drain: what cannot be delivered now stays in the outbox. */
  async publish(events: HvEvent[], opts: { drain?: boolean } = {}): Promise<ChannelReport[]> {
    const reports = this.enqueue(events);
    // Drain even when everything was a repeat: an earlier run may have left deliveries pending.
    if (opts.drain !== false) await this.drain();
    return reports.map((r) => {
      const rec = r.deliveryId ? this.outbox.get(r.deliveryId) : null;
      if (!rec) return r;
      const outcome =
        rec.state === 'done'
          ? 'delivered'
          : rec.state === 'dead'
            ? 'failed'
            : rec.state === 'held'
              ? 'held'
              : 'pending';
      return { ...r, outcome, ...(rec.lastError && outcome !== 'delivered' ? { error: rec.lastError } : {}) };
    });
  }

  /** Persist one delivery per (event, channel) that wants it, skipping repeats. Nothing is sent. */
  enqueue(events: HvEvent[]): ChannelReport[] {
    const nowMs = this.now();
    const nowIso = new Date(nowMs).toISOString();
    this.outbox.sweepTemp(Date.now());
    const announced = new Announcements(this.announcedFile, this.opts.reminderDays);
    const existing = announced.prune(this.outbox, this.outbox.all(), nowMs);
    const reports: ChannelReport[] = [];
    for (const ch of this.channels) {
      const name = this.nameOf(ch);
      const digest = this.digestKind(ch);
      for (const event of events) {
        if (!wants(ch.config, event)) continue;
        const fact = factKey(event);
        if (announced.isRepeat(existing, name, fact, nowMs)) {
          reports.push({ channel: name, event: event.type, outcome: 'skipped-repeat' });
          continue;
        }
        const hold = digest !== null && !URGENT_EVENTS.has(event.type);
        const period = hold ? periodOf(digest, new Date(nowMs)) : undefined;
        const rec: DeliveryRecord = {
          id: `${event.id}.${name}`,
          channel: name,
          kind: 'event',
          state: hold ? 'held' : 'pending',
          events: [event],
          createdAt: nowIso,
          seq: reports.length,
          attempts: 0,
          nextAt: period ? period.endsAt : nowIso,
          ...(period ? { digest: period } : {}),
        };
        this.outbox.put(rec);
        existing.push(rec);
        announced.record(name, fact, nowIso);
        reports.push({
          channel: name,
          event: event.type,
          outcome: hold ? 'held' : 'pending',
          deliveryId: rec.id,
        });
      }
    }
    announced.save();
    this.wake();
    return reports;
  }

  private backoff(attempts: number): number {
    const o = this.opts;
    return backoffMs(attempts, o.backoffSec ?? 30, o.maxBackoffSec ?? 3600, o.random ?? Math.random);
  }

  /** One attempt of one delivery (see attemptDelivery); false when not attempted. */
  private attempt(ch: Channel, id: string): Promise<boolean> {
    return attemptDelivery(this.outbox, ch.adapter, id, {
      timeoutMs: this.timeoutMs(ch),
      maxAttempts: this.opts.maxAttempts ?? 8,
      now: () => this.now(),
      backoff: (n) => this.backoff(n),
      log: this.opts.log,
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
    closeDigests(this.outbox, this.nameOf(ch), this.now());
    let attempted = 0;
    let busy = 0;
    const nowMs = this.now();
    for (const r of this.pendingOf(this.nameOf(ch))) {
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
    const chosen = this.channels.filter((c) => !opts.channels || opts.channels.includes(this.nameOf(c)));
    await Promise.all(
      chosen.map(async (ch) => {
        const budget = { started: performance.now(), ms: this.timeoutMs(ch) };
        const name = this.nameOf(ch);
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
          this.opts.log('error', 'notification pass failed', {
            channel: this.nameOf(ch),
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
   * each attempting what is due, then sleeping until its next retry or digest, a `publish` in
   * this process, or `idleMs` (to pick up deliveries queued by other processes). Resolves when
   * `signal` aborts (an attempt in flight finishes first, bounded by the channel's timeout).
   */
  async runLoop(signal: AbortSignal, opts: { idleMs?: number } = {}): Promise<void> {
    const idleMs = opts.idleMs ?? 60_000;
    await Promise.all(
      this.channels.map(async (ch) => {
        const name = this.nameOf(ch);
        while (!signal.aborted) {
          let busy = 0;
          try {
            busy = (await this.pass(ch)).busy;
          } catch (e) {
            this.opts.log('error', 'notification pass failed', { channel: name, error: errorMessage(e) });
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

  private wake(): void {
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

  /** Every delivery not completed (pending, retrying, held for a digest, dead), oldest first. */
  list(): DeliveryRecord[] {
    return this.outbox.all().filter((r) => r.state !== 'done');
  }

  /**
   * Make dead and waiting deliveries due now (dead ones get their attempts back).
   * Returns the ids affected. Held digest events keep waiting for their period.
   */
  retry(opts: { channel?: string } = {}): string[] {
    const ids: string[] = [];
    const nowIso = new Date(this.now()).toISOString();
    for (const r of this.outbox.all()) {
      if (opts.channel && r.channel !== opts.channel) continue;
      if (r.state !== 'pending' && r.state !== 'dead') continue;
      if (r.state === 'dead') r.attempts = 0;
      r.state = 'pending';
      r.nextAt = nowIso;
      this.outbox.put(r);
      ids.push(r.id);
    }
    this.wake();
    return ids;
  }

  /** The names of the configured channels. */
  names(): string[] {
    return this.channels.map((c) => this.nameOf(c));
  }

  /**
   * `hv notify test`: send a test message straight through each channel (or the named one), not
   * through the outbox and not deduplicated; each channel within its own timeout.
   */
  async sendTest(channel?: string): Promise<TestReport[]> {
    const chosen = channel ? this.channels.filter((c) => this.nameOf(c) === channel) : this.channels;
    if (channel && !chosen.length)
      throw new HvError(
        'usage',
        `unknown channel "${channel}"; configured channels: ${this.names().join(', ') || '(none)'}`,
      );
    return Promise.all(
      chosen.map(async (ch): Promise<TestReport> => {
        const name = this.nameOf(ch);
        const started = performance.now();
        const event = makeEvent(
          'notify.test',
          {
            host: this.opts.host ?? hostname(),
            key: `test-${Date.now()}`,
            title: `Test notification from hv (channel ${name})`,
            data: { channel: name, type: ch.config.type },
            next: 'hv status',
          },
          this.opts.now(),
        );
        try {
          await withTimeout(
            ch.adapter.deliver(event, { id: `test.${event.id}.${name}`, attempt: 1 }),
            this.timeoutMs(ch),
          );
          return {
            channel: name,
            type: ch.config.type,
            ok: true,
            ms: Math.round(performance.now() - started),
          };
        } catch (e) {
          return {
            channel: name,
            type: ch.config.type,
            ok: false,
            error: errorMessage(e),
            ms: Math.round(performance.now() - started),
          };
        }
      }),
    );
  }
}

export { withTimeout };
