import { existsSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { World } from './fixtures/world.js';

let world: World | undefined;
afterEach(() => {
  world?.cleanup();
  world = undefined;
});

const lockOf = (w: World) => readFileSync(join(w.flakeDir, 'flake.lock'), 'utf8');

describe('hv rollback on a real Nix', () => {
  it('returns to the generation recorded before the upgrade, restores its lock; refuses when nothing is recorded or N does not exist', () => {
    // A git flake (as many /etc/hypervisor are): staging keeps .git, Nix builds it as one.
    world = new World({ branches: ['nixos-24.05'], gitFlake: true });
    const w = world;
    const oldLock = lockOf(w);
    const previous = realpathSync(w.paths.currentSystem);

    const nothing = w.hv(['rollback', '--yes', '--json']);
    expect(nothing.code).toBe(3);
    expect(nothing.json.status).toBe('refused');
    expect(nothing.json.message).toMatch(/nothing recorded to roll back to.*generations: 1/);

    w.upstream.advance('nixos-24.05');
    expect(w.hv(['upgrade-test']).code).toBe(0);
    const up = w.hv(['system-upgrade', '--yes', '--json']);
    expect(up.code, up.stderr).toBe(0);
    const upgraded = up.json.toplevel as string;
    const newLock = lockOf(w);
    expect(readlinkSync(w.paths.profile)).toBe('system-2-link');

    // Without --yes on no terminal: usage error, nothing changes.
    expect(w.hv(['rollback']).code).toBe(2);
    expect(readlinkSync(w.paths.profile)).toBe('system-2-link');
    const missing = w.hv(['rollback', '--to', '9', '--yes', '--json']);
    expect(missing.code).toBe(3);
    expect(missing.json.message).toMatch(/generation 9 .*does not exist; generations are: 1, 2/);
    expect(w.hv(['rollback', '--to', 'two', '--yes']).code).toBe(2);

    const r = w.hv(['rollback', '--yes', '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.json.status).toBe('rolled-back');
    expect(r.json.generation).toBe(1);
    expect(readlinkSync(w.paths.profile)).toBe('system-1-link');
    expect(realpathSync(w.paths.profile)).toBe(previous);
    expect(realpathSync(w.paths.currentSystem)).toBe(previous);
    expect(w.activations().at(-1)).toEqual({ action: 'switch', path: previous });
    expect(lockOf(w)).toBe(oldLock);
    expect(w.wallMessages().some((m) => /Rolled back on hv01 to generation 1/.test(m))).toBe(true);
    // Generation 1 is behind upstream again: the update notice is back at once.
    expect(r.json.check.status).toBe('update-available');
    expect(existsSync(w.paths.motd)).toBe(true);
    expect(existsSync(w.paths.updateText)).toBe(true);
    const audit = w
      .read(w.paths.audit)
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(audit.some((a) => a.operation === 'rollback' && a.result === 'rolled-back')).toBe(true);

    // Forward again to a named generation: its lock (installed with it) comes back too.
    const fwd = w.hv(['rollback', '--to', '2', '--yes', '--json']);
    expect(fwd.code, fwd.stderr).toBe(0);
    expect(realpathSync(w.paths.currentSystem)).toBe(upgraded);
    expect(readlinkSync(w.paths.profile)).toBe('system-2-link');
    expect(lockOf(w)).toBe(newLock);
  });

  it('an applied system whose switch exits 4 is reported failed (exit 1, upgrade.failed, rollback hint); hv rollback recovers', () => {
    world = new World({ branches: ['nixos-24.05'] });
    const w = world;
    const previous = realpathSync(w.paths.currentSystem);
    const oldLock = lockOf(w);
    w.upstream.advance('nixos-24.05', { switchExit: 4, failedUnits: [] });
    expect(w.hv(['upgrade-test']).code).toBe(0);
    const up = w.hv(['system-upgrade', '--yes', '--json']);
    expect(up.code, up.stderr).toBe(1);
    expect(up.json).toMatchObject({
      status: 'failed',
      activationExit: 4,
      previousGeneration: 1,
      newGeneration: 2,
    });
    expect(up.json.message).toMatch(/hv rollback \(to generation 1\)/);
    expect(readlinkSync(w.paths.profile)).toBe('system-2-link');
    expect(w.wallMessages().some((m) => /System upgrade FAILED/.test(m))).toBe(true);

    const r = w.hv(['rollback', '--yes']);
    expect(r.code, r.stderr).toBe(0);
    expect(readlinkSync(w.paths.profile)).toBe('system-1-link');
    expect(realpathSync(w.paths.currentSystem)).toBe(previous);
    expect(lockOf(w)).toBe(oldLock);
  });
});
