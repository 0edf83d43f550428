import { existsSync, readdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { expectKnownState, journalFile, killed, lockOf } from './fixtures/crash.js';
import { snapshot, World } from './fixtures/world.js';

let world: World | undefined;
afterEach(() => {
  world?.cleanup();
  world = undefined;
});

const COMMAND = 'hv upgrade-test --release 25.05';
const nixOf = (w: World) => readFileSync(join(w.flakeDir, 'flake.nix'), 'utf8');
const configOf = (w: World) => readFileSync(join(w.flakeDir, 'configuration.nix'), 'utf8');

/**
 * A host tracking nixos-24.11 with nixos-25.05 upstream. Its flake.nix and configuration.nix carry
 * `system.stateVersion` (flake.nix with the very release it tracks, so a blind "24.11" → "25.05"
 * would change it).
 */
function hostOn2411(): World {
  world = new World({ branches: ['nixos-24.11', 'nixos-25.05'], tracked: 'nixos-24.11', install: false });
  const w = world;
  const nix = join(w.flakeDir, 'flake.nix');
  writeFileSync(
    nix,
    w
      .read(nix)
      .replace(
        'modules = [ ./configuration.nix ];',
        'modules = [ ./configuration.nix ];\n      extra = { system.stateVersion = "24.11"; /* first install */ };\n     ',
      ),
  );
  const conf = join(w.flakeDir, 'configuration.nix');
  writeFileSync(conf, w.read(conf).replace('}', ' system.stateVersion = "24.05"; }'));
  w.installCurrent();
  return w;
}

describe('release upgrades on a real Nix (issue 11, acceptance 2)', () => {
  it('check names the command; the test leaves the live flake alone; system-upgrade installs flake.nix and flake.lock; check follows the new branch; rollback restores both', () => {
    const w = hostOn2411();
    const nix0 = nixOf(w);
    const lock0 = lockOf(w);
    const conf0 = configOf(w);
    const system0 = realpathSync(w.paths.currentSystem);

    // The notice names the exact command: stdout, motd, details file, wall.
    const c = w.hv(['check-updates']);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout).toContain(COMMAND);
    expect(w.read(w.paths.motd)).toContain(COMMAND);
    expect(w.read(w.paths.updateText)).toContain(COMMAND);
    expect(existsSync(w.paths.updateJson)).toBe(false); // no update of the tracked branch is pending
    expect(w.wallMessages()).toHaveLength(1);
    expect(w.wallMessages()[0]).toContain('nixos-25.05');
    expect(w.wallMessages()[0]).toContain(COMMAND);
    const cj = w.hv(['check-updates', '--json']);
    expect(cj.json.branch).toBe('nixos-24.11');
    expect(cj.json.releases.map((x: { branch: string }) => x.branch)).toEqual(['nixos-25.05']);
    expect(w.wallMessages()).toHaveLength(1); // not broadcast again
    expect(w.hv(['status']).stdout).toContain(COMMAND);

    // Bad and lower releases.
    const bad = w.hv(['upgrade-test', '--release', 'foo']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/release: must be a NixOS release as YY\.MM or nixos-YY\.MM/);
    const lower = w.hv(['upgrade-test', '--release', '24.05']);
    expect(lower.code, lower.stderr).toBe(3);
    expect(lower.stderr).toMatch(/release 24\.05 is lower than the tracked nixos-24\.11/);
    expect(lower.stderr).toMatch(/Nothing was activated/);
    const same = w.hv(['upgrade-test', '--release', 'nixos-24.11']);
    expect(same.code).toBe(2);
    expect(same.stderr).toMatch(/not a release upgrade/);
    expect(w.activations()).toEqual([]);
    expect(existsSync(w.paths.testJson)).toBe(false);

    // The test: passes, builds 25.05, and the live flake dir is byte for byte (and mtime) the same.
    const before = snapshot(w.flakeDir);
    const t = w.hv(['upgrade-test', '--release', '25.05', '--json']);
    expect(t.code, t.stderr + t.stdout).toBe(0);
    expect(t.json.version).toMatch(/^25\.05\./);
    expect(t.json.release).toMatchObject({ from: '24.11', to: '25.05', toRef: 'nixos-25.05' });
    expect(snapshot(w.flakeDir)).toEqual(before);
    const expectedNix = nix0.replace('?ref=nixos-24.11"', '?ref=nixos-25.05"');
    expect(expectedNix).not.toBe(nix0);
    const result = JSON.parse(w.read(w.paths.testJson));
    expect(result.release.flakeNix).toBe(expectedNix);
    expect(w.read(w.paths.testText)).toMatch(/Release: +24\.11 -> 25\.05/);

    // system-upgrade installs both, backed up; stateVersion untouched.
    const a = w.hv(['system-upgrade', '--yes']);
    expect(a.code, a.stderr + a.stdout).toBe(0);
    expect(a.stdout).toMatch(/Release upgrade 24\.11 -> 25\.05/);
    expect(nixOf(w)).toBe(expectedNix);
    expect(lockOf(w)).toBe(result.testedLock);
    expect(nixOf(w)).toContain('extra = { system.stateVersion = "24.11"; /* first install */ };');
    expect(configOf(w)).toBe(conf0);
    const backups = join(w.paths.state, 'backups');
    const [backup] = readdirSync(backups);
    expect(readFileSync(join(backups, backup as string, 'flake.nix'), 'utf8')).toBe(nix0);
    expect(readFileSync(join(backups, backup as string, 'installed-flake.nix'), 'utf8')).toBe(expectedNix);
    expect(realpathSync(w.paths.currentSystem)).toBe(result.toplevel);

    // From now on the check and status follow nixos-25.05.
    const c2 = w.hv(['check-updates', '--json']);
    expect(c2.code, c2.stderr).toBe(0);
    expect(c2.json.branch).toBe('nixos-25.05');
    expect(c2.json.releases).toEqual([]);
    expect(existsSync(w.paths.motd)).toBe(false);
    expect(w.hv(['status', '--json']).json.tracked.ref).toBe('nixos-25.05');
    // An update on the new branch is found there.
    w.upstream.advance('nixos-25.05');
    expect(w.hv(['check-updates']).code).toBe(100);

    // rollback restores both files byte for byte, and nixos-24.11 is tracked again.
    const r = w.hv(['rollback', '--yes']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(/flake\.nix restored/);
    expect(nixOf(w)).toBe(nix0);
    expect(lockOf(w)).toBe(lock0);
    expect(configOf(w)).toBe(conf0);
    expect(realpathSync(w.paths.currentSystem)).toBe(system0);
    const c3 = w.hv(['check-updates', '--json']);
    expect(c3.json.branch).toBe('nixos-24.11');
    expect(c3.json.releases.map((x: { branch: string }) => x.branch)).toEqual(['nixos-25.05']);
    expect(w.hv(['status', '--json']).json.tracked.ref).toBe('nixos-24.11');
    expect(w.read(w.paths.motd)).toContain(COMMAND);
  });

  it('a flake.nix hv cannot rewrite unambiguously is refused with exit 3 naming the file; nothing changes', () => {
    world = new World({ branches: ['nixos-24.11', 'nixos-25.05'], tracked: 'nixos-24.11' });
    const w = world;
    const nix = join(w.flakeDir, 'flake.nix');
    // A second input with the same url text: which of them should move is the admin's call.
    const url = /inputs\.nixpkgs\.url = "([^"]+)";/.exec(w.read(nix))?.[1] as string;
    writeFileSync(
      nix,
      w.read(nix).replace('inputs.nixpkgs.url', `inputs.nixpkgs-vms.url = "${url}";\n  inputs.nixpkgs.url`),
    );
    const before = snapshot(w.flakeDir);
    const t = w.hv(['upgrade-test', '--release', '25.05']);
    expect(t.code, t.stderr).toBe(3);
    expect(t.stderr).toContain(`Edit ${nix} by hand`);
    expect(t.stderr).toMatch(/input nixpkgs-vms/);
    expect(snapshot(w.flakeDir)).toEqual(before);
    expect(w.activations()).toEqual([]);
  });
});

