import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { poll } from './adapters/chat-contract.js';
import { World } from './fixtures/world.js';

let world: World | undefined;

afterEach(() => {
  world?.cleanup();
  world = undefined;
});

const startDaemon = (w: World) => w.startHv(['daemon']);

/** Waits for a condition (the shared `poll`); the error names what was awaited. */
const waitFor = (cond: () => boolean, ms: number, what: string) => poll(cond, what, ms);

function recentSuccess(w: World, agoMs: number): void {
  const at = new Date(Date.now() - agoMs).toISOString();
  writeFileSync(join(w.paths.state, 'last-check.json'), JSON.stringify({ at, ok: true }));
}

describe('hv daemon', () => {
  it('checks on schedule and writes the notices; a second daemon exits 4 naming the first; SIGTERM exits 0 quickly', async () => {
    world = new World({
      branches: ['nixos-24.05'],
      config: { schedule: '*/2 * * * * *', randomizedDelaySec: 0 },
    });
    recentSuccess(world, 1000);
    world.upstream.advance('nixos-24.05');
    const d = startDaemon(world);
    await waitFor(() => d.output().includes('schedule armed'), 30_000, 'daemon start');
    await waitFor(
      () => existsSync(world?.paths.motd ?? ''),
      15_000,
      'the scheduled check to write the motd notice',
    );
    expect(world.read(world.paths.updateText)).toContain('NixOS update available');

    const second = world.hv(['daemon', '--json'], { timeoutMs: 15_000 });
    expect(second.code).toBe(4);
    expect(second.json.message).toMatch(new RegExp(`daemon since .* \\(pid ${d.proc.pid}\\)`));

    const t = Date.now();
    d.proc.kill('SIGTERM');
    const code = await d.exited;
    expect(code).toBe(0);
    expect(Date.now() - t).toBeLessThan(10_000);
    expect(readdirSync(world.paths.state).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(existsSync(join(world.paths.state, 'daemon.lock'))).toBe(false);
    expect(world.hv(['audit', '--verify']).code).toBe(0);
  });

  it('catches up at start when the last successful check is older than one period, not when it is recent', async () => {
    world = new World({ branches: ['nixos-24.05'], config: { schedule: 'monthly', randomizedDelaySec: 0 } });
    world.upstream.advance('nixos-24.05');
    recentSuccess(world, 3600_000);
    const fresh = startDaemon(world);
    await waitFor(() => fresh.output().includes('schedule armed'), 30_000, 'daemon start');
    await new Promise((r) => setTimeout(r, 2500));
    expect(existsSync(world.paths.motd)).toBe(false);
    expect(fresh.output()).not.toContain('missed a scheduled check');
    fresh.proc.kill('SIGTERM');
    expect(await fresh.exited).toBe(0);

    recentSuccess(world, 40 * 86_400_000);
    const late = startDaemon(world);
    await waitFor(() => existsSync(world?.paths.motd ?? ''), 15_000, 'the catch-up check');
    expect(late.output()).toContain('missed a scheduled check; checking now');
    late.proc.kill('SIGTERM');
    expect(await late.exited).toBe(0);
  });

  it('SIGHUP with a broken config keeps running on the old one and logs the key at fault', async () => {
    world = new World({ branches: ['nixos-24.05'], config: { schedule: 'monthly', randomizedDelaySec: 0 } });
    recentSuccess(world, 1000);
    const d = startDaemon(world);
    await waitFor(() => d.output().includes('schedule armed'), 30_000, 'daemon start');
    world.config.schedule = 'every tuesday';
    world.writeConfig();
    d.proc.kill('SIGHUP');
    await waitFor(() => d.output().includes('reload refused'), 10_000, 'the reload to be refused');
    expect(d.output()).toMatch(/reload refused: invalid config.*schedule/);
    expect(d.proc.exitCode).toBe(null);

    world.config.schedule = 'weekly';
    world.writeConfig();
    d.proc.kill('SIGHUP');
    await waitFor(() => d.output().includes('config reloaded'), 10_000, 'the reload');
    expect(d.output()).toMatch(/config reloaded schedule=weekly/);
    d.proc.kill('SIGTERM');
    expect(await d.exited).toBe(0);
  });
  it('SIGTERM while it is starting: exits 0, lock released', async () => {
    world = new World({ branches: ['nixos-24.05'], install: false, config: { schedule: 'monthly' } });
    recentSuccess(world, 1000);
    const d = startDaemon(world);
    await waitFor(() => d.output().includes('daemon starting'), 30_000, 'the daemon to begin starting');
    d.proc.kill('SIGTERM');
    const code = await d.exited;
    expect(code).toBe(0);
    expect(existsSync(join(world.paths.state, 'daemon.lock'))).toBe(false);
  });
});

describe('hv schedule next', () => {
  it('shows what an expression means; rejects nonsense with examples', () => {
    world = new World({ branches: ['nixos-24.05'], install: false });
    const mondays = world.hv(['schedule', 'next', 'Mon *-*-* 02:00:00', '--count', '3', '--json']);
    expect(mondays.code).toBe(0);
    expect(mondays.json.next).toHaveLength(3);
    for (const iso of mondays.json.nextUtc as string[]) {
      const d = new Date(iso);
      expect(d.getDay()).toBe(1);
      expect(d.getHours()).toBe(2);
      expect(d.getMinutes()).toBe(0);
    }
    const monthly = world.hv(['schedule', 'next', 'monthly', '--count', '2', '--json']);
    for (const iso of monthly.json.nextUtc as string[]) expect(new Date(iso).getDate()).toBe(1);
    const quarter = world.hv(['schedule', 'next', '*/15 * * * *', '--json']);
    expect(quarter.code).toBe(0);
    for (const iso of quarter.json.nextUtc as string[]) expect(new Date(iso).getMinutes() % 15).toBe(0);
    const bad = world.hv(['schedule', 'next', 'every tuesday']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/Mon \*-\*-\* 02:00:00/);
  });
});

describe('randomized delay', () => {
  it('spreads hosts by randomizedDelaySec, never more than a tenth of the period', async () => {
    const { spreadMs } = await import('../src/daemon/daemon.js');
    expect(spreadMs(3600, 31 * 86_400_000)).toBe(3_600_000);
    expect(spreadMs(3600, 60_000)).toBe(6_000);
    expect(spreadMs(0, 60_000)).toBe(0);
  });
});
