import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ChannelConfig } from '../../adapters/registry.js';
import type { HvEvent } from '../../src/events.js';
import { makeEvent } from '../../src/notify/events.js';
import { NotificationHub } from '../../src/notify/hub.js';
import { deliveryStats, Outbox, unreadableNotifyRecords } from '../../src/notify/outbox.js';
import type { ChannelAdapter, Delivery } from '../../src/ports/channel.js';

class FakeChannel implements ChannelAdapter {
  readonly type = 'fake';
  readonly sent: string[] = [];
  constructor(readonly name: string) {}
  async deliver(event: HvEvent, _delivery: Delivery): Promise<void> {
    this.sent.push(event.key);
  }
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function setup() {
  const state = mkdtempSync(join(tmpdir(), 'hv-damaged-'));
  dirs.push(state);
  const a = new FakeChannel('a');
  const log: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const hub = new NotificationHub(
    [{ config: { type: 'motd', name: 'a' } as ChannelConfig, adapter: a }],
    state,
    {
      timeoutSec: 1,
      reminderDays: null,
      now: () => new Date(),
      log: (level, msg, fields) => log.push({ level, msg, ...(fields ? { fields } : {}) }),
      backoffSec: 10,
      maxBackoffSec: 60,
      random: () => 1,
    },
  );
  const notify = join(state, 'notify');
  return { a, hub, log, notify, outbox: join(notify, 'outbox') };
}

const update = (key: string) => makeEvent('update.available', { host: 'hv01', key, title: `update ${key}` });

describe('damaged notification records', () => {
  it('a truncated or hand-edited outbox record: the others are delivered; it is moved aside, logged naming it, and listed by status', async () => {
    const { a, hub, log, notify, outbox } = setup();
    hub.enqueue([update('ok1')]);
    const [good] = readdirSync(outbox);
    const rec = JSON.parse(readFileSync(join(outbox, good as string), 'utf8'));
    const truncated = join(outbox, 'x1.a.json');
    const edited = join(outbox, 'x2.a.json');
    writeFileSync(truncated, JSON.stringify({ ...rec, id: 'x1.a' }).slice(0, 50));
    writeFileSync(edited, JSON.stringify({ ...rec, id: 'x2.a', attempts: 'many' }));
    // A read-only view (hv status) names them and leaves them where they are.
    const seen = unreadableNotifyRecords(notify).join('\n');
    expect(seen).toMatch(/notification record \S*x1\.a\.json is not valid JSON/);
    expect(seen).toMatch(/notification record \S*x2\.a\.json is not a valid record \(attempts: /);
    expect(deliveryStats(notify)).toEqual({ a: { pending: 1, retrying: 0, dead: 0, held: 0 } });
    expect(readdirSync(outbox).sort()).toEqual([good, 'x1.a.json', 'x2.a.json'].sort());

    await hub.drain();
    expect(a.sent).toEqual(['ok1']);
    const names = readdirSync(outbox);
    expect(names.filter((n) => n.endsWith('.json'))).toEqual([good]);
    expect(names.filter((n) => /^x[12]\.a\.json\.\d+\.broken$/.test(n))).toHaveLength(2);
    const errors = log.filter((l) => l.msg === 'notification record unreadable; moved aside');
    expect(errors.map((l) => l.level)).toEqual(['error', 'error']);
    expect(errors.map((l) => String(l.fields?.error)).join('\n')).toContain(truncated);
    expect(errors.map((l) => String(l.fields?.error)).join('\n')).toContain(edited);
    const listed = unreadableNotifyRecords(notify);
    expect(listed).toHaveLength(2);
    expect(listed.join('\n')).toMatch(/x1\.a\.json\.\d+\.broken: a damaged notification record, moved aside/);
    // A damaged record is never sent, and never moved twice.
    await hub.drain();
    expect(a.sent).toEqual(['ok1']);
    expect(log.filter((l) => l.msg === 'notification record unreadable; moved aside')).toHaveLength(2);
  });

  it('Outbox.get of a damaged record is an error naming it; only a missing one is null', () => {
    const { notify, outbox } = setup();
    mkdirSync(outbox, { recursive: true });
    writeFileSync(join(outbox, 'd.a.json'), '[]');
    const box = new Outbox(notify);
    expect(box.get('missing')).toBeNull();
    expect(() => box.get('d.a')).toThrow(/d\.a\.json is not a valid record/);
    expect(box.all()).toEqual([]);
  });

  it('a damaged announced.json is moved aside and logged; publishing goes on (a fact may be announced once more)', async () => {
    const { a, hub, log, notify } = setup();
    mkdirSync(notify, { recursive: true });
    const file = join(notify, 'announced.json');
    writeFileSync(file, '{"a": {"update.available:k1": 5}}');
    const [report] = await hub.publish([update('k1')]);
    expect(report?.outcome).toBe('delivered');
    expect(a.sent).toEqual(['k1']);
    const error = log.find((l) => l.msg === 'notification record unreadable; moved aside');
    expect(String(error?.fields?.error)).toMatch(
      /sent notifications \S*announced\.json is not a valid record/,
    );
    expect(readdirSync(notify).some((n) => /^announced\.json\.\d+\.broken$/.test(n))).toBe(true);
    // The fresh file works as before: the same fact is a repeat now.
    expect(JSON.parse(readFileSync(file, 'utf8')).a['update.available:k1']).toBeTruthy();
    expect((await hub.publish([update('k1')]))[0]?.outcome).toBe('skipped-repeat');
    expect(unreadableNotifyRecords(notify).join('\n')).toMatch(/announced\.json\.\d+\.broken/);
  });
});