describe('the apply gates of a release test', () => {
  it('an edit of the live flake.nix after the test is refused (exit 3, naming flake.nix); so is a tampered recorded flake.nix; nothing is activated', () => {
    const w = hostOn2411();
    const t = w.hv(['upgrade-test', '--release', '25.05']);
    expect(t.code, t.stderr + t.stdout).toBe(0);
    const nix = join(w.flakeDir, 'flake.nix');
    const original = w.read(nix);
    writeFileSync(nix, `${original}# edited after the test\n`);
    const a = w.hv(['system-upgrade', '--yes']);
    expect(a.code).toBe(3);
    expect(a.stderr).toMatch(/gate "flake unchanged".*changed since the test \(flake\.nix\)/);
    writeFileSync(nix, original);
    const result = JSON.parse(w.read(w.paths.testJson));
    result.release.flakeNix = result.release.flakeNix.replace('nixos-25.05', 'nixos-26.05');
    writeFileSync(w.paths.testJson, JSON.stringify(result));
    const b = w.hv(['system-upgrade', '--yes']);
    expect(b.code).toBe(3);
    expect(b.stderr).toMatch(/not the one the release test built/);
    expect(w.activations().filter((x) => x.action === 'switch')).toEqual([]);
    expect(w.read(nix)).toBe(original);
  });
});

