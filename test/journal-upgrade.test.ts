import { existsSync, realpathSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { poll } from './adapters/chat-contract.js';
import { expectKnownState, journalFile, killed, lockOf } from './fixtures/crash.js';
import { World } from './fixtures/world.js';

let world: World | undefined;
afterEach(() => {
  world?.cleanup();
  world = undefined;
});

/** A host with a passed upgrade test of a newer revision. */
function testedWorld(change: { sleepSec?: number } = {}) {
  world = new World({ branches: ['nixos-24.05'] });
  const w = world;
  const oldSystem = realpathSync(w.paths.currentSystem);
  const oldLock = lockOf(w);
  w.upstream.advance('nixos-24.05', change);
  const t = w.hv(['upgrade-test']);
  expect(t.code, t.stderr).toBe(0);
  const tested = JSON.parse(w.read(w.paths.testJson)) as { toplevel: string; testedLock: string };
  return { w, oldSystem, oldLock, newSystem: tested.toplevel, newLock: tested.testedLock };
}

describe('system-upgrade killed at each step', () => {
  // A reboot ended the test activation and nothing new ran: the reconciler undoes; the PASSED
  // test still applies.
  it.each(['backup', 'set-profile', 'install-lock'])(
    'old system running, killed at "%s": the next command undoes it (old system, old lock), says so; the upgrade can be re-run',
    async (step) => {
      const { w, oldSystem, oldLock, newSystem, newLock } = testedWorld();
      w.link(w.paths.currentSystem, oldSystem); // a reboot since the test
      expect(await killed(w, ['system-upgrade'], { crashAt: `system-upgrade:${step}` })).toBe('SIGKILL');
      expect(existsSync(journalFile(w))).toBe(true);

      const s = w.hv(['status', '--json']);
      expect(s.code, s.stderr).toBe(0);
      expect(s.json.recovered).toHaveLength(1);
      expect(s.json.recovered[0]).toMatch(new RegExp(`system-upgrade .*interrupted at "${step}"`));
      expectKnownState(w, oldSystem, oldLock);
      expect(w.activations().filter((a) => a.action === 'switch')).toEqual([]);
      expect(s.json.lastUpgrade).toMatchObject({ status: 'failed' });
      expect(w.hv(['status']).stdout).toMatch(/Last upgrade: FAILED.*interrupted at/);
      // The unactivated generation is gone; only generation 1 remains.
      expect(s.json.generations.map((g: { number: number }) => g.number)).toEqual([1]);
      expect(w.wallMessages().some((m) => /interrupted and undone/.test(m))).toBe(true);

      // Nothing says "Up to date" while upstream is ahead of what runs.
      expect(w.hv(['check-updates']).code).toBe(100);
      if (step !== 'install-lock') return;
      const again = w.hv(['system-upgrade', '--yes']);
      expect(again.code, again.stderr).toBe(0);
      expectKnownState(w, newSystem, newLock);
      const back = w.hv(['rollback', '--yes']);
      expect(back.code, back.stderr).toBe(0);
      expectKnownState(w, oldSystem, oldLock);
    },
  );

  // The switch began, or the tested system already runs from its test: the reconciler finishes.
  it.each(['backup', 'set-profile', 'install-lock', 'activate', 'close'])(
    'tested system running, killed at "%s": the next command finishes it (tested system, tested lock) and says so',
    async (step) => {
      const { w, oldSystem, oldLock, newSystem, newLock } = testedWorld();
      expect(await killed(w, ['system-upgrade'], { crashAt: `system-upgrade:${step}` })).toBe('SIGKILL');
      const recorded = step === 'close' ? 'activate' : step;

      const c = w.hv(['check-updates', '--json']);
      expect(c.stderr + c.stdout).toMatch(new RegExp(`interrupted at \\\\?"${recorded}`));
      expectKnownState(w, newSystem, newLock);
      expect(c.code, c.stderr).toBe(0);
      const s = w.hv(['status', '--json']);
      expect(s.json.lastUpgrade).toMatchObject({
        status: 'applied',
        newGeneration: 2,
        interrupted: { step: recorded, outcome: 'finished' },
      });
      expect(w.read(w.paths.audit)).toMatch(/"interrupted":true/);
      expect(w.wallMessages().some((m) => /System upgrade applied.*interrupted/.test(m))).toBe(true);
      if (step !== 'activate') return;

      const back = w.hv(['rollback', '--yes']);
      expect(back.code, back.stderr).toBe(0);
      expectKnownState(w, oldSystem, oldLock);
      // The rollback invalidated the PASSED test: no re-apply without a new test.
      const apply = w.hv(['system-upgrade', '--yes']);
      expect(apply.code).toBe(3);
      expect(apply.stderr).toMatch(/rollback/);
      expect(apply.stderr).toMatch(/hv upgrade-test/);
      expect(w.hv(['upgrade-test']).code).toBe(0);
      const applied = w.hv(['system-upgrade', '--yes']);
      expect(applied.code, applied.stderr).toBe(0);
      expect(realpathSync(w.paths.currentSystem)).toBe(newSystem);
    },
  );

  it('the daemon, at start, reconciles an interrupted system-upgrade before it serves anything', async () => {
    const { w, oldSystem, oldLock } = testedWorld();
    w.link(w.paths.currentSystem, oldSystem); // a reboot since the test
    expect(await killed(w, ['system-upgrade'], { crashAt: 'system-upgrade:install-lock' })).toBe('SIGKILL');
    expect(existsSync(journalFile(w))).toBe(true);
    w.config.schedule = 'monthly';
    w.writeConfig();
    const d = w.startHv(['daemon']);
    await poll(() => d.output().includes('schedule armed'), 'daemon start', 30_000);
    expectKnownState(w, oldSystem, oldLock);
    expect(w.wallMessages().some((m) => /interrupted and undone/.test(m))).toBe(true);
    d.proc.kill('SIGTERM');
    expect(await d.exited).toBe(0);
    const s = w.hv(['status', '--json']);
    expect(s.json.recovered ?? []).toEqual([]); // already done by the daemon
    expect(s.json.lastUpgrade).toMatchObject({ status: 'failed' });
  });

  it('killed during switch-to-configuration switch: the next command finishes the switch', async () => {
    const { w, newSystem, newLock } = testedWorld({ sleepSec: 6 });
    expect(await killed(w, ['system-upgrade'], { duringSwitch: 'switch' })).toBe('SIGKILL');
    const s = w.hv(['status', '--json']);
    expect(s.code, s.stderr).toBe(0);
    expect(s.json.recovered?.[0]).toMatch(/interrupted at "activate"/);
    expectKnownState(w, newSystem, newLock);
    expect(s.json.lastUpgrade).toMatchObject({ status: 'applied', interrupted: { outcome: 'finished' } });
    expect(w.activations().filter((a) => a.action === 'switch')).toHaveLength(2);
  });
});
