import { existsSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { snapshot, World } from './fixtures/world.js';

let world: World | undefined;
afterEach(() => {
  world?.cleanup();
  world = undefined;
});

const generations = (w: World) =>
  readlinkSync(w.paths.profile) && JSON.stringify(w.hv(['status', '--json']).json.generations);

describe('hv upgrade-test on a real Nix', () => {
  it('passing test: activates only the new toplevel with "test", persists nothing, records PASSED', () => {
    world = new World({ branches: ['nixos-24.05'] });
    const w = world;
    const previous = realpathSync(w.paths.currentSystem);
    const lockBefore = readFileSync(join(w.flakeDir, 'flake.lock'));
    const flakeBefore = snapshot(w.flakeDir);
    const gensBefore = generations(w);
    const newRev = w.upstream.advance('nixos-24.05');
    const r = w.hv(['upgrade-test', '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.json.status).toBe('passed');
    const top = r.json.toplevel as string;
    expect(top).toMatch(/^\/nix\/store\/.*nixos-system-hv01-24\.05\.2$/);
    expect(w.activations()).toEqual([{ action: 'test', path: top }]);
    expect(realpathSync(w.paths.currentSystem)).toBe(top);
    expect(generations(w)).toBe(gensBefore);
    expect(readFileSync(join(w.flakeDir, 'flake.lock')).equals(lockBefore)).toBe(true);
    expect(snapshot(w.flakeDir)).toEqual(flakeBefore);
    const text = w.read(w.paths.testText);
    expect(text.split('\n')[0]).toBe('Upgrade Test: PASSED');
    const res = JSON.parse(w.read(w.paths.testJson));
    expect(res).toMatchObject({
      status: 'passed',
      toplevel: top,
      previousSystem: previous,
      newRev,
      reverted: false,
    });
    expect(res.previousGeneration).toBe(1);
    expect(JSON.parse(res.testedLock).nodes.nixpkgs.locked.rev).toBe(newRev);
    expect(res.checks.every((c: { ok: boolean }) => c.ok)).toBe(true);
    expect(existsSync(join(w.paths.state, 'upgrade-test-in-progress.json'))).toBe(false);
    expect(w.read(join(w.paths.log, 'upgrade-test.log'))).toContain('build finished');
    expect(w.wallMessages().some((m) => /PASSED/.test(m))).toBe(true);
  });
});
