import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { channelTypes } from '../adapters/registry.js';
import { parseConfig } from '../src/config/load.js';
import { lastSuccess } from '../src/daemon/daemon.js';
import { findLockForSystem } from '../src/engine/backup.js';
import { HvError } from '../src/errors.js';
import { acquireLock } from '../src/lock.js';
import { World } from './fixtures/world.js';

let world: World | undefined;
const tmp: string[] = [];
afterEach(() => {
  world?.cleanup();
  world = undefined;
  for (const d of tmp.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'hv-records-'));
  tmp.push(d);
  return d;
}

/** What `fn` threw (it must throw). */
function thrown(fn: () => unknown): HvError {
  try {
    fn();
  } catch (e) {
    if (e instanceof HvError) return e;
    throw e;
  }
  throw new Error('did not throw');
}

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

  it('a truncated or hand-edited last-upgrade.json: system-upgrade and rollback refuse (exit 3) naming it, changing and overwriting nothing', () => {
    const w = upgraded();
    expect(w.hv(['system-upgrade', '--yes']).code).toBe(0);
    const file = join(w.paths.state, 'last-upgrade.json');
    const good = readFileSync(file, 'utf8');
    // A newer update, tested: system-upgrade would pass every other gate.
    w.upstream.advance('nixos-24.05');
    expect(w.hv(['upgrade-test']).code).toBe(0);
    const lock = join(w.flakeDir, 'flake.lock');
    const liveLock = readFileSync(lock, 'utf8');
    const generation = realpathSync(w.paths.profile);
    const before = w.activations().length;
    for (const bad of [
      good.slice(0, good.length / 2),
      JSON.stringify({ ...JSON.parse(good), previousGeneration: 'one' }),
    ]) {
      writeFileSync(file, bad, { mode: 0o600 });
      const up = w.hv(['system-upgrade', '--yes', '--json']);
      expect(up.code).toBe(3);
      expect(up.json.status).toBe('refused');
      expect(up.json.message).toContain(file);
      expect(up.json.message).toMatch(/not valid JSON|previousGeneration/);
      expect(up.json.message).toContain(`mv ${file}`);
      expect(up.json.message).toMatch(/rollback --to N/);
      // Refused before anything changed: the damaged record is still there, as is everything else.
      expect(readFileSync(file, 'utf8')).toBe(bad);
      expect(readFileSync(lock, 'utf8')).toBe(liveLock);
      expect(realpathSync(w.paths.profile)).toBe(generation);
      expect(w.activations()).toHaveLength(before);

      const r = w.hv(['rollback', '--yes']);
      expect(r.code).toBe(3);
      expect(r.stderr).toContain(file);
      // The prompt's preview names the damaged record too, instead of reading it as "nothing recorded".
      expect(r.stderr).toMatch(
        /could not tell what will change: the last upgrade record \S*last-upgrade\.json/,
      );
      expect(r.stderr).not.toMatch(/Nothing is recorded to roll back to/);
      expect(w.activations()).toHaveLength(before);
    }
    // Moved aside as the message says, the upgrade goes ahead and writes a new record.
    renameSync(file, `${file}.broken`);
    expect(w.hv(['system-upgrade', '--yes']).code).toBe(0);
    expect(JSON.parse(readFileSync(file, 'utf8')).status).toBe('applied');
  });

  it('a lock record that hv did not write (garbage, truncated, wrong fields): exit 3 from system-upgrade and other commands, naming it and how to clear it, never taken over', () => {
    const w = upgraded();
    const lock = join(w.paths.state, 'operation.lock');
    const before = w.activations().length;
    for (const bad of ['garbage', '{"pid":12,"operation":"system-up', '{"pid":"12","operation":1}']) {
      writeFileSync(lock, bad, { mode: 0o600 });
      const up = w.hv(['system-upgrade', '--yes', '--json']);
      expect(up.code).toBe(3);
      expect(up.json.status).toBe('refused');
      expect(up.json.message).toContain(`rm ${lock}`);
      expect(w.activations()).toHaveLength(before);
      const c = w.hv(['check-updates']);
      expect(c.code).toBe(3);
      expect(c.stderr).toContain(`rm ${lock}`);
      expect(readFileSync(lock, 'utf8')).toBe(bad);
    }
    rmSync(lock);
    expect(w.hv(['system-upgrade', '--yes']).code).toBe(0);
  });

  it('a damaged operation journal: system-upgrade and rollback do not run over it (exit 3, naming it); status runs and warns', () => {
    const w = upgraded();
    const journal = join(w.paths.state, 'operation-journal.json');
    writeFileSync(journal, '{"operation":"system-upgrade","step":', { mode: 0o600 });
    const before = w.activations().length;
    const profile = readlinkSync(w.paths.profile);
    for (const args of [
      ['system-upgrade', '--yes'],
      ['rollback', '--yes'],
    ]) {
      const r = w.hv([...args, '--json']);
      expect(r.code, r.stdout + r.stderr).toBe(3);
      expect(r.json.message).toContain('An interrupted operation could not be finished or undone');
      expect(r.json.message).toContain(journal);
      expect(r.json.message).toContain(`${args[0]} did not run`);
    }
    expect(w.activations()).toHaveLength(before);
    expect(readlinkSync(w.paths.profile)).toBe(profile);
    const s = w.hv(['status']);
    expect(s.code).toBe(0);
    expect(s.stdout).toMatch(
      /^Warning: an interrupted operation could not be finished or undone: .*operation-journal\.json/,
    );
  });

  it('a damaged last-check.json, update-available.json or notification record: status names each (exit 0); check-updates replaces last-check.json', () => {
    world = new World({ branches: ['nixos-24.05'] });
    const w = world;
    w.upstream.advance('nixos-24.05');
    expect(w.hv(['check-updates']).code).toBe(100);
    const lastCheck = join(w.paths.state, 'last-check.json');
    const outbox = join(w.paths.state, 'notify', 'outbox');
    mkdirSync(outbox, { recursive: true });
    const delivery = join(outbox, 'evt-1.wall.json');
    writeFileSync(lastCheck, '{"at": "2026-01-01T00:00:00Z", "ok": "yes"}', { mode: 0o600 });
    writeFileSync(w.paths.updateJson, readFileSync(w.paths.updateJson, 'utf8').slice(0, 40), { mode: 0o600 });
    writeFileSync(delivery, '{"id": "evt-1.wall", "chan', { mode: 0o600 });
    const s = w.hv(['status', '--json']);
    expect(s.code).toBe(0);
    const unreadable = s.json.unreadable.join('\n');
    expect(unreadable).toMatch(/last check record \S*last-check\.json is not a valid record \(ok: /);
    expect(unreadable).toMatch(/pending update record \S*update-available\.json is not valid JSON/);
    expect(unreadable).toContain(delivery);
    expect(s.json.lastCheck).toBeNull();
    expect(w.hv(['status']).stdout).toMatch(/UNREADABLE: .*last-check\.json/);
    // Status only reads: the damaged notification record is where it was.
    expect(readFileSync(delivery, 'utf8')).toContain('chan');

    // check-updates writes both files anew (its own records); status is clean of them again.
    expect(w.hv(['check-updates']).code).toBe(100);
    expect(JSON.parse(readFileSync(lastCheck, 'utf8')).ok).toBe(true);
    const after = w.hv(['status', '--json']).json.unreadable.join('\n');
    expect(after).not.toMatch(/last-check\.json|update-available\.json/);
    // The check's own publish moved the damaged delivery aside (not delivered, not deleted).
    expect(existsSync(delivery)).toBe(false);
    expect(readdirSync(outbox).some((n) => n.startsWith('evt-1.wall.json.') && n.endsWith('.broken'))).toBe(
      true,
    );
    expect(after).toMatch(/evt-1\.wall\.json\.\d+\.broken: a damaged notification record, moved aside/);
  });
});

