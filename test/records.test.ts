import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { World } from './fixtures/world.js';

let world: World | undefined;
afterEach(() => {
  world?.cleanup();
  world = undefined;
});

/** A host with a passed test and an applied upgrade, so every record exists. */
function upgraded(): World {
  world = new World({ branches: ['nixos-24.05'] });
  const w = world;
  w.upstream.advance('nixos-24.05');
  expect(w.hv(['upgrade-test']).code).toBe(0);
  return w;
}

describe('persisted records are read through their schemas', () => {
  it('a truncated or hand-edited upgrade-test-result.json: system-upgrade exits 3 naming the file; status names it; nothing activated', () => {
    const w = upgraded();
    const file = w.paths.testJson;
    const good = readFileSync(file, 'utf8');
    const activations = w.activations().length;
    for (const bad of [good.slice(0, 200), JSON.stringify({ ...JSON.parse(good), status: 'PASSED!' })]) {
      writeFileSync(file, bad, { mode: 0o600 });
      const r = w.hv(['system-upgrade', '--yes']);
      expect(r.code).toBe(3);
      expect(r.stderr).toContain(file);
      expect(r.stderr).toMatch(/not valid JSON|not a valid record/);
      expect(w.activations()).toHaveLength(activations);
      const s = w.hv(['status', '--json']);
      expect(s.code).toBe(0);
      expect(s.json.unreadable.join('\n')).toContain(file);
      expect(w.hv(['status']).stdout).toMatch(/UNREADABLE: .*upgrade-test-result\.json/);
    }
    writeFileSync(file, good, { mode: 0o600 });
    expect(w.hv(['system-upgrade', '--yes']).code).toBe(0);
  });

  it('a hand-edited last-upgrade.json: rollback fails with a clear error naming it, changing nothing', () => {
    const w = upgraded();
    expect(w.hv(['system-upgrade', '--yes']).code).toBe(0);
    const file = join(w.paths.state, 'last-upgrade.json');
    const rec = JSON.parse(readFileSync(file, 'utf8'));
    writeFileSync(file, JSON.stringify({ ...rec, previousGeneration: 'one' }), { mode: 0o600 });
    const before = w.activations().length;
    const r = w.hv(['rollback', '--yes']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(file);
    expect(r.stderr).toMatch(/previousGeneration/);
    // The prompt's preview names the damaged record too, instead of reading it as "nothing recorded".
    expect(r.stderr).toMatch(
      /could not tell what will change: the last upgrade record \S*last-upgrade\.json/,
    );
    expect(r.stderr).not.toMatch(/Nothing is recorded to roll back to/);
    expect(w.activations()).toHaveLength(before);
  });

  it('a lock record that hv did not write: exit 1 naming it and how to clear it, not silently taken over', () => {
    const w = upgraded();
    const lock = join(w.paths.state, 'operation.lock');
    writeFileSync(lock, 'garbage', { mode: 0o600 });
    const r = w.hv(['check-updates']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`rm ${lock}`);
    expect(readFileSync(lock, 'utf8')).toBe('garbage');
  });
});
