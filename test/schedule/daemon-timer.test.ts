import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { channelTypes } from '../../adapters/registry.js';
import { checkUpdatesCommand } from '../../commands/check-updates.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { MAX_WAIT_MS } from '../../src/schedule/index.js';
import { poll } from '../adapters/chat-contract.js';
import { hvBin, World } from '../fixtures/world.js';
import { FakeTimers } from './fake-timers.js';

const savedTz = process.env.TZ;
const roots: string[] = [];
let world: World | undefined;
afterEach(() => {
  world?.cleanup();
  world = undefined;
});
afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
  if (savedTz === undefined) delete process.env.TZ;
  else process.env.TZ = savedTz;
});

/** A config for a daemon that only schedules: state, log and motd in a temporary directory. */
function sandboxConfig(schedule: string): { path: string; state: string } {
  const root = mkdtempSync(join(process.env.HV_TEST_TMP ?? tmpdir(), 'hv-sched-'));
  roots.push(root);
  const state = join(root, 'state');
  mkdirSync(state);
  const path = join(root, 'config.json');
  const config = {
    schedule,
    randomizedDelaySec: 0,
    flake: { dir: join(root, 'flake') },
    paths: { state, log: join(root, 'log'), motd: join(root, 'motd') },
    notify: { channels: [{ type: 'motd' }] },
  };
  writeFileSync(path, JSON.stringify(config));
  return { path, state };
}

interface Logged {
  msg: string;
  fields: Record<string, unknown>;
}

describe("the daemon's scheduler", () => {
  it('arms its timer for the instant `hv schedule next` prints, across the spring gap (Europe/Berlin)', async () => {
    process.env.TZ = 'Europe/Berlin';
    const from = '2026-03-28T12:00:00+01:00';
    const { path, state } = sandboxConfig('30 2 * * *');
    // A success just before `from`: no catch-up at start.
    writeFileSync(
      join(state, 'last-check.json'),
      JSON.stringify({ at: '2026-03-28T10:00:00.000Z', ok: true }),
    );
    const cli = spawnSync(
      process.execPath,
      [hvBin, 'schedule', 'next', '--from', from, '--count', '2', '--json', '--config', path],
      { encoding: 'utf8', env: { ...process.env, TZ: 'Europe/Berlin' } },
    );
    expect(cli.status, cli.stderr).toBe(0);
    const printed = JSON.parse(cli.stdout) as { next: string[]; nextUtc: string[] };
    expect(printed.next).toEqual(['2026-03-29T03:00:00+02:00', '2026-03-30T02:30:00+02:00']);

    const clock = new FakeTimers(new Date(from).getTime());
    const logged: Logged[] = [];
    const daemon = new Daemon({
      configFlag: path,
      env: {},
      channels: channelTypes,
      scheduledCommand: checkUpdatesCommand,
      log: (_level, msg, fields = {}) => logged.push({ msg, fields }),
      timers: clock,
    });
    await daemon.start();
    try {
      const armed = logged.find((l) => l.msg === 'schedule armed');
      expect(armed?.fields.next).toBe(printed.nextUtc[0]);
      expect(logged.some((l) => l.msg.startsWith('missed a scheduled check'))).toBe(false);
      // Waits of at most MAX_WAIT_MS lead exactly to that instant, and nothing runs before it.
      const instant = new Date(printed.nextUtc[0] ?? '').getTime();
      while ((clock.nextAt ?? instant) < instant) clock.runNext();
      expect(clock.nextAt).toBe(instant);
      expect(clock.armed).toBe(1);
      expect(Math.max(...clock.waits)).toBe(MAX_WAIT_MS);
      expect(logged.some((l) => l.msg === 'scheduled check starting')).toBe(false);
      clock.runNext();
      const started = logged.find((l) => l.msg === 'scheduled check starting');
      expect(started?.fields).toMatchObject({ reason: 'schedule', instant: printed.nextUtc[0] });
      // Re-armed at once for the following instant.
      expect(clock.nextAt).toBeGreaterThan(instant);
      const finished = await poll(
        () => logged.find((l) => l.msg === 'scheduled check finished'),
        'the scheduled check to finish',
        60_000,
      );
      expect(finished.fields.next).toBe(printed.nextUtc[1]);
    } finally {
      await daemon.stop();
    }
    expect(clock.armed).toBe(0);
    expect(existsSync(join(state, 'daemon.lock'))).toBe(false);
  }, 90_000);

  it('a real daemon with an every-minute schedule runs the check within the minute', async () => {
    world = new World({
      branches: ['nixos-24.05'],
      config: { schedule: '* * * * *', randomizedDelaySec: 0 },
    });
    writeFileSync(
      join(world.paths.state, 'last-check.json'),
      JSON.stringify({ at: new Date().toISOString(), ok: true }),
    );
    world.upstream.advance('nixos-24.05');
    const d = world.startHv(['daemon']);
    const armedLine = await poll(
      () => /schedule armed .*next=(\S+)/.exec(d.output()),
      'the daemon to arm its schedule',
      30_000,
    );
    const next = new Date(armedLine[1] ?? '');
    expect(next.getSeconds()).toBe(0);
    expect(next.getMilliseconds()).toBe(0);
    const ranLine = await poll(
      () => /^(\S+) info scheduled check starting reason=schedule instant=(\S+)/m.exec(d.output()),
      'the scheduled check to start',
      75_000,
    );
    expect(ranLine[2]).toBe(next.toISOString());
    const startedAt = new Date(ranLine[1] ?? '').getTime();
    expect(startedAt).toBeGreaterThanOrEqual(next.getTime());
    expect(startedAt - next.getTime()).toBeLessThan(2000);
    await poll(() => existsSync(world?.paths.motd ?? ''), 'the scheduled check to write the motd', 30_000);
    d.proc.kill('SIGTERM');
    expect(await d.exited).toBe(0);
  }, 150_000);
});