describe('records read in-process', () => {
  it('a damaged backup manifest: finding a lock for a system is an error naming it (exit 3), not a skipped backup', () => {
    const root = tempDir();
    const backup = join(root, '2026-01-01T00-00-00Z');
    mkdirSync(backup, { mode: 0o700 });
    writeFileSync(join(backup, 'flake.lock'), '{}');
    expect(findLockForSystem(root, '/nix/store/x-system')).toBeUndefined(); // no manifest: nothing known
    const manifest = join(backup, 'manifest.json');
    writeFileSync(
      manifest,
      JSON.stringify({ createdAt: 'now', dir: backup, flakeDir: '/etc/x', paths: 'all' }),
    );
    const e = thrown(() => findLockForSystem(root, '/nix/store/x-system'));
    expect(e.code).toBe('state-corrupt');
    expect(e.exitCode).toBe(3);
    expect(e.message).toMatch(/backup manifest \S*manifest\.json is not a valid record \(paths: /);
  });

  it("a damaged last-check.json: the daemon's last-success lookup names it (the daemon logs it and checks now)", () => {
    const state = tempDir();
    const config = parseConfig({ host: 'hv01', allowNonRoot: true, paths: { state } }, channelTypes);
    expect(lastSuccess(config)).toBeUndefined();
    const file = join(state, 'last-check.json');
    writeFileSync(file, JSON.stringify({ at: '2026-01-01T00:00:00.000Z', ok: true }));
    expect(lastSuccess(config)?.toISOString()).toBe('2026-01-01T00:00:00.000Z');
    writeFileSync(file, '{"at": "2026-01-01T00:00:00.000Z", "ok"');
    const e = thrown(() => lastSuccess(config));
    expect(e.code).toBe('state-corrupt');
    expect(e.message).toContain(file);
  });

  it('a lock file replaced by something else is neither taken over nor removed on release', () => {
    const dir = tempDir();
    const file = join(dir, 'operation.lock');
    writeFileSync(file, '{"pid": 1, "operation": 7}');
    const e = thrown(() => acquireLock(dir, 'check-updates', 'root'));
    expect(e.code).toBe('state-corrupt');
    expect(e.exitCode).toBe(3);
    expect(e.message).toContain(`rm ${file}`);
    rmSync(file);
    const lock = acquireLock(dir, 'check-updates', 'root');
    writeFileSync(file, 'garbage');
    lock.release();
    expect(readFileSync(file, 'utf8')).toBe('garbage');
  });
});
