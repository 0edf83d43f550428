import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { channelTypes } from '../../adapters/registry.js';
import { parseConfig } from '../../src/config/load.js';
import type { EventType } from '../../src/events.js';
import { buildHub } from '../../src/notify/build.js';
import { periodOf } from '../../src/notify/digest.js';
import { makeEvent } from '../../src/notify/events.js';
import { ExecaRunner } from '../../src/proc.js';
import { readSecret } from '../../src/services.js';
import { emailChannel, MailSink } from './smtp.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function setup(digest: 'daily' | 'weekly' | 'monthly') {
  const sink = await MailSink.start();
  const root = mkdtempSync(join(tmpdir(), 'hv-digest-'));
  cleanups.push(
    () => sink.close(),
    () => rmSync(root, { recursive: true, force: true }),
  );
  const config = parseConfig(
    {
      host: 'hv01',
      allowNonRoot: true,
      paths: { state: join(root, 'state'), log: join(root, 'log'), motd: join(root, 'motd') },
      notify: { channels: [emailChannel('ops-mail', sink.port, { digest })] },
    },
    channelTypes,
  );
  const clock = { now: new Date(2024, 8, 3, 9, 0) };
  const hub = () =>
    buildHub(
      config,
      { config, runner: new ExecaRunner(), now: () => clock.now, readSecret, log: () => {} },
      config.paths.state,
      channelTypes,
    );
  return { sink, clock, hub };
}

function event(type: EventType, title: string, key: string, at: Date) {
  return makeEvent(
    type,
    { host: 'hv01', key, title, data: { branch: 'nixos-24.05' }, next: 'hv upgrade-test' },
    at,
  );
}

describe('email digest', () => {
  it('daily: three updates in a day make one mail listing all three at the day’s end; test.failed goes at once', async () => {
    const { sink, clock, hub: makeHub } = await setup('daily');
    let hub = await makeHub();
    const titles: string[] = [];
    for (const [hour, n] of [
      [9, 1],
      [12, 2],
      [17, 3],
    ] as const) {
      clock.now = new Date(2024, 8, 3, hour, 0);
      const title = `NixOS update available: nixos-24.05 2024-09-0${n} (#${n})`;
      titles.push(title);
      const r = await hub.publish([event('update.available', title, `rev${n}`, clock.now)]);
      expect(r).toEqual([expect.objectContaining({ channel: 'ops-mail', outcome: 'held' })]);
    }
    expect(sink.mails).toHaveLength(0);

    // Urgent: not held for the digest.
    clock.now = new Date(2024, 8, 3, 13, 0);
    const failed = await hub.publish([
      event('test.failed', 'Upgrade test failed: libvirtd inactive', 't1', clock.now),
    ]);
    expect(failed[0]?.outcome).toBe('delivered');
    expect(sink.mails).toHaveLength(1);
    expect(sink.mails[0]?.mail.subject).toBe('[hv01] Upgrade test failed: libvirtd inactive');

    // A restart in between loses nothing; before midnight nothing more is sent.
    hub = await makeHub();
    clock.now = new Date(2024, 8, 3, 23, 59);
    await hub.tick();
    expect(sink.mails).toHaveLength(1);

    clock.now = new Date(2024, 8, 4, 0, 1);
    await hub.tick();
    expect(sink.mails).toHaveLength(2);
    const digest = sink.mails[1]?.mail;
    expect(digest?.subject).toBe('[hv01] Daily digest 2024-09-03: 3 notifications');
    const text = digest?.text ?? '';
    let at = 0;
    for (const t of titles) {
      const i = text.indexOf(t, at);
      expect(i, `${t} missing or out of order`).toBeGreaterThanOrEqual(0);
      at = i;
      expect(digest?.html).toContain(t);
    }
    expect(text).not.toContain('Upgrade test failed');

    // Sent once: later passes and restarts do not send it again.
    await hub.tick();
    await (await makeHub()).tick();
    expect(sink.mails).toHaveLength(2);
    expect(hub.list()).toEqual([]);
  });

  it('the daemon loop sends a digest when its period ends and stops on abort', async () => {
    const { sink, clock, hub: makeHub } = await setup('weekly');
    const hub = await makeHub();
    clock.now = new Date(2024, 8, 3, 10, 0); // a Tuesday
    await hub.publish([event('update.available', 'NixOS update available: A', 'a', clock.now)]);
    await hub.publish([
      event('release.available', 'Newer NixOS release available: nixos-24.11', 'r', clock.now),
    ]);
    const ac = new AbortController();
    const loop = hub.runLoop(ac.signal, { idleMs: 50 });
    await new Promise((r) => setTimeout(r, 200));
    expect(sink.mails).toHaveLength(0);
    clock.now = new Date(2024, 8, 9, 0, 0, 1); // the next Monday
    await sink.waitFor(1, 5000);
    ac.abort();
    await loop;
    expect(sink.mails[0]?.mail.subject).toBe('[hv01] Weekly digest week of 2024-09-02: 2 notifications');
    expect(sink.mails).toHaveLength(1);
  });
});

describe('digest periods (local time)', () => {
  it.each([
    ['daily', new Date(2024, 8, 3, 23, 59), '2024-09-03', '2024-09-03', new Date(2024, 8, 4)],
    ['weekly', new Date(2024, 8, 3, 12), '2024-W36', 'week of 2024-09-02', new Date(2024, 8, 9)],
    ['weekly', new Date(2024, 8, 8, 23, 59), '2024-W36', 'week of 2024-09-02', new Date(2024, 8, 9)],
    ['weekly', new Date(2021, 0, 1, 12), '2020-W53', 'week of 2020-12-28', new Date(2021, 0, 4)],
    ['monthly', new Date(2024, 11, 15), '2024-12', '2024-12', new Date(2025, 0, 1)],
  ] as const)('%s at %s', (kind, at, period, label, end) => {
    expect(periodOf(kind, at)).toEqual({ kind, period, label, endsAt: end.toISOString() });
  });
});
