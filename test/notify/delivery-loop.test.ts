import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ChannelConfig } from '../../adapters/registry.js';
import type { HvEvent } from '../../src/events.js';
import type { Channel } from '../../src/notify/channels.js';
import { DeliveryLoop } from '../../src/notify/delivery-loop.js';
import { enqueueEvents } from '../../src/notify/enqueue.js';
import { makeEvent } from '../../src/notify/events.js';
import { Outbox } from '../../src/notify/outbox.js';
import { type ChannelAdapter, type Delivery, DeliveryError } from '../../src/ports/channel.js';

/** A channel that records each attempt; `behave` decides its fate (a never-settling promise hangs it). */
class FakeChannel implements ChannelAdapter {
  readonly type = 'fake';
  readonly attempts: string[] = [];
  readonly delivered: string[] = [];
  behave: (event: HvEvent) => Promise<void> | void = () => {};
  constructor(readonly name: string) {}
  async deliver(event: HvEvent, delivery: Delivery): Promise<void> {
    this.attempts.push(delivery.id);
    await this.behave(event);
    this.delivered.push(event.key);
  }
}

const dirs: string[] = [];
afterEach(() => {
  vi.useRealTimers();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** The enqueue and delivery-loop parts on one outbox, on a fake clock (timers, Date, performance). */
function setup(fakes: FakeChannel[]) {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'] });
  const notifyDir = join(mkdtempSync(join(tmpdir(), 'hv-loop-')), 'notify');
  dirs.push(join(notifyDir, '..'));
  const outbox = new Outbox(notifyDir);
  const channels: Channel[] = fakes.map((adapter) => ({
    config: { type: 'motd', name: adapter.name } as ChannelConfig,
    adapter,
  }));
  const log: { msg: string; fields?: Record<string, unknown> }[] = [];
  const loop = new DeliveryLoop(outbox, channels, {
    timeoutSec: 30,
    now: () => new Date(),
    log: (_level, msg, fields) => log.push({ msg, ...(fields ? { fields } : {}) }),
    backoffSec: 10,
    random: () => 1,
  });
  const publish = (key: string) => {
    const event = makeEvent('update.available', { host: 'hv01', key, title: `update ${key}` }, new Date());
    enqueueEvents(outbox, channels, [event], {
      announcedFile: join(notifyDir, 'announced.json'),
      reminderDays: null,
      nowMs: Date.now(),
    });
    loop.wake();
  };
  return { outbox, loop, log, publish };
}

describe('DeliveryLoop.runLoop (fake clock)', () => {
  it('a channel whose deliver hangs does not delay another channel, then times out and is kept', async () => {
    const hung = new FakeChannel('hung');
    hung.behave = () => new Promise(() => {});
    const ok = new FakeChannel('ok');
    const { outbox, loop, log, publish } = setup([hung, ok]);
    const ac = new AbortController();
    const running = loop.runLoop(ac.signal, { idleMs: 3_600_000 });

    publish('u1');
    await vi.advanceTimersByTimeAsync(0);
    expect(ok.delivered).toEqual(['u1']);
    expect(hung.attempts).toHaveLength(1);

    // 10 s into the hung attempt, a new event still reaches the healthy channel at once.
    await vi.advanceTimersByTimeAsync(10_000);
    publish('u2');
    await vi.advanceTimersByTimeAsync(0);
    expect(ok.delivered).toEqual(['u1', 'u2']);
    expect(hung.attempts).toHaveLength(1);

    // At 30 s the hung attempt times out and stays pending for a retry after backoff; the worker
    // goes on to u2, which has waited behind it on its own channel only.
    await vi.advanceTimersByTimeAsync(20_000);
    const u1 = outbox.all().find((r) => r.channel === 'hung' && r.events[0]?.key === 'u1');
    expect(u1).toMatchObject({ state: 'pending', attempts: 1, lastError: 'timed out after 30 s' });
    expect(hung.attempts).toHaveLength(2);
    expect(log.map((l) => l.msg)).toContain('notification delivery failed, will retry');

    ac.abort();
    await vi.advanceTimersByTimeAsync(30_000); // the attempt of u2 on `hung` in flight ends first
    await running;
  });

  it('a worker sleeps until Retry-After and attempts exactly then, not before', async () => {
    const limited = new FakeChannel('limited');
    let calls = 0;
    limited.behave = () => {
      calls++;
      if (calls === 1) throw new DeliveryError('rate limited', 5000);
    };
    const { loop, publish } = setup([limited]);
    const ac = new AbortController();
    const running = loop.runLoop(ac.signal, { idleMs: 3_600_000 });
    publish('r1');
    await vi.advanceTimersByTimeAsync(4_999);
    expect(limited.attempts).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(limited.delivered).toEqual(['r1']);
    expect(limited.attempts).toHaveLength(2);
    ac.abort();
    await running;
  });

  it('a deferred channel (another process delivers it) is queued but never attempted, so it cannot run out of attempts', async () => {
    const chat = Object.assign(new FakeChannel('chat'), { deferred: true });
    const local = new FakeChannel('local');
    const { outbox, loop, publish } = setup([chat, local]);
    publish('u1');
    await loop.drain();
    await loop.tick();
    expect(local.delivered).toEqual(['u1']);
    expect(chat.attempts).toEqual([]);
    const queued = outbox.all().filter((r) => r.channel === 'chat');
    expect(queued).toHaveLength(1);
    expect(queued[0]).toMatchObject({ state: 'pending', attempts: 0 });
  });
});
