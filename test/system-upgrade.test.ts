import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { findLockForSystem, makeBackup } from '../src/engine/backup.js';
import { inputsHash } from '../src/engine/staging.js';
import { World } from './fixtures/world.js';

let world: World | undefined;
afterEach(() => {
  world?.cleanup();
  world = undefined;
});

/** Profile generations as `nix-env --list-generations` would show them: number → store path. */
function generations(w: World): { number: number; path: string; current: boolean }[] {
  const dir = join(w.paths.profile, '..');
  const current = realpathSync(w.paths.profile);
  return readdirSync(dir)
    .map((n) => /^system-(\d+)-link$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => {
      const path = realpathSync(join(dir, m[0]));
      return { number: Number(m[1]), path, current: path === current };
    })
    .sort((a, b) => a.number - b.number);
}

const lockOf = (w: World) => readFileSync(join(w.flakeDir, 'flake.lock'), 'utf8');

describe('hv system-upgrade on a real Nix', () => {
  it('applies exactly the tested system: new generation, switch on it, tested lock installed, old lock backed up, notices cleared', () => {
    world = new World({ branches: ['nixos-24.05'] });
    const w = world;
    const oldLock = lockOf(w);
    const previous = realpathSync(w.paths.currentSystem);
    w.upstream.advance('nixos-24.05');
    expect(w.hv(['check-updates']).code).toBe(100);
    expect(existsSync(w.paths.motd)).toBe(true);
    const t = w.hv(['upgrade-test', '--json']);
    expect(t.code, t.stderr).toBe(0);
    const tested = JSON.parse(w.read(w.paths.testJson));

    const r = w.hv(['system-upgrade', '--yes', '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.json.status).toBe('applied');
    const gens = generations(w);
    expect(gens.map((g) => g.number)).toEqual([1, 2]);
    expect(gens[1]).toEqual({ number: 2, path: tested.toplevel, current: true });
    expect(gens[0]?.path).toBe(previous);
    expect(w.activations()).toEqual([
      { action: 'test', path: tested.toplevel },
      { action: 'switch', path: tested.toplevel },
    ]);
    expect(lockOf(w)).toBe(tested.testedLock);
    expect(lockOf(w)).not.toBe(oldLock);
    const backups = readdirSync(join(w.paths.state, 'backups'));
    expect(backups).toHaveLength(1);
    const bdir = join(w.paths.state, 'backups', backups[0] as string);
    expect(readFileSync(join(bdir, 'flake.lock'), 'utf8')).toBe(oldLock);
    expect(readFileSync(join(bdir, 'flake', 'flake.nix'), 'utf8')).toBe(
      w.read(join(w.flakeDir, 'flake.nix')),
    );
    expect(existsSync(join(bdir, 'paths', w.root, 'etc-nixos', 'configuration.nix'))).toBe(true);
    expect(existsSync(w.paths.motd)).toBe(false);
    expect(existsSync(w.paths.updateText)).toBe(false);
    expect(existsSync(w.paths.updateJson)).toBe(false);
    const last = JSON.parse(w.read(join(w.paths.state, 'last-upgrade.json')));
    expect(last).toMatchObject({
      previousGeneration: 1,
      previousSystem: previous,
      newGeneration: 2,
      toplevel: tested.toplevel,
      backupDir: bdir,
    });
    expect(w.wallMessages().some((m) => /System upgrade applied/.test(m))).toBe(true);
    expect(w.read(join(w.paths.log, 'system-upgrade.log'))).toContain('system upgrade finished');
    const audit = w
      .read(w.paths.audit)
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(
      audit.some(
        (a) => a.operation === 'system-upgrade' && a.result === 'applied' && a.actor.channel === 'cli',
      ),
    ).toBe(true);

    // The same result cannot be applied twice: the system moved on since the test.
    const again = w.hv(['system-upgrade', '--yes']);
    expect(again.code).toBe(3);
    expect(again.stderr).toMatch(/gate "(system|flake) unchanged"/);
  });

  it('refuses (exit 3, naming the gate) and changes nothing: no result, FAILED, too old, flake changed, lock changed, system changed, store path gone; no --yes without a terminal: exit 2', () => {
    world = new World({ branches: ['nixos-24.05'] });
    const w = world;
    const lock = lockOf(w);
    const refused = (pattern: RegExp) => {
      const r = w.hv(['system-upgrade', '--yes', '--json']);
      expect(r.code, r.stderr + r.stdout).toBe(3);
      expect(r.json.status).toBe('refused');
      expect(r.json.message).toMatch(pattern);
      expect(lockOf(w)).toBe(lock);
      expect(generations(w).map((g) => g.number)).toEqual([1]);
      expect(w.activations().filter((a) => a.action !== 'test')).toEqual([]);
      expect(existsSync(join(w.paths.state, 'backups'))).toBe(false);
    };
    refused(/gate "tested".*run "hv upgrade-test" first/);

    w.upstream.advance('nixos-24.05');
    expect(w.hv(['upgrade-test']).code).toBe(0);
    const json = w.read(w.paths.testJson);
    const edit = (f: (r: Record<string, unknown>) => void) => {
      const r = JSON.parse(json);
      f(r);
      writeFileSync(w.paths.testJson, JSON.stringify(r));
    };

    // Without --yes and without a terminal: usage error, nothing changed.
    const noYes = w.hv(['system-upgrade']);
    expect(noYes.code).toBe(2);
    expect(noYes.stderr).toMatch(/--yes/);
    expect(lockOf(w)).toBe(lock);
    expect(generations(w).map((g) => g.number)).toEqual([1]);

    edit((r) => {
      r.status = 'failed';
    });
    refused(/gate "passed".*FAILED/);
    edit((r) => {
      r.finishedAt = new Date(Date.now() - 8 * 86_400_000).toISOString();
    });
    refused(/gate "fresh".*older than test.maxAgeDays = 7/);
    writeFileSync(w.paths.testJson, json);

    const flakeNix = join(w.flakeDir, 'flake.nix');
    const original = w.read(flakeNix);
    writeFileSync(flakeNix, `${original}# edited after the test\n`);
    refused(/gate "flake unchanged".*flake\.nix/);
    writeFileSync(flakeNix, original);
    writeFileSync(join(w.flakeDir, 'extra.nix'), '{ }\n');
    refused(/gate "flake unchanged".*extra\.nix/);
    rmSync(join(w.flakeDir, 'extra.nix'));

    const lockPath = join(w.flakeDir, 'flake.lock');
    writeFileSync(lockPath, `${lock}\n`);
    const changedLock = lockOf(w);
    const r = w.hv(['system-upgrade', '--yes', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(3);
    expect(r.json.message).toMatch(/gate "flake unchanged".*flake\.lock changed/);
    expect(lockOf(w)).toBe(changedLock);
    writeFileSync(lockPath, lock);

    const profileTarget = 'system-1-link';
    w.link(w.paths.profile, 'system-7-link');
    const sys = w.hv(['system-upgrade', '--yes', '--json']);
    expect(sys.code).toBe(3);
    expect(sys.json.message).toMatch(/gate "system unchanged".*generation 7.*generation 1/);
    w.link(w.paths.profile, profileTarget);
    const current = realpathSync(w.paths.currentSystem);
    w.link(w.paths.currentSystem, join(w.root, 'etc-nixos'));
    refused(/gate "system unchanged".*neither/);
    w.link(w.paths.currentSystem, current);

    // As after a reboot: the previous system runs again (still acceptable to the gate).
    w.link(w.paths.currentSystem, JSON.parse(json).previousSystem);
    edit((r) => {
      r.toplevel = '/nix/store/00000000000000000000000000000000-nixos-system-hv01-gone';
    });
    refused(/gate "tested system present".*no longer in the Nix store/);

    // All restored: it applies.
    writeFileSync(w.paths.testJson, json);
    expect(w.hv(['system-upgrade', '--yes']).code).toBe(0);
  });

  it('apply.operation = boot: the tested system becomes the boot default, "boot" is called on it, a reboot is required', () => {
    world = new World({ branches: ['nixos-24.05'], config: { apply: { operation: 'boot' } } });
    const w = world;
    w.upstream.advance('nixos-24.05');
    const previous = realpathSync(w.paths.currentSystem);
    const t = w.hv(['upgrade-test', '--json']);
    expect(t.code, t.stderr).toBe(0);
    // The host rebooted since the test (the tested system was never persisted): still applicable.
    w.link(w.paths.currentSystem, previous);
    expect(w.hv(['status', '--json']).json.rebootRequired).toBe(false);
    const r = w.hv(['system-upgrade', '--yes', '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.json).toMatchObject({
      status: 'applied',
      operation: 'boot',
      rebootRequired: true,
      newGeneration: 2,
    });
    expect(realpathSync(w.paths.currentSystem)).toBe(previous);
    const status = w.hv(['status', '--json']);
    expect(status.json.rebootRequired).toBe(true);
    expect(status.json.rebootReason).toMatch(/becomes active at the next boot/);
    expect(r.json.message).toMatch(/next boot/);
    expect(generations(w).at(-1)).toEqual({ number: 2, path: t.json.toplevel, current: true });
    expect(w.activations().map((a) => a.action)).toEqual(['test', 'boot']);
    expect(w.activations()[1]?.path).toBe(t.json.toplevel);
  });
});

describe('backups and the inputs hash', () => {
  it('keeps backup.keep timestamped backups, newest; finds the lock of a system backed up or installed', () => {
    const root = mkdtempSync(join(tmpdir(), 'hv-backup-'));
    try {
      const flake = join(root, 'flake');
      mkdirSync(flake);
      writeFileSync(join(flake, 'flake.nix'), '{ }\n');
      const made = [1, 2, 3, 4].map((i) => {
        writeFileSync(join(flake, 'flake.lock'), `lock ${i}\n`);
        return makeBackup({
          backupsRoot: join(root, 'backups'),
          flakeDir: flake,
          extraPaths: [join(root, 'missing'), flake],
          system: `/nix/store/sys-${i}`,
          generation: i,
          keep: 2,
          now: new Date(Date.UTC(2026, 0, i)),
          installing: { system: `/nix/store/sys-${i + 1}`, lock: `lock ${i + 1}\n` },
        });
      });
      expect(readdirSync(join(root, 'backups')).sort()).toEqual(
        made.slice(2).map((m) => m.dir.split('/').pop()),
      );
      expect(made[3]?.paths).toEqual([{ source: flake, copy: join(made[3]?.dir as string, 'paths', flake) }]);
      expect(
        readFileSync(findLockForSystem(join(root, 'backups'), '/nix/store/sys-4')?.file as string, 'utf8'),
      ).toBe('lock 4\n');
      expect(
        readFileSync(findLockForSystem(join(root, 'backups'), '/nix/store/sys-5')?.file as string, 'utf8'),
      ).toBe('lock 5\n');
      expect(findLockForSystem(join(root, 'backups'), '/nix/store/sys-1')).toBeUndefined();

      // The inputs hash ignores flake.lock, .git and result links; sees every other change.
      const h = inputsHash(flake);
      writeFileSync(join(flake, 'flake.lock'), 'other\n');
      mkdirSync(join(flake, '.git'));
      writeFileSync(join(flake, '.git', 'index'), 'x');
      symlinkSync('/nix/store/sys-1', join(flake, 'result'));
      expect(inputsHash(flake)).toBe(h);
      writeFileSync(join(flake, 'hardware.nix'), '{ }\n');
      expect(inputsHash(flake)).not.toBe(h);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
