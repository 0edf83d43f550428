import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ChannelConfig } from '../../adapters/registry.js';
import type { HvEvent } from '../../src/events.js';
import { makeEvent } from '../../src/notify/events.js';
import { type HubOptions, NotificationHub } from '../../src/notify/hub.js';
import { deliveryStats } from '../../src/notify/outbox.js';
import { type ChannelAdapter, type Delivery, DeliveryError } from '../../src/ports/channel.js';

/** A channel that records what it was given; `behave` decides each attempt's fate. */
class FakeChannel implements ChannelAdapter {
  readonly type = 'fake';
  readonly sent: { event: HvEvent; delivery: Delivery }[] = [];
  readonly attempts: Delivery[] = [];
  behave: (n: number) => Promise<void> | void = () => {};
  constructor(readonly name: string) {}
  async deliver(event: HvEvent, delivery: Delivery): Promise<void> {
    this.attempts.push(delivery);
    await this.behave(this.attempts.length);
    this.sent.push({ event, delivery });
  }
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function setup(fakes: FakeChannel[], opts: Partial<HubOptions> = {}, configs: Partial<ChannelConfig>[] = []) {
  const state = mkdtempSync(join(tmpdir(), 'hv-hub-'));
  dirs.push(state);
  const clock = { ms: Date.parse('2024-09-03T10:00:00Z') };
  const channels = fakes.map((adapter, i) => ({
    config: { type: 'motd', name: adapter.name, ...configs[i] } as ChannelConfig,
    adapter,
  }));
  const make = () =>
    new NotificationHub(channels, state, {
      timeoutSec: 1,
      reminderDays: null,
      now: () => new Date(clock.ms),
      log: () => {},
      backoffSec: 10,
      maxBackoffSec: 60,
      random: () => 1,
      ...opts,
    });
  return { state, clock, hub: make(), make };
}

const update = (key: string, at = new Date()) =>
  makeEvent('update.available', { host: 'hv01', key, title: `update ${key}`, next: 'hv upgrade-test' }, at);

describe('NotificationHub', () => {
  it('honours Retry-After, then delivers with the same idempotency key', async () => {
    const a = new FakeChannel('a');
    a.behave = (n) => {
      if (n === 1) throw new DeliveryError('rate limited', 5000);
    };
    const { hub, clock } = setup([a]);
    hub.enqueue([update('r1')]);
    await hub.tick();
    expect(a.sent).toHaveLength(0);
    const [rec] = hub.list();
    expect(rec).toMatchObject({ state: 'pending', attempts: 1, lastError: 'rate limited' });
    expect(Date.parse(rec?.nextAt ?? '')).toBe(clock.ms + 5000);
    clock.ms += 4999;
    await hub.tick();
    expect(a.attempts).toHaveLength(1);
    clock.ms += 1;
    await hub.tick();
    expect(a.sent).toHaveLength(1);
    expect(a.attempts.map((d) => d.id)).toEqual([rec?.id, rec?.id]);
    expect(a.attempts.map((d) => d.attempt)).toEqual([1, 2]);
    expect(hub.list()).toEqual([]);
  });

  it('backs off exponentially up to the cap, gives up after maxAttempts, and retry() revives it', async () => {
    const a = new FakeChannel('a');
    a.behave = () => {
      throw new Error('connection refused');
    };
    const { hub, clock, state } = setup([a], { maxAttempts: 4 });
    hub.enqueue([update('b1')]);
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      const before = clock.ms;
      await hub.tick();
      const rec = hub.list()[0];
      if (rec?.state === 'pending') delays.push(Date.parse(rec.nextAt) - before);
      clock.ms = Date.parse(rec?.nextAt ?? '') || clock.ms;
    }
    expect(delays).toEqual([10_000, 20_000, 40_000]);
    expect(hub.list()[0]).toMatchObject({ state: 'dead', attempts: 4, lastError: 'connection refused' });
    expect(deliveryStats(join(state, 'notify'))).toEqual({
      a: { pending: 0, retrying: 0, dead: 1, held: 0, lastError: 'connection refused' },
    });
    clock.ms += 3_600_000;
    await hub.tick();
    expect(a.attempts).toHaveLength(4);

    a.behave = () => {};
    expect(hub.retry()).toHaveLength(1);
    await hub.tick();
    expect(a.sent).toHaveLength(1);
    expect(hub.list()).toEqual([]);
  });

  it('a permanent error is kept as dead at once', async () => {
    const a = new FakeChannel('a');
    a.behave = () => {
      throw new DeliveryError('invalid token', undefined, true);
    };
    const { hub } = setup([a]);
    await hub.publish([update('p1')]);
    expect(hub.list()[0]).toMatchObject({ state: 'dead', attempts: 1, lastError: 'invalid token' });
  });

  it('announces a fact once per channel, again after reminderDays; a record without announced.json still counts', async () => {
    const a = new FakeChannel('a');
    const { hub, clock, state } = setup([a], { reminderDays: 2 });
    expect((await hub.publish([update('k1')]))[0]?.outcome).toBe('delivered');
    expect((await hub.publish([update('k1')]))[0]?.outcome).toBe('skipped-repeat');
    // The crash window: the delivery was written, announced.json was not.
    rmSync(join(state, 'notify', 'announced.json'));
    expect((await hub.publish([update('k1')]))[0]?.outcome).toBe('skipped-repeat');
    clock.ms += 2 * 86_400_000 + 1;
    expect((await hub.publish([update('k1')]))[0]?.outcome).toBe('delivered');
    expect(a.sent).toHaveLength(2);
  });

  it('filters events per channel', async () => {
    const a = new FakeChannel('a');
    const b = new FakeChannel('b');
    const { hub } = setup([a, b], {}, [{}, { events: ['test.failed'] }]);
    await hub.publish([update('f1'), makeEvent('test.failed', { host: 'hv01', key: 't', title: 'failed' })]);
    expect(a.sent.map((s) => s.event.type)).toEqual(['update.available', 'test.failed']);
    expect(b.sent.map((s) => s.event.type)).toEqual(['test.failed']);
  });

  it('a hung channel costs only its own timeout; the other delivers at once', async () => {
    const hung = new FakeChannel('hung');
    hung.behave = () => new Promise(() => {});
    const ok = new FakeChannel('ok');
    const { hub } = setup([hung, ok], { now: () => new Date() }, [{ timeoutSec: 0.5 }, {}]);
    const started = performance.now();
    let okAt = 0;
    ok.behave = () => {
      okAt = performance.now() - started;
    };
    const reports = await hub.publish([update('h1')]);
    expect(okAt).toBeLessThan(200);
    expect(performance.now() - started).toBeLessThan(2000);
    expect(reports.find((r) => r.channel === 'ok')?.outcome).toBe('delivered');
    expect(reports.find((r) => r.channel === 'hung')).toMatchObject({
      outcome: 'pending',
      error: 'timed out after 0.5 s',
    });
  });

  it('two hubs draining one outbox at once deliver each notification once', async () => {
    const a = new FakeChannel('a');
    a.behave = () => new Promise((r) => setTimeout(r, 100));
    const { hub, make } = setup([a], { now: () => new Date() });
    hub.enqueue([update('c1'), update('c2'), update('c3')]);
    await Promise.all([hub.drain(), make().drain(), make().tick()]);
    expect(a.sent.map((s) => s.event.key).sort()).toEqual(['c1', 'c2', 'c3']);
  });

  it('ignores temp files a crash left in the outbox', async () => {
    const a = new FakeChannel('a');
    const { hub, state } = setup([a]);
    hub.enqueue([update('t1')]);
    writeFileSync(join(state, 'notify', 'outbox', '.123.456.abc.tmp'), '{"id": "half');
    expect(hub.list()).toHaveLength(1);
    await hub.tick();
    expect(a.sent).toHaveLength(1);
    expect(readdirSync(join(state, 'notify', 'outbox')).filter((n) => !n.startsWith('.'))).toHaveLength(1);
  });

  it('runLoop delivers what is published while it runs and returns on abort', async () => {
    const a = new FakeChannel('a');
    const { hub } = setup([a], { now: () => new Date() });
    const ac = new AbortController();
    const loop = hub.runLoop(ac.signal, { idleMs: 10_000 });
    await hub.publish([update('l1')], { drain: false });
    const until = Date.now() + 2000;
    while (a.sent.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    expect(a.sent).toHaveLength(1);
    ac.abort();
    await loop;
  });

  it('sendTest goes straight to the channels, unknown names are a usage error', async () => {
    const a = new FakeChannel('a');
    const b = new FakeChannel('b');
    b.behave = () => {
      throw new DeliveryError('no route');
    };
    const { hub } = setup([a, b]);
    const r = await hub.sendTest();
    expect(r.map((x) => [x.channel, x.ok, x.error])).toEqual([
      ['a', true, undefined],
      ['b', false, 'no route'],
    ]);
    expect(a.sent[0]?.event.type).toBe('notify.test');
    await expect(hub.sendTest('c')).rejects.toThrow(/unknown channel "c"; configured channels: a, b/);
    expect(hub.list()).toEqual([]);
  });
});
