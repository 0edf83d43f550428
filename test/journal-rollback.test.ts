import { readlinkSync, realpathSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { expectKnownState, killed, lockOf } from './fixtures/crash.js';
import { World } from './fixtures/world.js';

let world: World | undefined;
afterEach(() => {
  world?.cleanup();
  world = undefined;
});

describe('rollback killed at each step', () => {
  /** Upgraded from generation 1 to 2; generation 1's system sleeps in switch (to kill during it). */
  function upgradedWorld(opts: { sleepyOld?: boolean } = {}) {
    world = new World({ branches: ['nixos-24.05'] });
    const w = world;
    if (opts.sleepyOld) {
      w.upstream.advance('nixos-24.05', { sleepSec: 6 });
      w.nix(['flake', 'lock', '--update-input', 'nixpkgs'], w.flakeDir);
      w.installCurrent();
    }
    const oldSystem = realpathSync(w.paths.currentSystem);
    const oldLock = lockOf(w);
    const oldGen = Number(/-(\d+)-link$/.exec(readlinkSync(w.paths.profile))?.[1]);
    w.upstream.advance('nixos-24.05', { sleepSec: 0 });
    expect(w.hv(['upgrade-test']).code).toBe(0);
    expect(w.hv(['system-upgrade', '--yes']).code).toBe(0);
    return {
      w,
      oldSystem,
      oldLock,
      oldGen,
      newSystem: realpathSync(w.paths.currentSystem),
      newLock: lockOf(w),
    };
  }

  it('killed before the profile moved: nothing changed, the new system stays, and it says so', async () => {
    const { w, newSystem, newLock } = upgradedWorld();
    expect(await killed(w, ['rollback'], { crashAt: 'rollback:switch-profile' })).toBe('SIGKILL');
    const s = w.hv(['status', '--json']);
    expect(s.json.recovered?.[0]).toMatch(/rollback .*nothing changed/);
    expectKnownState(w, newSystem, newLock);
    expect(w.hv(['rollback', '--yes']).code).toBe(0);
  });

  it.each(['activate', 'restore-lock', 'close'])(
    'killed at "%s": the next command finishes the rollback (old system, old lock); system-upgrade needs a new test',
    async (step) => {
      const { w, oldSystem, oldLock } = upgradedWorld();
      expect(await killed(w, ['rollback'], { crashAt: `rollback:${step}` })).toBe('SIGKILL');
      const recorded = step === 'close' ? 'restore-lock' : step;
      const c = w.hv(['check-updates']);
      expect(c.stderr + c.stdout).toMatch(new RegExp(`rollback .*interrupted at "${recorded}"`));
      expectKnownState(w, oldSystem, oldLock);
      expect(c.code).toBe(100); // upstream is ahead of what runs again
      const s = w.hv(['status', '--json']);
      expect(s.json.lastRollback).toMatchObject({
        status: 'rolled-back',
        interrupted: { outcome: 'finished' },
      });
      expect(w.hv(['system-upgrade', '--yes']).code).toBe(3);
      expect(w.hv(['upgrade-test']).code).toBe(0);
      expect(w.hv(['system-upgrade', '--yes']).code).toBe(0);
    },
  );

  it('killed during switch-to-configuration of the target: finished by the next command', async () => {
    const { w, oldSystem, oldLock, oldGen } = upgradedWorld({ sleepyOld: true });
    expect(await killed(w, ['rollback'], { duringSwitch: 'switch' })).toBe('SIGKILL');
    const s = w.hv(['status', '--json']);
    expect(s.json.recovered?.[0]).toMatch(/rollback .*interrupted at "activate"/);
    expectKnownState(w, oldSystem, oldLock);
    expect(s.json.lastRollback).toMatchObject({ generation: oldGen, status: 'rolled-back' });
  });
});
