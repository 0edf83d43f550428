import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { ChannelConfig } from '../../adapters/schemas.js';
import type { ChannelAdapter, Delivery, PendingNotice } from '../../adapters/types.js';
import { DeliveryError } from '../../adapters/types.js';
import { errorMessage, HvError } from '../errors.js';
import { type HvEvent, URGENT_EVENTS } from '../events.js';
import { readJson, writeJsonAtomic } from '../state.js';
import { type DigestKind, periodOf } from './digest.js';
import { makeEvent } from './events.js';
import { type DeliveryRecord, Outbox } from './outbox.js';

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

export type HubLog = (
  level: 'info' | 'warn' | 'error',
  msg: string,
  fields?: Record<string, unknown>,
) => void;

interface Announced {
  [channel: string]: { [factKey: string]: string };
}

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

const factKey = (e: HvEvent) => `${e.type}:${e.key}`;
/** Completed deliveries are kept a week (no resend after a restart); announced.json remembers longer. */
const DONE_KEPT_MS = 7 * 86_400_000;

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
    const announced = readJson<Announced>(this.announcedFile) ?? {};
    const existing = this.outbox.all();
    const reports: ChannelReport[] = [];
    this.prune(existing, announced, nowMs);
    let changed = false;
    for (const ch of this.channels) {
      const name = this.nameOf(ch);
      const digest = this.digestKind(ch);
      for (const event of events) {
        if (!wants(ch.config, event)) continue;
        const fact = factKey(event);
        if (this.isRepeat(announced, existing, name, fact, nowMs)) {
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
        announced[name] ??= {};
        (announced[name] as Record<string, string>)[fact] = nowIso;
        changed = true;
        reports.push({
          channel: name,
          event: event.type,
          outcome: hold ? 'held' : 'pending',
          deliveryId: rec.id,
        });
      }
    }
    if (changed) {
      mkdirSync(join(this.announcedFile, '..'), { recursive: true });
      writeJsonAtomic(this.announcedFile, announced, 0o600);
    }
    this.wake();
    return reports;
  }

  private isRepeat(
    announced: Announced,
    existing: DeliveryRecord[],
    channel: string,
    fact: string,
    nowMs: number,
  ): boolean {
    const { reminderDays } = this.opts;
    const recent = (iso: string) =>
      reminderDays === null || nowMs - Date.parse(iso) < reminderDays * 86_400_000;
    const at = announced[channel]?.[fact];
    if (at && recent(at)) return true;
    // A record written just before a crash that kept announced.json from being updated.
    return existing.some(
      (r) => r.channel === channel && recent(r.createdAt) && r.events.some((e) => factKey(e) === fact),
    );
  }

  /** Forget completed deliveries after a week; announced.json keeps what they announced. */
  private prune(existing: DeliveryRecord[], announced: Announced, nowMs: number): void {
    let changed = false;
    for (const r of existing) {
      if (r.state !== 'done' || nowMs - Date.parse(r.doneAt ?? r.createdAt) < DONE_KEPT_MS) continue;
      for (const e of r.events) {
        const seen = announced[r.channel] ?? {};
        announced[r.channel] = seen;
        if (!seen[factKey(e)]) {
          seen[factKey(e)] = r.createdAt;
          changed = true;
        }
      }
    }
    if (changed) writeJsonAtomic(this.announcedFile, announced, 0o600);
    for (const r of existing) {
      if (r.state === 'done' && nowMs - Date.parse(r.doneAt ?? r.createdAt) >= DONE_KEPT_MS)
        this.outbox.remove(r.id);
    }
  }

  /** Turn a channel's held events whose digest period has ended into one digest delivery. */
  private closeDigests(ch: Channel): void {
    const name = this.nameOf(ch);
    const nowMs = this.now();
    const held = this.outbox
      .all()
      .filter((r) => r.channel === name && r.state === 'held' && Date.parse(r.nextAt) <= nowMs);
    if (!held.length) return;
    const release = this.outbox.claim(`digest-close.${name}`, 60_000);
    if (!release) return;
    try {
      const groups = new Map<string, DeliveryRecord[]>();
      for (const r of held) {
        const key = r.digest?.period ?? 'unknown';
        groups.set(key, [...(groups.get(key) ?? []), r]);
      }
      for (const [period, items] of groups) {
        const events = items.flatMap((r) => r.events).sort((a, b) => a.at.localeCompare(b.at));
        let id = `digest.${name}.${period}`;
        let digest = this.outbox.get(id);
        // A digest written before a crash already holds these events: only the clean-up was missed.
        const fresh = events.filter((e) => !digest?.events.some((x) => x.id === e.id));
        if (fresh.length) {
          if (digest && digest.state !== 'done' && digest.attempts === 0) {
            digest.events = [...digest.events, ...fresh].sort((a, b) => a.at.localeCompare(b.at));
          } else {
            if (digest) id = `${id}.${nowMs}`;
            digest = {
              id,
              channel: name,
              kind: 'digest',
              state: 'pending',
              events: fresh,
              createdAt: new Date(nowMs).toISOString(),
              attempts: 0,
              nextAt: new Date(nowMs).toISOString(),
              ...(items[0]?.digest ? { digest: items[0].digest } : {}),
            };
          }
          this.outbox.put(digest);
        }
        for (const r of items) this.outbox.remove(r.id);
      }
    } finally {
      release();
    }
  }

  private backoffMs(attempts: number): number {
    const base = (this.opts.backoffSec ?? 30) * 1000 * 2 ** Math.max(0, attempts - 1);
    const capped = Math.min(base, (this.opts.maxBackoffSec ?? 3600) * 1000);
    // "Equal jitter": between half and all of the delay, so retries of many hosts spread out.
    return Math.round(capped * (0.5 + (this.opts.random ?? Math.random)() * 0.5));
  }

  private async send(ch: Channel, rec: DeliveryRecord): Promise<void> {
    const delivery: Delivery = { id: rec.id, attempt: rec.attempts };
    if (rec.kind === 'digest' && ch.adapter.sendDigest) return ch.adapter.sendDigest(rec.events, delivery);
    for (const [i, e] of rec.events.entries())
      await ch.adapter.deliver(e, rec.events.length > 1 ? { ...delivery, id: `${rec.id}.${i}` } : delivery);
  }

  /**
   * One attempt of one delivery, claimed against other processes. The attempt is counted on disk
   * before it starts, so a delivery that crashes the process still runs out of attempts.
   * Returns false when the delivery was not attempted (claimed elsewhere, no longer due).
   */
  private async attempt(ch: Channel, id: string): Promise<boolean> {
    const timeoutMs = this.timeoutMs(ch);
    const release = this.outbox.claim(id, timeoutMs + 60_000);
    if (!release) return false;
    try {
      const rec = this.outbox.get(id);
      if (rec?.state !== 'pending' || Date.parse(rec.nextAt) > this.now()) return false;
      rec.attempts += 1;
      rec.lastAttemptAt = new Date(this.now()).toISOString();
      rec.nextAt = new Date(this.now() + this.backoffMs(rec.attempts)).toISOString();
      this.outbox.put(rec);
      const fields = {
        channel: rec.channel,
        delivery: rec.id,
        event: rec.events[0]?.type,
        attempt: rec.attempts,
      };
      try {
        await withTimeout(this.send(ch, rec), timeoutMs);
        rec.state = 'done';
        rec.doneAt = new Date(this.now()).toISOString();
        this.outbox.put(rec);
        this.opts.log('info', 'notification delivered', fields);
      } catch (e) {
        const err = e instanceof DeliveryError ? e : new DeliveryError(errorMessage(e));
        rec.lastError = err.message;
        const max = this.opts.maxAttempts ?? 8;
        if (err.permanent || rec.attempts >= max) {
          rec.state = 'dead';
          this.opts.log('error', 'notification delivery given up', { ...fields, error: err.message });
        } else {
          const delay = err.retryAfterMs !== undefined ? err.retryAfterMs : this.backoffMs(rec.attempts);
          rec.nextAt = new Date(this.now() + Math.max(0, delay)).toISOString();
          this.opts.log('warn', 'notification delivery failed, will retry', {
            ...fields,
            error: err.message,
            retryInMs: delay,
          });
        }
        this.outbox.put(rec);
      }
      return true;
    } finally {
      release();
    }
  }

  private pendingOf(name: string): DeliveryRecord[] {
    return this.outbox.all().filter((r) => r.channel === name && r.state === 'pending');
  }

  /** One pass on one channel: close ended digests, attempt every due delivery in order. */
  private async pass(
    ch: Channel,
    budget?: { started: number; ms: number },
  ): Promise<{ attempted: number; busy: number }> {
    this.closeDigests(ch);
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

export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeliveryError(`timed out after ${Math.round(ms / 100) / 10} s`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
