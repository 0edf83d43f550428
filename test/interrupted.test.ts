import { spawn, spawnSync } from 'node:child_process';
import { existsSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hvBin, World } from './fixtures/world.js';

let world: World | undefined;
afterEach(() => {
  world?.cleanup();
  world = undefined;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('an interrupted upgrade test', () => {
  it('killed right after activation: the next hv command re-activates the previous system and records FAILED/interrupted', async () => {
    world = new World({ branches: ['nixos-24.05'] });
    const w = world;
    const previous = realpathSync(w.paths.currentSystem);
    w.upstream.advance('nixos-24.05', { sleepSec: 30 });
    // Its own process group, so that killing it takes switch-to-configuration down too (power loss).
    const child = spawn(process.execPath, [hvBin, 'upgrade-test', '--config', w.configPath], {
      detached: true,
      stdio: 'ignore',
    });
    const pid = child.pid as number;
    const exited = new Promise((r) => child.on('exit', r));
    try {
      const deadline = Date.now() + 90_000;
      // Wait until switch-to-configuration was called and has moved current-system (then it sleeps).
      const switched = () => {
        const a = w.activations()[0];
        return a !== undefined && realpathSync(w.paths.currentSystem) === a.path;
      };
      while (!switched() && Date.now() < deadline) await sleep(100);
      expect(w.activations()).toHaveLength(1);
    } finally {
      process.kill(-pid, 'SIGKILL');
      await exited;
    }
    const tested = w.activations()[0]?.path as string;
    expect(realpathSync(w.paths.currentSystem)).toBe(tested);
    expect(existsSync(join(w.paths.state, 'upgrade-test-in-progress.json'))).toBe(true);

    const s = w.hv(['status', '--json']);
    expect(s.code, s.stderr).toBe(0);
    expect(realpathSync(w.paths.currentSystem)).toBe(previous);
    expect(w.activations()).toEqual([
      { action: 'test', path: tested },
      { action: 'test', path: previous },
    ]);
    const res = JSON.parse(w.read(w.paths.testJson));
    expect(res).toMatchObject({ status: 'failed', reason: 'interrupted', reverted: true, toplevel: tested });
    expect(w.read(w.paths.testText).split('\n')[0]).toBe('Upgrade Test: FAILED');
    expect(w.read(w.paths.testText)).toMatch(/interrupted/);
    expect(s.json.lastTest).toMatchObject({ status: 'failed', reason: 'interrupted' });
    expect(existsSync(join(w.paths.state, 'upgrade-test-in-progress.json'))).toBe(false);
    expect(w.wallMessages().some((m) => /FAILED.*interrupted/.test(m))).toBe(true);
    const audit = w
      .read(w.paths.audit)
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(audit.some((a) => a.operation === 'upgrade-test' && a.details?.reason === 'interrupted')).toBe(
      true,
    );

    // Recovered once: the next command leaves the system alone; the result cannot be applied.
    expect(w.hv(['status']).code).toBe(0);
    expect(w.activations()).toHaveLength(2);
    const apply = w.hv(['system-upgrade', '--yes']);
    expect(apply.code).toBe(3);
    expect(apply.stderr).toMatch(/gate "passed".*interrupted/);
  });

  it('a marker of a live process is left alone; one of a dead process that never activated is recorded without any activation', () => {
    world = new World({ branches: ['nixos-24.05'] });
    const w = world;
    const marker = join(w.paths.state, 'upgrade-test-in-progress.json');
    const previous = realpathSync(w.paths.currentSystem);
    const result = { status: 'failed', startedAt: new Date().toISOString(), input: 'nixpkgs', checks: [] };
    const write = (pid: number) =>
      writeFileSync(
        marker,
        JSON.stringify({
          pid,
          startedAt: result.startedAt,
          by: 'root',
          toplevel: '/nix/store/00000000000000000000000000000000-nixos-system-hv01-untested',
          previousSystem: previous,
          previousGeneration: 1,
          result,
        }),
      );
    write(process.pid); // alive: a test still running
    expect(w.hv(['status']).code).toBe(0);
    expect(existsSync(marker)).toBe(true);
    expect(existsSync(w.paths.testJson)).toBe(false);

    const dead = spawnSync('true').pid as number;
    write(dead);
    expect(w.hv(['status']).code).toBe(0);
    expect(existsSync(marker)).toBe(false);
    expect(JSON.parse(w.read(w.paths.testJson))).toMatchObject({
      status: 'failed',
      reason: 'interrupted',
      reverted: false,
    });
    expect(w.activations()).toEqual([]);
    expect(realpathSync(w.paths.currentSystem)).toBe(previous);
    // The recorded result is complete although the marker was not: it reads back through its schema.
    expect(w.hv(['status', '--json']).json.unreadable).toEqual([]);
  });
});