describe('a release system-upgrade killed mid-way (old system running after a reboot)', () => {
  function testedRelease() {
    const w = hostOn2411();
    const old = { system: realpathSync(w.paths.currentSystem), lock: lockOf(w), nix: nixOf(w) };
    const t = w.hv(['upgrade-test', '--release', '25.05']);
    expect(t.code, t.stderr + t.stdout).toBe(0);
    const r = JSON.parse(w.read(w.paths.testJson));
    w.link(w.paths.currentSystem, old.system); // a reboot since the test
    return { w, old, tested: { system: r.toplevel, lock: r.testedLock, nix: r.release.flakeNix } };
  }

  it('killed at "install-lock" after flake.nix was written: the next hv status puts the old flake.nix and lock back', async () => {
    const { w, old, tested } = testedRelease();
    expect(await killed(w, ['system-upgrade'], { crashAt: 'system-upgrade:install-lock' })).toBe('SIGKILL');
    // As if the process died between the two writes of the step.
    writeFileSync(join(w.flakeDir, 'flake.nix'), tested.nix);
    const s = w.hv(['status', '--json']);
    expect(s.code, s.stderr).toBe(0);
    expect(s.json.recovered?.[0]).toMatch(
      /interrupted at "install-lock".*flake\.lock and flake\.nix restored/,
    );
    expectKnownState(w, old.system, old.lock);
    expect(nixOf(w)).toBe(old.nix);
    expect(w.hv(['status', '--json']).json.tracked.ref).toBe('nixos-24.11');
    // The PASSED test still applies.
    const again = w.hv(['system-upgrade', '--yes']);
    expect(again.code, again.stderr).toBe(0);
    expectKnownState(w, tested.system, tested.lock);
    expect(nixOf(w)).toBe(tested.nix);
  });

  it('killed at "activate": the next hv status finishes it; flake.nix and flake.lock are the tested ones', async () => {
    const { w, tested } = testedRelease();
    expect(await killed(w, ['system-upgrade'], { crashAt: 'system-upgrade:activate' })).toBe('SIGKILL');
    expect(existsSync(journalFile(w))).toBe(true);
    const s = w.hv(['status', '--json']);
    expect(s.code, s.stderr).toBe(0);
    expect(s.json.recovered?.[0]).toMatch(/interrupted at "activate"/);
    expectKnownState(w, tested.system, tested.lock);
    expect(nixOf(w)).toBe(tested.nix);
    expect(s.json.tracked.ref).toBe('nixos-25.05');
  });

  it('a rollback of a release upgrade killed at "restore-lock": the next hv status finishes it with the old flake.nix and lock', async () => {
    const w = hostOn2411();
    const old = { system: realpathSync(w.paths.currentSystem), lock: lockOf(w), nix: nixOf(w) };
    expect(w.hv(['upgrade-test', '--release', '25.05']).code).toBe(0);
    expect(w.hv(['system-upgrade', '--yes']).code).toBe(0);
    expect(await killed(w, ['rollback'], { crashAt: 'rollback:restore-lock' })).toBe('SIGKILL');
    const s = w.hv(['status', '--json']);
    expect(s.code, s.stderr).toBe(0);
    expect(s.json.recovered?.[0]).toMatch(/rollback .*interrupted at "restore-lock"/);
    expectKnownState(w, old.system, old.lock);
    expect(nixOf(w)).toBe(old.nix);
    expect(s.json.tracked.ref).toBe('nixos-24.11');
  });
});

describe('a release system-upgrade that is not confirmed (apply.confirm, issue 16)', () => {
  it('is switched back: the old system, generation, flake.lock and flake.nix (following the old branch) come back', () => {
    const w = hostOn2411();
    const old = { system: realpathSync(w.paths.currentSystem), lock: lockOf(w), nix: nixOf(w) };
    const t = w.hv(['upgrade-test', '--release', '25.05']);
    expect(t.code, t.stderr + t.stdout).toBe(0);
    w.config.apply = { confirm: ['human'], confirmWithinSec: 2 };
    w.writeConfig();
    const r = w.hv(['system-upgrade', '--yes']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/System upgrade REVERTED: not confirmed within 2 s/);
    expectKnownState(w, old.system, old.lock);
    expect(nixOf(w)).toBe(old.nix);
    expect(w.hv(['status', '--json']).json.tracked.ref).toBe('nixos-24.11');
  });
});
