import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ChannelConfig } from '../../adapters/schemas.js';
import type { ChannelAdapter, PendingNotice } from '../../adapters/types.js';
import { DeliveryError } from '../../adapters/types.js';
import { errorMessage } from '../errors.js';
import type { HvEvent } from '../events.js';
import { readJson, writeJsonAtomic } from '../state.js';

export interface ChannelReport {
  channel: string;
  event: string;
  outcome: 'delivered' | 'skipped-repeat' | 'failed';
  error?: string;
}

export type HubLog = (
  level: 'info' | 'warn' | 'error',
  msg: string,
  fields?: Record<string, unknown>,
) => void;

interface Announced {
  [channel: string]: { [eventKey: string]: string };
}

/** An adapter and the config entry it was made from. */
export interface Channel {
  config: ChannelConfig;
  adapter: ChannelAdapter;
}

export function wants(channel: ChannelConfig, event: HvEvent): boolean {
  return !channel.events || channel.events.includes(event.type);
}

/**
 * The notification hub: events in, deliveries out. Each channel is independent (its own timeout,
 * failures isolated); the same fact (event key) is announced once per channel, again only after
 * `reminderDays`.
 */
export class NotificationHub {
  private readonly announcedFile: string;

  constructor(
    private readonly channels: Channel[],
    stateDir: string,
    private readonly opts: { timeoutSec: number; reminderDays: number | null; now: () => Date; log: HubLog },
  ) {
    this.announcedFile = join(stateDir, 'notify', 'announced.json');
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

  private isRepeat(announced: Announced, channel: string, event: HvEvent): boolean {
    const at = announced[channel]?.[`${event.type}:${event.key}`];
    if (!at) return false;
    const { reminderDays } = this.opts;
    if (reminderDays === null) return true;
    return this.opts.now().getTime() - Date.parse(at) < reminderDays * 86_400_000;
  }

  async publish(events: HvEvent[]): Promise<ChannelReport[]> {
    const announced = readJson<Announced>(this.announcedFile) ?? {};
    const reports = await Promise.all(
      this.channels.flatMap(({ config, adapter }) =>
        events
          .filter((e) => wants(config, e))
          .map(async (event): Promise<ChannelReport> => {
            const base = { channel: adapter.name, event: event.type };
            if (this.isRepeat(announced, adapter.name, event)) return { ...base, outcome: 'skipped-repeat' };
            try {
              await withTimeout(
                adapter.deliver(event, { id: `${event.id}:${adapter.name}`, attempt: 1 }),
                (config.timeoutSec ?? this.opts.timeoutSec) * 1000,
              );
              announced[adapter.name] ??= {};
              (announced[adapter.name] as Record<string, string>)[`${event.type}:${event.key}`] = this.opts
                .now()
                .toISOString();
              return { ...base, outcome: 'delivered' };
            } catch (e) {
              this.opts.log('warn', 'delivery failed', {
                channel: adapter.name,
                event: event.type,
                error: errorMessage(e),
              });
              return { ...base, outcome: 'failed', error: errorMessage(e) };
            }
          }),
      ),
    );
    mkdirSync(join(this.announcedFile, '..'), { recursive: true });
    writeJsonAtomic(this.announcedFile, announced);
    return reports;
  }
}

export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeliveryError(`timed out after ${Math.round(ms / 1000)} s`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
