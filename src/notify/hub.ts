import { join } from 'node:path';
import { errorMessage } from '../errors.js';
import type { HvEvent } from '../events.js';
import type { PendingNotice } from '../ports/channel.js';
import type { HubLog } from './attempt.js';
import { type Channel, channelName } from './channels.js';
import { DeliveryLoop, type DeliverySettings } from './delivery-loop.js';
import { type ChannelReport, enqueueEvents, settledReport } from './enqueue.js';
import { type DeliveryRecord, Outbox } from './outbox.js';
import { sendTest, type TestReport } from './test-send.js';

export { wants } from './channels.js';
export type { Channel, ChannelReport, HubLog, TestReport };

/** The `notify` settings the hub runs with (see DeliverySettings for the delivery timing). */
export interface HubOptions extends DeliverySettings {
  /** A fact is announced again on a channel after this many days; null: never. */
  reminderDays: number | null;
  /** The host name test messages carry (config `host`). */
  host?: string;
}

/**
 * The notification hub: events in, deliveries out, through a durable outbox (`<state>/notify/`).
 * A thin facade over three parts, so callers keep one object (`Services.hub()`):
 *
 * - enqueue (`enqueue.ts`): `publish(events)` persists one delivery per (event, channel) before
 *   any attempt, then drains. The same fact (event type + key) is announced once per channel,
 *   again after `reminderDays`.
 * - the delivery loop (`delivery-loop.ts`): `drain()` attempts what is due, each channel on its
 *   own (a hung channel costs only its own timeout), waiting for short backoffs within the
 *   channel's timeout; `tick()` is one pass without waiting; `runLoop(signal)` is the daemon's loop.
 * - the test send (`test-send.ts`): `sendTest(channel?)`, straight through, no outbox.
 *
 * Delivery is at-least-once; each delivery's id is the idempotency key handed to the adapter;
 * a completed delivery is never attempted again.
 */
export class NotificationHub {
  readonly outbox: Outbox;
  private readonly announcedFile: string;
  private readonly loop: DeliveryLoop;

  constructor(
    readonly channels: Channel[],
    stateDir: string,
    private readonly opts: HubOptions,
  ) {
    this.outbox = new Outbox(join(stateDir, 'notify'), this.onBroken);
    this.announcedFile = join(stateDir, 'notify', 'announced.json');
    this.loop = new DeliveryLoop(this.outbox, channels, opts);
  }

  /** A damaged notification record was moved aside: said in the log (and by `hv status`). */
  private readonly onBroken = (error: string, movedTo: string): void =>
    this.opts.log('error', 'notification record unreadable; moved aside', { error, movedTo });

  /** Bring each channel's standing notice (motd, pinned message) in line with `pending`. */
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
    return reports.map((r) => settledReport(r, r.deliveryId ? this.outbox.get(r.deliveryId) : null));
  }

  /** Persist one delivery per (event, channel) that wants it, skipping repeats. Nothing is sent. */
  enqueue(events: HvEvent[]): ChannelReport[] {
    const reports = enqueueEvents(this.outbox, this.channels, events, {
      announcedFile: this.announcedFile,
      reminderDays: this.opts.reminderDays,
      nowMs: this.opts.now().getTime(),
      onBroken: this.onBroken,
    });
    this.loop.wake();
    return reports;
  }

  /** Look at the outbox again now (another process queued something: an operation's events). */
  wake(): void {
    this.loop.wake();
  }

  /** The dir other processes write deliveries into (the daemon watches it). */
  get outboxDir(): string {
    return this.outbox.dir;
  }

  /** See DeliveryLoop.drain: attempt what is due, waiting for retries within each channel's timeout. */
  drain(opts: { channels?: string[] } = {}): Promise<void> {
    return this.loop.drain(opts);
  }

  /** One delivery pass over every channel, concurrently, without waiting for backoffs. */
  tick(): Promise<void> {
    return this.loop.tick();
  }

  /** The daemon's delivery loop (see DeliveryLoop.runLoop); resolves after `signal` aborts. */
  runLoop(signal: AbortSignal, opts: { idleMs?: number } = {}): Promise<void> {
    return this.loop.runLoop(signal, opts);
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
    const nowIso = this.opts.now().toISOString();
    for (const r of this.outbox.all()) {
      if (opts.channel && r.channel !== opts.channel) continue;
      if (r.state !== 'pending' && r.state !== 'dead') continue;
      if (r.state === 'dead') r.attempts = 0;
      r.state = 'pending';
      r.nextAt = nowIso;
      this.outbox.put(r);
      ids.push(r.id);
    }
    this.loop.wake();
    return ids;
  }

  /** The names of the configured channels. */
  names(): string[] {
    return this.channels.map(channelName);
  }

  /** `hv notify test`: see sendTest in `test-send.ts`. */
  sendTest(channel?: string): Promise<TestReport[]> {
    return sendTest(this.channels, this.opts, channel);
  }
}
